"""The resolver's first question: no task, no timer and no shield of its own, yet what they
guarded still holds. An asker cancelled by its own site's time budget stops only its own
wait (the question, and the others waiting on it, go on); a resolver that never calls
back still ends in a timeout, each ask at its own deadline, however many are in flight."""

from __future__ import annotations

import asyncio
import time

import pytest

from fleet.dns import Answer, Dns, MxRecord, Outcome
from fleet.dns_channel import Callback, ThreadChannel
from fleet.lab.dns import LabDns


async def test_a_cancelled_asker_leaves_the_question_to_the_others(lab_dns: LabDns) -> None:
    # Given a slow name, asked by three sites at once
    lab_dns.add("slow.first.test", "A", "127.0.0.9")
    lab_dns.delay("slow.first.test", 0.3)
    dns = Dns([lab_dns.nameserver], timeout_s=2.0, tries=1)
    try:
        askers = [asyncio.ensure_future(dns.query("slow.first.test", "A")) for _ in range(3)]
        await asyncio.sleep(0.05)  # all three wait on the one question in flight
        # When the first site's time budget runs out
        askers[0].cancel()
        await asyncio.gather(askers[0], return_exceptions=True)
        assert askers[0].cancelled()
        # Then the others still get the answer, and the name was asked once
        assert [a.records for a in await asyncio.gather(*askers[1:])] == [("127.0.0.9",)] * 2
        assert lab_dns.log.count("slow.first.test", "A") == 1
        # and a later asker reads it from the memo
        assert (await dns.query("slow.first.test", "A")).records == ("127.0.0.9",)
    finally:
        await dns.close()


async def test_the_only_asker_cancelled_leaves_the_answer_for_later_askers(
    lab_dns: LabDns,
) -> None:
    lab_dns.add("alone.first.test", "TXT", "v=spf1 -all")
    lab_dns.delay("alone.first.test", 0.2)
    dns = Dns([lab_dns.nameserver], timeout_s=2.0, tries=1)
    try:
        asker = asyncio.ensure_future(dns.query("alone.first.test", "TXT"))
        await asyncio.sleep(0.05)
        asker.cancel()
        await asyncio.gather(asker, return_exceptions=True)
        assert dns.answered("alone.first.test", "TXT") is None  # still in flight
        later = await dns.query("alone.first.test", "TXT")
        assert later.records == ("v=spf1 -all",)
        assert lab_dns.log.count("alone.first.test", "TXT") == 1
    finally:
        await dns.close()


class _NeverCallsBack:
    """A c-ares that takes every question and never calls back (a stuck channel): the
    one fault a real resolver on loopback cannot stage, since c-ares times out itself."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self._closed = False

    def query(self, name: str, rtype: str, callback: Callback) -> None:
        self.asked.append(name)

    async def close(self) -> None:
        self._closed = True


async def test_a_resolver_that_never_calls_back_times_out_each_ask_at_its_own_deadline() -> None:
    # budget per ask: timeout_s x tries x 2 + 1 = 1.2 s
    dns = Dns(timeout_s=0.1, tries=1, concurrency=100, second_chance=False)
    stuck = _NeverCallsBack()
    await dns._resolver.close()
    dns._resolver = stuck
    finished: dict[str, float] = {}

    async def ask(name: str) -> Answer:
        answer = await dns.query(name, "A")
        finished[name] = time.monotonic()
        return answer

    try:
        started = time.monotonic()
        early = [asyncio.ensure_future(ask(f"n{n}.early.test")) for n in range(60)]
        await asyncio.sleep(0.5)
        late = asyncio.ensure_future(ask("late.test"))
        answers = await asyncio.gather(*early, late)
    finally:
        await dns.close()
    assert {a.outcome for a in answers} == {Outcome.timeout}
    assert len(stuck.asked) == 61
    # the first 60 at 1.2 s; the late one, asked 0.5 s later, 1.2 s after it was sent
    # (not with the first, nor only at the next whole sweep of the timer)
    first = max(finished[f"n{n}.early.test"] for n in range(60)) - started
    assert 1.2 <= first < 1.6, first
    assert 1.7 <= finished["late.test"] - started < 2.1
    assert dns.stats.queries == 61


async def test_a_stuck_resolver_gets_its_one_extra_ask_and_still_ends() -> None:
    dns = Dns(timeout_s=0.05, tries=1)  # budget 1.1 s an ask
    stuck = _NeverCallsBack()
    await dns._resolver.close()
    dns._resolver = stuck
    try:
        started = time.monotonic()
        answer = await dns.query("stuck.test", "MX")
        elapsed = time.monotonic() - started
    finally:
        await dns.close()
    assert answer.outcome is Outcome.timeout
    assert stuck.asked == ["stuck.test", "stuck.test"]  # nothing heard: one extra ask only
    assert dns.stats.retries == 1
    assert dns.stats.retries_answered == 0
    assert 2.2 <= elapsed < 3.5, elapsed


async def test_a_loop_that_cannot_watch_sockets_gets_aiodns_s_thread(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Windows's proactor loop cannot watch c-ares's sockets: there aiodns's own thread
    drives c-ares, and its answers and errors read the same."""

    def not_here(*_: object) -> None:
        raise NotImplementedError

    monkeypatch.setattr(asyncio.get_running_loop(), "add_reader", not_here)
    lab_dns.add("mx.thread.test", "MX", "10 mail.thread.test.")
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1)
    try:
        assert isinstance(dns._resolver, ThreadChannel)
        mx = await dns.query("mx.thread.test", "MX")
        missing = await dns.query("missing.thread.test", "A")
    finally:
        await dns.close()
    assert mx.mx == (MxRecord(10, "mail.thread.test"),)
    assert missing.outcome is Outcome.nxdomain


async def test_a_name_c_ares_will_not_send_is_an_error_in_fleet_s_words(lab_dns: LabDns) -> None:
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1)
    try:
        answer = await dns.query("a" * 64 + ".bad.test", "A")
        other = await dns.query("fine.bad.test", "AXFR")
    finally:
        await dns.close()
    assert answer.outcome is Outcome.error
    assert answer.detail == "the query name is not a valid DNS name"
    assert other.outcome is Outcome.error
    assert lab_dns.log.total == 0
    assert dns._in_flight == {}


async def test_a_fault_reading_an_answer_is_an_error_answer_and_frees_its_slot(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*_: object) -> Answer:
        raise KeyError("a bug of fleet's")

    monkeypatch.setattr("fleet.dns._records", broken)
    lab_dns.add("one.fault.test", "A", "127.0.0.1")
    lab_dns.add("two.fault.test", "A", "127.0.0.2")
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1, concurrency=1)
    try:
        first, second = await asyncio.gather(
            dns.query("one.fault.test", "A"), dns.query("two.fault.test", "A")
        )
    finally:
        await dns.close()
    assert first.outcome is second.outcome is Outcome.error
    assert (
        first.detail
        == "fleet could not read the resolver's answer (a fault of fleet's; see the log)"
    )
    assert "a bug of fleet's" in caplog.text
    assert dns._first_asks == 0


async def test_a_queue_of_names_c_ares_refuses_at_once_all_get_their_answer(
    lab_dns: LabDns,
) -> None:
    """c-ares answers a name it will not send before `query` returns: a long queue of such
    names behind a full slot must be drained by a loop, not by one level of recursion an
    ask (past Python's limit, inside c-ares's callback, where the error is swallowed)."""
    lab_dns.add("slow.queue.test", "A", "127.0.0.9")
    lab_dns.delay("slow.queue.test", 0.2)
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1, concurrency=1)
    try:
        first = asyncio.ensure_future(dns.query("slow.queue.test", "A"))
        await asyncio.sleep(0)
        bad = [dns.query(f"{'a' * 64}.n{n}.queue.test", "A") for n in range(500)]
        answers = await asyncio.wait_for(asyncio.gather(first, *bad), 10)
    finally:
        await dns.close()
    assert answers[0].outcome is Outcome.answer
    assert {answer.outcome for answer in answers[1:]} == {Outcome.error}
    assert dns._first_asks == 0
    assert dns._in_flight == {}


async def test_a_question_over_tcp_does_not_spin_the_loop(lab_dns: LabDns) -> None:
    """A truncated answer is asked again over TCP; once the socket is connected, c-ares wants
    it read, not written: a write watch left on calls c-ares on every turn of the loop (a
    whole core for as long as the answer takes)."""
    lab_dns.add("big.tcp.test", "TXT", "v=spf1 -all")
    lab_dns.fault("big.tcp.test", "truncate_udp")
    lab_dns.delay("big.tcp.test", 1.0)
    dns = Dns([lab_dns.nameserver], timeout_s=3.0, tries=1)
    try:
        cpu, wall = time.process_time(), time.monotonic()
        answer = await dns.query("big.tcp.test", "TXT")
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        await dns.close()
    assert answer.outcome is Outcome.answer
    assert "tcp" in lab_dns.log.transports
    assert wall >= 0.9
    assert cpu < 0.3 * wall, (cpu, wall)  # the loop slept while the answer was coming
