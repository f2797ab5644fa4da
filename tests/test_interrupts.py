"""Stop signals reach the event loop with or without `add_signal_handler` (Windows' loops
raise NotImplementedError there), and a legacy console code page never ends a command."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime

import pytest

from fleet.console import tolerate_legacy_code_pages
from fleet.interrupts import on_stop_signals


class WindowsLikeLoop(asyncio.SelectorEventLoop):
    """A loop without signal handlers, as Windows' selector and proactor loops are."""

    def add_signal_handler(self, *_args: object) -> None:
        raise NotImplementedError

    def remove_signal_handler(self, sig: int) -> bool:
        raise NotImplementedError


async def two_signals(sig: signal.Signals) -> list[tuple[str, bool]]:
    """Send `sig` to this process twice; what the callback saw, and whether on the loop."""
    seen: list[tuple[str, bool]] = []
    loop = asyncio.get_running_loop()
    arrived = asyncio.Event()

    def callback(name: str) -> None:
        on_loop = threading.current_thread() is threading.main_thread() and loop.is_running()
        seen.append((name, on_loop))
        arrived.set()

    with on_stop_signals(callback):
        for _ in range(2):
            arrived.clear()
            os.kill(os.getpid(), sig)
            await asyncio.wait_for(arrived.wait(), 5)
    return seen


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_without_add_signal_handler_each_signal_reaches_the_loop(sig: signal.Signals) -> None:
    with asyncio.Runner(loop_factory=WindowsLikeLoop) as runner:
        before = signal.getsignal(sig)
        seen = runner.run(two_signals(sig))
        # the handlers in place before (asyncio.Runner's own Ctrl-C handler) come back
        assert runner.run(asyncio.sleep(0, signal.getsignal(sig))) == before
    assert seen == [(sig.name, True), (sig.name, True)]


def test_with_add_signal_handler_the_loop_takes_the_signals() -> None:
    with asyncio.Runner() as runner:
        seen = runner.run(two_signals(signal.SIGTERM))
    assert seen == [("SIGTERM", True), ("SIGTERM", True)]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_outside_the_main_thread_nothing_is_installed() -> None:
    outcome: list[object] = []

    async def body() -> None:
        with on_stop_signals(lambda _name: None):
            outcome.append(signal.getsignal(signal.SIGINT))

    def in_thread() -> None:
        with asyncio.Runner(loop_factory=WindowsLikeLoop) as runner:
            runner.run(body())

    before = signal.getsignal(signal.SIGINT)
    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join()
    assert outcome == [before]


class Cp1252Console(io.TextIOWrapper):
    """A console as Windows gives it to a redirected fleet: cp1252, errors="strict"."""

    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="cp1252", errors="strict")

    def isatty(self) -> bool:
        return True


def test_a_legacy_code_page_replaces_what_it_cannot_show(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    console = Cp1252Console()
    monkeypatch.setattr(sys, "stdout", console)
    with pytest.raises(UnicodeEncodeError):
        console.write("Biuro Łódź")
    tolerate_legacy_code_pages()
    console.write("Biuro Łódź \u2013 東京…\n")
    console.flush()
    assert isinstance(console.buffer, io.BytesIO)
    assert console.buffer.getvalue().decode("cp1252") == "Biuro ?ód? \u2013 ??…\n"


def test_the_progress_bar_draws_on_a_legacy_code_page(monkeypatch: pytest.MonkeyPatch) -> None:
    from fleet.cli.app import progress_bar
    from fleet.results import Egress, EgressTransport, SiteResult, Verdict

    console = Cp1252Console()
    monkeypatch.setattr(sys, "stderr", console)
    tolerate_legacy_code_pages()
    update, close = progress_bar(2, quiet=False)
    now = datetime.now(UTC)
    egress = Egress(transport=EgressTransport.direct)
    site = SiteResult(
        site="Łódź", client="東京", verdict=Verdict.critical, egress=egress,
        started_at=now, finished_at=now,
    )  # fmt: skip
    for _ in range(2):
        time.sleep(0.15)  # past tqdm's redraw interval, so each update is drawn
        update(site)
    close()
    assert isinstance(console.buffer, io.BytesIO)
    drawn = console.buffer.getvalue().decode("cp1252")
    assert "1/2" in drawn
    assert "2/2" in drawn
    assert "failing=2" in drawn
