"""Ctrl-C, Ctrl-Break and SIGTERM handed to the running event loop, on POSIX and Windows.

POSIX loops take signals with `loop.add_signal_handler`; Windows' event loops raise
NotImplementedError there. Then a plain `signal.signal` handler hands each signal over to
the loop with `call_soon_threadsafe` (Windows' proactor loop wakes on signals through its
wakeup socket), so the callback always runs on the loop, never inside a signal handler.
"""

from __future__ import annotations

import asyncio
import functools
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

# The signals that mean "stop" (Ctrl-Break exists only on Windows).
if sys.platform == "win32":
    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGBREAK)
else:
    STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_stop_signals(callback: Callable[[str], None]) -> Iterator[None]:
    """While inside, each stop signal calls `callback(signal name)` on the running loop;
    the previous handlers come back on the way out. Outside the main thread (no signals
    there) nothing is installed."""
    loop = asyncio.get_running_loop()
    undo: list[Callable[[], object]] = []
    try:
        for sig in STOP_SIGNALS:
            try:
                loop.add_signal_handler(sig, callback, sig.name)
            except NotImplementedError:  # Windows: no add_signal_handler on its loops
                restore = _plain_handler(loop, sig, callback)
                if restore is not None:
                    undo.append(restore)
            except RuntimeError:  # not the main thread
                continue
            else:
                undo.append(functools.partial(loop.remove_signal_handler, sig))
        yield
    finally:
        for step in reversed(undo):
            step()


def _plain_handler(
    loop: asyncio.AbstractEventLoop, sig: signal.Signals, callback: Callable[[str], None]
) -> Callable[[], object] | None:
    def handler(_number: int, _frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback, sig.name)

    try:
        previous = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        return None
    # None: a handler not installed from Python; the default is the closest to put back.
    return lambda: signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
