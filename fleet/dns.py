"""One DNS resolver per sweep (c-ares, through fleet.dns_channel), with de-duplication, a cap on queries in flight,
a second chance for questions that went unanswered, and answers normalised into "what
happened" instead of exceptions.

Every question (name, type) is asked at most once per sweep, however many sites,
devices or checks need it: later askers await the first asker's answer.

A question the resolver did not answer in time (after c-ares's own tries) is asked again
when the resolver is no longer busy: once no first question is in flight or waiting, but
after one ask's time (timeout_s x tries) at the latest. A resolver that is slow under load
or drops a share of queries then answers it, instead of a site ending `unknown` for a
lookup that was simply lost. Its askers wait for that answer. (The wait is bounded: in a
big sweep against a lossy resolver, some lost first question is nearly always in flight,
so "no longer busy" would come only at the sweep's end, after the 20 s budget of an SPF
evaluation waiting on the question had run out: its sites `unknown`.)
A question still unanswered is asked again, at most `retries` times in all, so its time is
bounded (each ask waits at most timeout_s x tries). The first extra ask always goes out;
later ones only once the resolver has answered something in this sweep: one that answers
nothing is down, not lossy, and asking every question three more times would only make a
sweep (or a one-site scan) wait that much longer for `unknown`. Only when every ask timed
out is the answer a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import logging
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

import pycares
from pycares import errno as ares

from fleet.dns_channel import open_channel
from fleet.errors import NameserverError
from fleet.net import is_ip, join_host_port, split_host_port

log = logging.getLogger("fleet.dns")


class Outcome(StrEnum):
    answer = "answer"
    nxdomain = "nxdomain"  # the name does not exist
    nodata = "nodata"  # the name exists, with no record of this type
    timeout = "timeout"
    servfail = "servfail"
    refused = "refused"
    error = "error"


class MxRecord(
    NamedTuple
):  # not a dataclass (see fleet/plan.py); ordered as a tuple, as order=True did
    preference: int
    exchange: str  # lower case, without the final dot; "" for a null MX (RFC 7505)


class Answer(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    """What one question got. An `answer` carries at least one record: in `records` (A/AAAA:
    addresses; TXT: the joined strings) or, for MX, in `mx`."""

    outcome: Outcome
    records: tuple[str, ...] = ()
    detail: str = ""
    mx: tuple[MxRecord, ...] = ()

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.answer


_ERRNO_OUTCOME = {
    ares.ARES_ENOTFOUND: Outcome.nxdomain,
    ares.ARES_ENODATA: Outcome.nodata,
    ares.ARES_ETIMEOUT: Outcome.timeout,
    ares.ARES_ESERVFAIL: Outcome.servfail,
    ares.ARES_EREFUSED: Outcome.refused,
}

_OUTCOME_WORDS = {
    Outcome.nxdomain: "no such name",
    Outcome.nodata: "no record of that type",
    Outcome.timeout: "the resolver did not answer in time",
    Outcome.servfail: "the resolver answered SERVFAIL",
    Outcome.refused: "the resolver refused the query (REFUSED)",
}

# Definite replies of the resolver (a "no" is an answer too): it is up.
_REPLIES = frozenset({Outcome.nxdomain, Outcome.nodata, Outcome.servfail, Outcome.refused})

# c-ares errors that are not an answer at all, in words people can act on.
_ERRNO_WORDS = {
    ares.ARES_ECONNREFUSED: (
        "could not reach the resolver (nothing answers there, or it dropped the connection)"
    ),
    ares.ARES_EBADRESP: "the resolver's answer could not be read",
    ares.ARES_EFORMERR: "the resolver said the query was malformed (FORMERR)",
    ares.ARES_ENOTIMP: "the resolver does not implement this query (NOTIMP)",
    ares.ARES_EBADNAME: "the query name is not a valid DNS name",
}
# An answer fleet itself failed to read (its fault, logged): not the resolver's.
_UNREAD = "fleet could not read the resolver's answer (a fault of fleet's; see the log)"


@dataclass
class DnsStats:
    queries: int = 0  # questions actually sent (after de-duplication)
    by_type: dict[str, int] = field(default_factory=dict)
    retries: int = 0  # questions asked again after they timed out
    retries_answered: int = 0  # ... and answered in the end (by an answer or a definite "no")
    retry_asks: int = 0  # the extra asks of those questions, all rounds together
    retry_asks_answered: int = 0  # ... the ones that got an answer


class _Question:
    """One (name, type) of the sweep: its askers waiting, then its answer."""

    __slots__ = ("answer", "error", "name", "rtype", "shown", "waiters")

    def __init__(self, name: str, rtype: str, shown: str) -> None:
        self.name, self.rtype, self.shown = name, rtype, shown
        self.answer: Answer | None = None
        self.error: BaseException | None = None  # a fault of fleet's, for its askers
        # Each asker awaits a future of its own: a cancelled asker (its site's time budget
        # ran out) cancels only that future, never the question the others wait for.
        self.waiters: list[asyncio.Future[Answer]] = []


class _Send:
    """One ask of a question to c-ares, with the time by which it must call back."""

    __slots__ = ("deadline", "done", "finished", "question")

    def __init__(self, question: _Question, done: Callable[[Answer], None]) -> None:
        self.question, self.done = question, done
        self.deadline = 0.0
        self.finished = False  # answered, or given up on: a late callback is ignored


class Dns:
    """The sweep's resolver. Create inside the running event loop; close when done.

    A first question costs no task and no timer of its own (a sweep asks a thousand):
    it is sent from the asker's call, its reply settles its askers from c-ares's
    callback, and one timer for all questions in flight stops waiting for those c-ares
    never called back for. Only a question that timed out gets a task, for its retries."""

    def __init__(
        self,
        nameservers: list[str] | None = None,
        timeout_s: float = 3.0,
        tries: int = 2,
        concurrency: int = 100,
        second_chance: bool = True,
        retries: int = 3,
    ) -> None:
        self.nameservers = list(nameservers or [])
        self.timeout_s = timeout_s
        self.tries = tries
        self.second_chance = second_chance
        self.retries = retries  # extra asks of one question at most (after c-ares's tries)
        self._heard = False  # has the resolver answered anything (not a timeout) yet?
        self._loop = asyncio.get_running_loop()
        # ARES_FLAG_NOSEARCH: never append search domains; a DNSBL name is always absolute.
        # (No ARES_FLAG_NOCHECKRESP: with it c-ares would stop at the first resolver that
        # answers SERVFAIL or REFUSED instead of asking the next one, and would accept
        # answers to a question it did not ask. Without it, when every resolver refuses,
        # c-ares still reports SERVFAIL or REFUSED.)
        self._resolver = open_channel(
            self._loop, self.nameservers, timeout_s, tries, pycares.ARES_FLAG_NOSEARCH
        )
        # c-ares sends every question to the first nameserver and moves on only when it
        # fails, so this cap on asks in flight is also the most any nameserver gets.
        self._concurrency = concurrency
        self._waiting: deque[_Send] = deque()  # asks waiting for a slot, first come first
        # Asks in flight, in the order sent: with one budget for all, also the order of
        # their deadlines. c-ares has its own timeout and retries; this outer bound only
        # guards against a resolver that never calls back.
        self._in_flight: dict[_Send, None] = {}
        self._draining = False  # in `_free`'s loop (see there)
        self._budget = timeout_s * tries * 2 + 1
        self._expiry: asyncio.TimerHandle | None = None
        self._questions: dict[tuple[str, str], _Question] = {}
        self._retrying: set[asyncio.Task[None]] = set()
        self._closed = False
        self.stats = DnsStats()
        # First questions waiting for a slot or in flight; second chances wait for none.
        self._first_asks = 0
        self._quiet = asyncio.Event()
        self._quiet.set()

    @property
    def description(self) -> str:
        return ", ".join(self.nameservers) if self.nameservers else "the system resolver"

    async def close(self) -> None:
        """Stop questions still in flight (their askers get CancelledError) and the resolver."""
        self._closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        for question in self._questions.values():
            for waiter in question.waiters:
                waiter.cancel()
        pending = list(self._retrying)
        for task in pending:
            task.cancel()
        try:
            # The askers and the retries see their cancellation before c-ares is closed.
            # wait() does not raise for the cancelled retries, but a cancellation of
            # close() itself still reaches its caller (suppressing it here would eat it).
            if pending:
                await asyncio.wait(pending)
            else:
                await asyncio.sleep(0)
        finally:  # even when cancelled: c-ares must not call back into a closed loop later
            await self._resolver.close()

    async def query(self, name: str, rtype: str, *, shown: str | None = None) -> Answer:
        """Ask (name, rtype) once per sweep; never raises for DNS trouble. `shown` is the
        name as logged, when the name itself holds a secret (a DQS key)."""
        key = (name.lower().rstrip("."), rtype)
        question = self._questions.get(key)
        if question is None:
            question = self._start(key, shown or key[0])
        if question.answer is not None:
            return question.answer
        if question.error is not None:
            raise question.error
        if self._closed:
            raise asyncio.CancelledError  # close() stopped the question
        waiter: asyncio.Future[Answer] = self._loop.create_future()
        question.waiters.append(waiter)
        return await waiter  # cancelled: only this asker stops waiting

    def ask_ahead(self, name: str, rtype: str) -> None:
        """Ask (name, rtype) now, if nobody has, for a `query` that will want it soon."""
        key = (name.lower().rstrip("."), rtype)
        if key not in self._questions:
            self._start(key, key[0])

    def answered(self, name: str, rtype: str) -> Answer | None:
        """(name, rtype)'s answer when the sweep already has it, else None (not asked yet,
        or still in flight): a caller can then skip the tasks that would wait for it."""
        question = self._questions.get((name.lower().rstrip("."), rtype))
        return None if question is None else question.answer

    def _start(self, key: tuple[str, str], shown: str) -> _Question:
        if self._closed:
            raise asyncio.CancelledError  # as for a question close() stopped
        question = self._questions[key] = _Question(key[0], key[1], shown)
        self._first_asks += 1
        self._quiet.clear()
        self._send(question, functools.partial(self._first_done, question))
        return question

    def _first_done(self, question: _Question, answer: Answer) -> None:
        self._first_asks -= 1
        if not self._first_asks:
            self._quiet.set()
        if answer.outcome is not Outcome.timeout or not self.second_chance or self.retries < 1:
            self._settle(question, answer)
            return
        self.stats.retries += 1
        task = self._loop.create_task(self._ask_again(question, answer))
        self._retrying.add(task)
        task.add_done_callback(self._retrying.discard)

    def _settle(self, question: _Question, answer: Answer) -> None:
        question.answer = answer
        for waiter in question.waiters:
            if not waiter.done():
                waiter.set_result(answer)
        question.waiters.clear()

    async def _ask_again(self, question: _Question, answer: Answer) -> None:
        try:
            for ask in range(1, self.retries + 1):
                if ask > 1 and not self._heard:
                    break  # a resolver that answers nothing at all is down, not lossy
                # Unanswered: ask again when the resolver is no longer busy with first
                # questions, or once one more ask's time has passed.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.timeout_s * self.tries):
                        while self._first_asks:
                            await self._quiet.wait()
                self.stats.retry_asks += 1
                log.debug(
                    "%s %s: asked again (%d) after a timeout", question.rtype, question.shown, ask
                )
                reply: asyncio.Future[Answer] = self._loop.create_future()
                self._send(question, functools.partial(_set_unless_done, reply))
                answer = await reply
                if answer.outcome is not Outcome.timeout:
                    self.stats.retry_asks_answered += 1
                    self.stats.retries_answered += 1
                    break
        except asyncio.CancelledError:
            raise  # closed: close() has cancelled the askers already
        except Exception as exc:  # a fault of fleet's: its askers get it, as from a task
            self._fail(question, exc)
            return  # (handed on: re-raised, nobody would retrieve it from this task)
        self._settle(question, answer)

    def _fail(self, question: _Question, exc: BaseException) -> None:
        question.error = exc
        for waiter in question.waiters:
            if not waiter.done():
                waiter.set_exception(exc)
        question.waiters.clear()

    def _send(self, question: _Question, done: Callable[[Answer], None]) -> None:
        """Ask c-ares now if a slot is free, else when one is; `done` gets the answer."""
        send = _Send(question, done)
        if len(self._in_flight) < self._concurrency:
            self._issue(send)
        else:
            self._waiting.append(send)

    def _issue(self, send: _Send) -> None:
        question = send.question
        self.stats.queries += 1
        self.stats.by_type[question.rtype] = self.stats.by_type.get(question.rtype, 0) + 1
        send.deadline = self._loop.time() + self._budget
        self._in_flight[send] = None
        if self._expiry is None:
            self._expiry = self._loop.call_at(send.deadline, self._expire)
        try:
            self._resolver.query(
                question.name, question.rtype, functools.partial(self._replied, send)
            )
        except ValueError:  # a name c-ares will not send (the text may quote the name)
            self._replied(send, None, ares.ARES_EBADNAME)

    def _expire(self) -> None:
        """Stop waiting for asks c-ares has not called back for within the budget."""
        now = self._loop.time()
        while self._in_flight:
            send = next(iter(self._in_flight))
            if send.deadline > now:
                break
            question = send.question
            log.debug(
                "%s %s: no callback within %.1f s", question.rtype, question.shown, self._budget
            )
            self._finish(send, Answer(Outcome.timeout, detail=_OUTCOME_WORDS[Outcome.timeout]))
        self._expiry = None  # (not before: asks sent meanwhile must not start a timer too)
        if self._in_flight:
            first = next(iter(self._in_flight))
            self._expiry = self._loop.call_at(first.deadline, self._expire)

    def _replied(self, send: _Send, result: pycares.DNSResult | None, code: int | None) -> None:
        if send.finished or self._closed:
            return
        try:
            answer = self._answer(send.question, result, code)
        except Exception:  # a fault of fleet's reading an answer: logged, and no answer
            log.exception("%s %s", send.question.rtype, send.question.shown)
            answer = Answer(Outcome.error, detail=_UNREAD)
        self._finish(send, answer)

    def _free(self, send: _Send) -> None:
        send.finished = True
        del self._in_flight[send]
        # Only the outermost call drains the queue: c-ares answers a name it will not send
        # before `query` returns, so a queue of such names would otherwise recurse a level
        # an ask (past Python's limit, swallowed in c-ares's callback: askers never answered).
        if self._draining:
            return
        self._draining = True
        try:
            while self._waiting and len(self._in_flight) < self._concurrency:
                self._issue(self._waiting.popleft())
        finally:
            self._draining = False

    def _finish(self, send: _Send, answer: Answer) -> None:
        self._free(send)
        self._deliver(send, answer)

    def _deliver(self, send: _Send, answer: Answer) -> None:
        try:
            send.done(answer)
        except Exception as exc:  # a fault of fleet's: its askers get it, as from a task
            log.exception("%s %s", send.question.rtype, send.question.shown)
            self._fail(send.question, exc)

    def _answer(
        self, question: _Question, result: pycares.DNSResult | None, code: int | None
    ) -> Answer:
        rtype, shown = question.rtype, question.shown
        if code is not None:
            outcome = _ERRNO_OUTCOME.get(code, Outcome.error)
            words = (
                _OUTCOME_WORDS.get(outcome)
                or _ERRNO_WORDS.get(code)
                or f"DNS error: {_strerror(code)}"
            )
            # `shown`: the name with a DQS key blanked, when it holds one.
            log.debug("%s %s: %s", rtype, shown, outcome.value)
            self._heard = self._heard or outcome in _REPLIES
            return Answer(outcome, detail=words)  # our words: never the query name
        assert result is not None  # noqa: S101 - c-ares gives a result or an error
        self._heard = True
        answer = _records(result, rtype)
        log.debug("%s %s: %s %s", rtype, shown, answer.outcome.value, answer.records)
        return answer

    async def addresses(self, host: str) -> Answer:
        """IPv4 then IPv6 addresses of a host name (an IP literal answers itself)."""
        if is_ip(host):  # cached: a name is not parsed (and rejected) again per conversation
            return Answer(Outcome.answer, (str(ipaddress.ip_address(host)),))
        if host.lower() == "localhost":
            return Answer(Outcome.answer, ("127.0.0.1",))
        # both in flight together; a host another conversation asked is answered at once
        self.ask_ahead(host, "A")
        self.ask_ahead(host, "AAAA")
        v4, v6 = await self.query(host, "A"), await self.query(host, "AAAA")
        records = v4.records + v6.records
        if records:
            return Answer(Outcome.answer, records)
        # Report the more telling failure: a timeout says more than "no AAAA".
        for candidate in (v4, v6):
            if candidate.outcome not in (Outcome.nodata, Outcome.nxdomain):
                return candidate
        return v4


def _strerror(code: int) -> str:
    text = ares.strerror(code)
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else text


def _set_unless_done(future: asyncio.Future[Answer], answer: Answer) -> None:
    if not future.done():
        future.set_result(answer)


def _records(result: pycares.DNSResult, rtype: str) -> Answer:
    out: list[str] = []
    mx: list[MxRecord] = []
    for record in result.answer:
        data = record.data
        if rtype in ("A", "AAAA") and isinstance(
            data, pycares.ARecordData | pycares.AAAARecordData
        ):
            if record.type == (pycares.QUERY_TYPE_A if rtype == "A" else pycares.QUERY_TYPE_AAAA):
                out.append(data.addr)
        elif rtype == "TXT" and isinstance(data, pycares.TXTRecordData):
            out.append(data.data.decode("utf-8", "replace"))
        elif rtype == "MX" and isinstance(data, pycares.MXRecordData):
            mx.append(MxRecord(data.priority, data.exchange.rstrip(".").lower()))
    if not out and not mx:
        # Answers of another type only (a CNAME chain to nothing, a wrong record type).
        kinds = sorted({_type_name(r.type) for r in result.answer})
        detail = f"answer had no {rtype} record" + (f" (only {', '.join(kinds)})" if kinds else "")
        return Answer(Outcome.nodata, detail=detail)
    return Answer(Outcome.answer, tuple(out), mx=tuple(mx))


def _type_name(qtype: int) -> str:
    for name in ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "PTR", "SRV"):
        if getattr(pycares, f"QUERY_TYPE_{name}", None) == qtype:
            return name
    return str(qtype)


def nameserver_addresses(servers: list[str]) -> list[str]:
    """The inventory's nameservers as c-ares wants them: names (`dns.msp.lan`,
    `localhost:5353`) become their system-resolver address, IPv4 first; addresses stay."""
    out = []
    for server in servers:
        host, port = split_host_port(server)
        if server.startswith("[") or is_ip(host):
            out.append(server)
            continue
        try:
            # Once per sweep, before anything is probed: a short blocking call is fine here.
            found = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
        except OSError as exc:
            raise NameserverError(
                f"defaults.dns.nameservers: cannot resolve '{host}': {exc}"
            ) from None
        addresses = sorted({str(info[4][0]) for info in found}, key=lambda a: (":" in a, a))
        address = addresses[0]
        if port is None:
            out.append(address)
        else:
            out.append(join_host_port(address, port))
    return out
