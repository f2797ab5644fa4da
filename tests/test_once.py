"""fleet.once.Once: the memoiser behind the blocklist and SPF probes, the public-IP lookup
and the OAuth token broker (the resolver keeps its own memo: fleet/dns.py)."""

from __future__ import annotations

import asyncio

import pytest

from fleet.once import Once


async def test_the_work_runs_once_for_every_asker() -> None:
    once: Once[str, int] = Once()
    started = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal started
        started += 1
        await release.wait()
        return 42

    askers = [asyncio.ensure_future(once.get("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*askers) == [42] * 5
    assert started == 1
    assert "k" in once
    assert len(once) == 1
    assert once.finished("k") == 42


async def test_a_cancelled_asker_does_not_cancel_the_work_the_others_wait_for() -> None:
    once: Once[str, str] = Once()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "done"

    # Given two askers, the first of them cut off by its own time budget
    first = asyncio.ensure_future(once.get("k", work))
    second = asyncio.ensure_future(once.get("k", work))
    await asyncio.sleep(0)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    # When the work finishes, the second asker still gets its result
    release.set()
    assert await second == "done"


async def test_forget_starts_the_work_again_and_cancel_stops_what_runs() -> None:
    once: Once[str, int] = Once()
    runs = 0

    async def work() -> int:
        nonlocal runs
        runs += 1
        return runs

    assert await once.get("k", work) == 1
    once.forget("k")
    assert await once.get("k", work) == 2
    assert once.finished("missing") is None

    never = asyncio.Event()

    async def stuck() -> int:
        await never.wait()
        return 0

    waiting = asyncio.ensure_future(once.get("stuck", stuck))
    await asyncio.sleep(0)
    pending = once.cancel()
    assert len(pending) == 1
    await asyncio.wait(pending)
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert once.finished("stuck") is None


async def test_work_started_ahead_runs_once_and_is_what_askers_get() -> None:
    once: Once[str, int] = Once()
    started = 0

    async def work() -> int:
        nonlocal started
        started += 1
        await asyncio.sleep(0)
        return 7

    once.start("k", work)  # no wait: the work runs while the caller does something else
    once.start("k", work)
    assert "k" in once
    for _ in range(3):  # the work's two steps, and its task's completion
        await asyncio.sleep(0)
    assert once.finished("k") == 7
    assert await once.get("k", work) == 7
    assert started == 1
