"""Once per key per sweep: the first asker starts the work, every later asker awaits it.

The work runs in a task of its own, and each asker awaits it through `asyncio.shield`, so
that an asker cancelled by its own site's time budget does not cancel the work the others
are waiting for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Once(Generic[K, V]):
    """A memo of running or finished tasks by key."""

    def __init__(self) -> None:
        self._tasks: dict[K, asyncio.Future[V]] = {}

    def __contains__(self, key: K) -> bool:
        return key in self._tasks

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> None:
        """Start `key`'s work if nobody asked yet, without waiting for it."""
        if key not in self._tasks:
            self._tasks[key] = asyncio.ensure_future(start())

    def future(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> asyncio.Future[V]:
        """The shielded result of `key`'s work, started by `start()` if nobody asked yet."""
        self.start(key, start)
        return asyncio.shield(self._tasks[key])

    async def get(self, key: K, start: Callable[[], Coroutine[Any, Any, V]]) -> V:
        """`key`'s result, started by `start()` if nobody asked yet."""
        task = self._tasks.get(key)
        if task is not None and task.done() and not task.cancelled():
            return task.result()  # finished already: no shield (a future per asker) needed
        return await self.future(key, start)

    def finished(self, key: K) -> V | None:
        """`key`'s result when its work has finished without error, else None."""
        task = self._tasks.get(key)
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    def forget(self, key: K) -> None:
        """The next asker starts the work again (e.g. a token about to expire)."""
        self._tasks.pop(key, None)

    def cancel(self) -> list[asyncio.Future[V]]:
        """Cancel the work still running; the tasks cancelled, for the caller to wait on."""
        pending = [task for task in self._tasks.values() if not task.done()]
        for task in pending:
            task.cancel()
        return pending
