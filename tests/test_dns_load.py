"""DNS under load: a resolver that drops a share of queries (or answers too late) must not
turn sites `unknown`. A question still unanswered after c-ares's own tries is asked once
more before the sweep ends, the retries are counted in the sweep's JSON, and the questions
in flight stay under the cap.

The lossy resolver is the lab DNS server dropping the first queries of a fixed share of
names (LabDns.lose): each such name goes unanswered through every try c-ares makes, so only
the sweep's second chance gets its answer. A control run without the second chance shows
those lookups would have ended `unknown`. A name lost on its first extra ask as well is
asked again (up to Dns.retries extra asks); a resolver that answers nothing gets one.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import uvloop

from fleet.dns import Dns, Outcome
from fleet.dns_channel import LoopChannel
from fleet.inventory import load_inventory
from fleet.lab.dns import LabDns
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.probes.dnsbl import BlocklistProbe
from fleet.probes.spf import evaluate
from fleet.report.json_report import render_json
from fleet.results import BlocklistStatus, SpfResult, Verdict

from .conftest import M365Lab
from .dnsbl_helpers import zone
from .hostile import publish_contoso
from .inventory_builder import InventoryBuilder, device, lab_defaults

ZONE = "zen.load.test"
TIMEOUT_S = 0.5  # per try: small, so that dropped queries cost little time, yet above
# what the lab server (in this process, beside the sweep) takes on a busy machine
IPS = [f"127.0.5.{n}" for n in range(1, 121)]
LISTED = IPS[7]


async def lookups(
    lab_dns: LabDns, *, tries: int, second_chance: bool, retries: int = 3
) -> tuple[list[str], Dns]:
    dns = Dns(
        [lab_dns.nameserver],
        timeout_s=TIMEOUT_S,
        tries=tries,
        concurrency=20,
        second_chance=second_chance,
        retries=retries,
    )
    try:
        results = await BlocklistProbe(dns, [zone(ZONE)]).check(IPS)
    finally:
        await dns.close()
    return [r.status.value for r in results], dns


@pytest.mark.slow
async def test_a_resolver_that_drops_queries_leaves_no_lookup_unknown(lab_dns: LabDns) -> None:
    # Given a resolver that drops every try c-ares makes for a third of the names
    lab_dns.blocklist(ZONE, {LISTED: ("127.0.0.4",)})
    lab_dns.lose(0.3, first=2, seed=1)

    # When 120 IPs are looked up with two tries each
    statuses, dns = await lookups(lab_dns, tries=2, second_chance=True)

    # Then every IP has its real status: none is unknown for want of a retry
    assert statuses.count("unknown") == 0, statuses
    assert statuses.count("listed") == 1
    assert statuses[IPS.index(LISTED)] == "listed"
    # ... the lost questions were asked once more, and every second ask was answered
    assert lab_dns.log.dropped > 0
    assert dns.stats.retries > 10
    assert dns.stats.retries_answered == dns.stats.retries
    # ... and the cap held: never more than 20 questions at the server at once
    assert lab_dns.log.max_in_flight <= 20


async def test_without_the_second_chance_the_same_resolver_leaves_sites_unknown(
    lab_dns: LabDns,
) -> None:
    # The control: the loss above is real, c-ares's own tries do not get past it
    lab_dns.blocklist(ZONE, {LISTED: ("127.0.0.4",)})
    lab_dns.lose(0.3, first=2, seed=1)
    statuses, dns = await lookups(lab_dns, tries=2, second_chance=False)
    assert statuses.count("unknown") > 10
    assert dns.stats.retries == 0


@pytest.mark.slow
async def test_names_lost_on_the_first_extra_ask_too_are_asked_again(lab_dns: LabDns) -> None:
    # Given a resolver that drops the first four queries of a third of the IPs' names: both
    # of c-ares's tries of the first ask, and both of the first extra ask (it answers the
    # zone's self-test: a resolver that answers nothing gets one extra ask, see below)
    lab_dns.blocklist(ZONE, {LISTED: ("127.0.0.4",)})
    lab_dns.lose(0.3, first=4, seed=1, under=f"5.0.127.{ZONE}")

    # When 120 IPs are looked up with two tries each
    statuses, dns = await lookups(lab_dns, tries=2, second_chance=True)

    # Then no lookup is unknown: each lost name was asked a third time, and answered
    assert statuses.count("unknown") == 0, statuses
    assert statuses[IPS.index(LISTED)] == "listed"
    lost = dns.stats.retries
    assert lost > 10
    assert dns.stats.retries_answered == lost
    assert (dns.stats.retry_asks, dns.stats.retry_asks_answered) == (2 * lost, lost)
    # every question asked once, or 2 + 2 times lost and a fifth time
    counts = list(lab_dns.log.counts.values())
    assert set(counts) == {1, 5}
    assert counts.count(5) == lost
    assert lab_dns.log.max_in_flight <= 20


@pytest.mark.slow
async def test_one_extra_ask_alone_leaves_those_names_unknown(lab_dns: LabDns) -> None:
    # The control: with a single extra ask (the sweep's first design), the same loss wins
    lab_dns.blocklist(ZONE, {LISTED: ("127.0.0.4",)})
    lab_dns.lose(0.3, first=4, seed=1, under=f"5.0.127.{ZONE}")
    statuses, dns = await lookups(lab_dns, tries=2, second_chance=True, retries=1)
    assert statuses.count("unknown") > 10
    assert dns.stats.retries_answered == 0


async def test_a_name_that_never_answers_is_asked_a_bounded_number_of_times(
    lab_dns: LabDns,
) -> None:
    lab_dns.fault("dead.load.test", "timeout")
    lab_dns.add("alive.load.test", "A", "127.0.0.9")
    dns = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=1, retries=3)
    try:
        alive = await dns.query("alive.load.test", "A")
        dead = await dns.query("dead.load.test", "A")
    finally:
        await dns.close()
    assert dead.outcome is Outcome.timeout  # never "no such name"
    assert alive.records == ("127.0.0.9",)
    # one try, then three extra asks (the resolver answers others: it is up), no more
    assert lab_dns.log.count("dead.load.test", "A") == 4
    assert lab_dns.log.count("alive.load.test", "A") == 1
    assert (dns.stats.retries, dns.stats.retries_answered) == (1, 0)
    assert (dns.stats.retry_asks, dns.stats.retry_asks_answered) == (3, 0)


async def test_a_resolver_that_answers_nothing_gets_one_extra_ask_per_question(
    lab_dns: LabDns,
) -> None:
    # A resolver that is down, not lossy: asking each question three more times would only
    # add minutes to a sweep
    lab_dns.fault("load.test", "timeout")
    dns = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=1, retries=3)
    names = [f"n{n}.load.test" for n in range(3)]
    try:
        answers = await asyncio.gather(*(dns.query(name, "A") for name in names))
    finally:
        await dns.close()
    assert {a.outcome for a in answers} == {Outcome.timeout}
    assert [lab_dns.log.count(name, "A") for name in names] == [2, 2, 2]
    assert (dns.stats.retries, dns.stats.retry_asks) == (3, 3)


async def test_the_second_ask_waits_until_no_first_question_is_in_flight(
    lab_dns: LabDns,
) -> None:
    # Given a name whose first query is lost, and slow names first asked while it waits
    lab_dns.add("lost.load.test", "A", "127.0.0.8")
    lab_dns.lose(1.0, first=1, under="lost.load.test")
    for n in range(4):
        lab_dns.add(f"n{n}.slow.load.test", "A", f"127.0.0.{20 + n}")
    # The slow names are in flight from 0.9 s to 1.3 s, when the lost one times out (1 s);
    # their 0.4 s answers stay well inside the timeout even on a busy machine.
    lab_dns.delay("slow.load.test", 0.4)
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1, concurrency=8)
    finished: dict[str, float] = {}

    async def ask(name: str, after_s: float) -> None:
        await asyncio.sleep(after_s)  # the slow names are asked while the lost one waits
        await dns.query(name, "A")
        finished[name] = time.monotonic()

    try:
        await asyncio.gather(
            ask("lost.load.test", 0), *(ask(f"n{n}.slow.load.test", 0.9) for n in range(4))
        )
        lost = await dns.query("lost.load.test", "A")
    finally:
        await dns.close()

    # Then it was answered the second time, and that second ask went out only after the
    # slow first questions (in flight when it timed out at 1 s) were answered
    assert lost.records == ("127.0.0.8",)
    assert lab_dns.log.count("lost.load.test", "A") == 2
    assert finished["lost.load.test"] >= max(finished[f"n{n}.slow.load.test"] for n in range(4))
    assert dns.stats.retries == dns.stats.retries_answered == 1


@pytest.mark.parametrize(
    ("first", "under"),
    [
        # both of c-ares's tries lost for a quarter of all names asked (blocklist lookups,
        # the self-test, MX, SPF)
        (2, None),
        # the first extra ask's two tries lost as well, for a quarter of the IPs' lookups
        (4, f"6.0.127.{ZONE}"),
    ],
)
async def test_a_sweep_against_a_lossy_resolver_ends_no_site_unknown(
    m365: M365Lab,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    first: int,
    under: str | None,
) -> None:
    # Given 60 Direct Send sites, and a resolver that drops the first queries of a quarter
    # of the names it is asked
    sites = 60
    publish_contoso(lab_dns)
    lab_dns.blocklist(ZONE)
    lab_dns.lose(0.25, first=first, seed=3, under=under)
    defaults = lab_defaults(lab_dns, connect_s=2, command_s=2, site_s=10, dns_timeout_s=TIMEOUT_S)
    defaults["dns"].update(tries=2, concurrency=16)
    inventory = InventoryBuilder(defaults, blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}])
    mfp = device(m365.mx.port, m365.ca_file, host="localhost", to="alice@contoso.test")
    for n in range(sites):
        inventory.site(f"office-{n:02d}", mfp, client="Contoso", bind=f"127.0.6.{n + 1}")
    plan = plan_sweep(load_inventory(str(write_inventory(inventory))))

    # When it is swept
    result = await run_sweep(plan)

    # Then no site is unknown, every blocklist lookup is clean, and the checks answered
    assert result.sweep.complete
    assert [s.verdict for s in result.sites] == [Verdict.ok] * sites, [
        (s.site, [f.evidence for f in s.flags]) for s in result.sites if s.verdict is not Verdict.ok
    ][:3]
    assert {b.status for s in result.sites for b in s.blocklists} == {BlocklistStatus.clean}
    # ... because what was lost was asked once more, and the JSON says how often
    assert lab_dns.log.dropped > 0
    # (lost on the first extra ask too: asked a third time, and answered)
    assert first + 1 in lab_dns.log.counts.values()
    document = json.loads(render_json(result))["sweep"]
    assert document["dns_retries"] > 0
    assert document["dns_retries_answered"] == document["dns_retries"]


def test_on_uvloop_c_ares_is_driven_by_the_loop_and_lost_questions_are_still_asked_again() -> None:
    # fleet sweeps on uvloop: there c-ares runs on the loop, not on a thread of its own (as
    # on asyncio's loop, in the tests above; on Windows's proactor loop, aiodns's thread)
    async def scenario() -> tuple[bool, tuple[str, ...], tuple[str, ...], int]:
        lab = LabDns()
        await lab.start()
        try:
            lab.add("alive.load.test", "A", "127.0.0.9")
            lab.add("lost.load.test", "A", "127.0.0.8")
            lab.lose(1.0, first=1, under="lost.load.test")
            dns = Dns([lab.nameserver], timeout_s=TIMEOUT_S, tries=1)
            try:
                alive = await dns.query("alive.load.test", "A")
                lost = await dns.query("lost.load.test", "A")
            finally:
                await dns.close()
            loop_driven = isinstance(dns._resolver, LoopChannel)
            return loop_driven, alive.records, lost.records, lab.log.count("lost.load.test")
        finally:
            await lab.stop()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        loop_driven, alive, lost, asked = runner.run(scenario())
    assert loop_driven
    assert alive == ("127.0.0.9",)
    assert lost == ("127.0.0.8",)  # its first query lost, the extra ask answered
    assert asked == 2


async def test_a_lost_question_is_asked_again_while_first_questions_keep_the_resolver_busy(
    lab_dns: LabDns,
) -> None:
    # Given an SPF record whose first query is lost, and a steady stream of slow first
    # questions (a big sweep against a lossy resolver: some first question is always in
    # flight), for longer than the SPF evaluation's budget
    lab_dns.add("contoso.load.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
    lab_dns.lose(1.0, first=1, under="contoso.load.test")
    lab_dns.delay("busy.load.test", 0.3)
    dns = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=1)
    stream_ends = time.monotonic() + 3.0

    async def busy() -> None:
        asked = []
        while time.monotonic() < stream_ends:
            asked.append(asyncio.ensure_future(dns.query(f"n{len(asked)}.busy.load.test", "A")))
            await asyncio.sleep(0.15)  # the next one starts while this one is in flight
        await asyncio.gather(*asked)

    try:
        stream = asyncio.ensure_future(busy())
        evaluation = await evaluate(
            dns,
            "contoso.load.test",
            "127.0.0.5",
            "scanner@contoso.load.test",
            "mfp",
            budget_s=1.5,
        )
        answered = time.monotonic()
        await stream
    finally:
        await dns.close()

    # Then the record was asked again after one ask's time, not when the stream ended, and
    # the evaluation passed within its budget (it used to end temperror: the site unknown)
    assert evaluation.result is SpfResult.pass_, evaluation.detail
    assert answered < stream_ends
    assert lab_dns.log.count("contoso.load.test", "TXT") == 2
    assert dns.stats.retries == dns.stats.retries_answered == 1


async def test_a_mail_host_s_addresses_are_asked_once_and_read_from_the_memo_after(
    lab_dns: LabDns,
) -> None:
    # Given a mail host with IPv4 and IPv6 addresses, and one with neither
    lab_dns.add("mx.addresses.test", "A", "192.0.2.25")
    lab_dns.add("mx.addresses.test", "AAAA", "2001:db8::25")
    dns = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=2)
    try:
        # When every conversation of a sweep asks for them (issue 20: after the first, from
        # the answers the sweep has, without asking or waiting)
        first = await dns.addresses("mx.addresses.test")
        again = [await dns.addresses("MX.addresses.test") for _ in range(3)]
        missing = [await dns.addresses("gone.addresses.test") for _ in range(2)]
        literal = await dns.addresses("192.0.2.7")
        local = await dns.addresses("localhost")
    finally:
        await dns.close()
    # Then each answer is the first one, and each question was asked once
    assert first.records == ("192.0.2.25", "2001:db8::25")
    assert all(a == first for a in again)
    assert missing[0] == missing[1]
    assert missing[0].outcome in (Outcome.nxdomain, Outcome.nodata)
    assert (literal.records, local.records) == (("192.0.2.7",), ("127.0.0.1",))
    for name in ("mx.addresses.test", "gone.addresses.test"):
        assert lab_dns.log.count(name, "A") == lab_dns.log.count(name, "AAAA") == 1
