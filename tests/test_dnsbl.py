"""The blocklist probe against real DNS servers on loopback: rbldnsd (the server many
blocklists run) for listings, and the lab DNS server for every way a lookup can fail.

The rule under test: `clean` only from NXDOMAIN after a passed self-test, `listed` only
from a 127.0.0.x listing code, and everything else `unknown`, with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleet.credentials import REDACTED
from fleet.dns import Dns, Outcome
from fleet.inventory import load_inventory, parse_inventory
from fleet.lab.dns import LabDns
from fleet.pipeline import run_measured, run_sweep
from fleet.plan import plan_sweep, zones_from_inventory
from fleet.probes.dnsbl_zones import DQS_ZONE, SPAMHAUS_ERRORS, reverse_name
from fleet.results import BlocklistStatus, ListingSeverity, Verdict

from .conftest import M365Lab, eventually, require_binary
from .dnsbl_helpers import (
    TIMEOUT_S,
    Rbldnsd,
    assert_unknown,
    free_udp_port,
    probe_on,
    rbldnsd_folder,
    remove_folder,
    zone,
)
from .inventory_builder import InventoryBuilder, lab_defaults

ZEN = "zen.lab.test"
LISTED, POLICY, CLEAN = "127.0.0.20", "127.0.0.21", "127.0.0.30"
REFUSAL_CODES = ["127.255.255.252", "127.255.255.254", "127.255.255.255"]


def a_count(lab: LabDns, ip: str, zone_name: str = ZEN, rtype: str = "A") -> int:
    """How many times the server was asked about `ip` on `zone_name`."""
    return lab.log.count(f"{reverse_name(ip)}.{zone_name}", rtype)


# ---- rbldnsd: the real server --------------------------------------------------------------

SBL = """\
:127.0.0.2:Listed by lab SBL, see https://lab.test/query/ip/$
127.0.0.2
127.0.0.20
127.0.0.22
"""
XBL = """\
:127.0.0.4:Listed by lab XBL (infected host), see https://lab.test/query/ip/$
127.0.0.22
"""
PBL = """\
:127.0.0.10:$ is in a dynamic range (lab PBL), see https://lab.test/pbl/$
127.0.0.21
127.0.0.22
127.0.0.24
"""
PBL_SPAMHAUS = """\
:127.0.0.11:$ is an end-user range (lab PBL, Spamhaus-maintained)
127.0.0.23
127.0.0.24
"""
V6 = """\
:127.0.0.2:Listed by lab IPv6 list, see https://lab.test/query/ip/$
2001:db8:7ca6:22::45
2001:db8:bad::/48
"""


@pytest.fixture
def rbldnsd() -> Iterator[Callable[..., Rbldnsd]]:
    """Start rbldnsd (`start({file: text}, *zone_specs)`); every one is stopped by PID."""
    binary = require_binary("rbldnsd")
    folder = rbldnsd_folder()
    servers: list[Rbldnsd] = []

    def start(files: dict[str, str], *zone_specs: str) -> Rbldnsd:
        server = Rbldnsd(binary, folder)
        for name, text in files.items():
            server.write(name, text)
        servers.append(server)
        return server.start(*zone_specs)

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
        remove_folder(folder)


@pytest.fixture
def zen_rbldnsd(rbldnsd: Callable[..., Rbldnsd]) -> Rbldnsd:
    """A ZEN-like zone made of several lists, as Spamhaus builds zen: SBL+XBL+PBL."""
    files = {"sbl": SBL, "xbl": XBL, "pbl": PBL, "pbl-sh": PBL_SPAMHAUS, "v6": V6}
    return rbldnsd(
        files,
        f"{ZEN}:ip4set:sbl,xbl",
        f"{ZEN}:ip4set:pbl,pbl-sh",
        f"{ZEN}:ip6trie:v6",  # one zone for both families, as zen.spamhaus.org is
        "notest.lab.test:ip4set:xbl",  # a list without the RFC 5782 test entry
    )


async def test_rbldnsd_listing_has_codes_lists_meaning_txt_reason_and_delisting_hint(
    zen_rbldnsd: Rbldnsd,
) -> None:
    async with probe_on(zen_rbldnsd.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert result.status is BlocklistStatus.listed
    assert (result.ip, result.zone, result.name) == (LISTED, ZEN, "Spamhaus ZEN")
    assert result.codes == ["127.0.0.2"]
    assert result.lists == ["SBL"]
    assert result.meaning is not None
    assert "verified spam source" in result.meaning
    assert result.severity is ListingSeverity.abuse
    assert result.reason == f"Listed by lab SBL, see https://lab.test/query/ip/{LISTED}"
    assert result.delist is not None
    assert LISTED in result.delist
    assert result.detail is None


async def test_rbldnsd_unlisted_ip_is_clean(zen_rbldnsd: Rbldnsd) -> None:
    async with probe_on(zen_rbldnsd.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([CLEAN])
    assert result.status is BlocklistStatus.clean
    assert (result.codes, result.lists, result.severity, result.reason) == ([], [], None, None)
    assert result.detail is None


@pytest.mark.parametrize(
    ("ip", "codes", "severity"),
    [
        ("127.0.0.21", ["127.0.0.10"], ListingSeverity.policy),  # PBL, ISP-maintained
        ("127.0.0.23", ["127.0.0.11"], ListingSeverity.policy),  # PBL, Spamhaus-maintained
        ("127.0.0.24", ["127.0.0.10", "127.0.0.11"], ListingSeverity.policy),
        # A policy listing next to an abuse listing is abuse: the IP is a spam source.
        ("127.0.0.22", ["127.0.0.2", "127.0.0.4", "127.0.0.10"], ListingSeverity.abuse),
    ],
)
async def test_rbldnsd_policy_listings_are_policy_and_mixed_codes_are_abuse(
    zen_rbldnsd: Rbldnsd, ip: str, codes: list[str], severity: ListingSeverity
) -> None:
    async with probe_on(zen_rbldnsd.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([ip])
    assert result.status is BlocklistStatus.listed
    assert result.codes == codes
    assert result.severity is severity
    if severity is ListingSeverity.policy:
        assert all(name.startswith("PBL") for name in result.lists)
        assert result.meaning is not None
        assert "should not send mail directly" in result.meaning
    else:
        assert result.lists == ["SBL", "XBL", "PBL (ISP)"]
    # rbldnsd gives one TXT per listing; the reason carries them all.
    assert result.reason is not None
    assert ip in result.reason


async def test_rbldnsd_self_test_passes_once_and_each_ip_is_asked_once(
    zen_rbldnsd: Rbldnsd,
) -> None:
    async with probe_on(zen_rbldnsd.nameserver, zone(ZEN)) as probe:
        assert await probe.self_test(probe.zones[0]) is None
        results = await probe.check([LISTED, CLEAN, POLICY, LISTED, CLEAN])
        stats = probe.dns.stats
    assert [r.status for r in results] == [
        BlocklistStatus.listed,
        BlocklistStatus.clean,
        BlocklistStatus.listed,
        BlocklistStatus.listed,
        BlocklistStatus.clean,
    ]
    # Two self-test questions, one A per distinct IP, one TXT per listed IP.
    assert stats.by_type == {"A": 2 + 3, "TXT": 2}


async def test_rbldnsd_zone_without_its_test_entry_fails_the_self_test(
    zen_rbldnsd: Rbldnsd,
) -> None:
    # Given a list that does not list 127.0.0.2 (RFC 5782), such as a dead or wrong zone
    async with probe_on(zen_rbldnsd.nameserver, zone("notest.lab.test", "generic")) as probe:
        # When a listed and an unlisted IP are looked up on it
        results = await probe.check(["127.0.0.22", CLEAN])
        stats = probe.dns.stats
    # Then neither is listed nor clean, and only the self-test was asked
    for result in results:
        assert_unknown(result, "self-test failed", "127.0.0.2 is not listed")
    assert stats.queries == 2


async def test_rbldnsd_ipv6_listing_in_nibble_form(zen_rbldnsd: Rbldnsd) -> None:
    async with probe_on(zen_rbldnsd.nameserver, zone(ZEN)) as probe:
        listed, in_range, clean = await probe.check(
            ["2001:db8:7ca6:22::45", "2001:db8:bad::25", "2001:db8::1"]
        )
    assert listed.status is BlocklistStatus.listed
    assert (listed.codes, listed.lists) == (["127.0.0.2"], ["SBL"])
    assert (
        listed.reason
        == "Listed by lab IPv6 list, see https://lab.test/query/ip/2001:db8:7ca6:22::45"
    )
    assert in_range.status is BlocklistStatus.listed  # listed as part of a /48
    assert clean.status is BlocklistStatus.clean


async def test_rbldnsd_a_delisting_is_seen_by_the_next_sweep(
    rbldnsd: Callable[..., Rbldnsd],
) -> None:
    # Given rbldnsd serving a listing, and a sweep that saw it
    server = rbldnsd({"sbl": SBL}, f"{ZEN}:ip4set:sbl")
    async with probe_on(server.nameserver, zone(ZEN)) as first_sweep:
        [before] = await first_sweep.check([LISTED])
    assert before.status is BlocklistStatus.listed
    # When the list drops the IP (rbldnsd re-reads its files every second)
    server.write("sbl", SBL.replace("127.0.0.20\n", ""))
    # Then a later sweep sees it clean: nothing is cached from one sweep to the next
    deadline = time.monotonic() + 10
    while True:
        async with probe_on(server.nameserver, zone(ZEN)) as next_sweep:
            [after] = await next_sweep.check([LISTED])
        if after.status is not BlocklistStatus.listed or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # waiting for rbldnsd's reload, not for a timeout
    assert after.status is BlocklistStatus.clean


# ---- the lab DNS server: statuses ----------------------------------------------------------


@pytest.fixture
def zen(lab_dns: LabDns) -> LabDns:
    """A working ZEN-like zone on the lab server: a listed, a policy and a clean IP."""
    lab_dns.blocklist(ZEN, {LISTED: ("127.0.0.2", "127.0.0.4"), POLICY: ("127.0.0.10",)})
    return lab_dns


async def test_listed_clean_and_unknown_side_by_side(zen: LabDns) -> None:
    timing_out = "127.0.0.40"
    zen.fault(f"{reverse_name(timing_out)}.{ZEN}", "timeout")
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        listed, clean, unknown = await probe.check([LISTED, CLEAN, timing_out])

    assert listed.status is BlocklistStatus.listed
    assert listed.codes == ["127.0.0.2", "127.0.0.4"]
    assert listed.lists == ["SBL", "XBL"]
    assert listed.meaning is not None
    assert "verified spam source" in listed.meaning
    assert "infected" in listed.meaning
    assert listed.severity is ListingSeverity.abuse
    assert listed.reason == f"Listed by lab, see https://lab.test/query/ip/{LISTED}"
    assert listed.delist == f"https://check.spamhaus.org/ (look up {LISTED})"

    assert clean.status is BlocklistStatus.clean
    assert clean.detail is None

    assert_unknown(unknown, "did not answer in time")


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("timeout", "did not answer in time"),
        ("servfail", "SERVFAIL"),
        ("refused", "REFUSED"),
        ("truncate", "could not reach the resolver"),  # TC over UDP, nothing over TCP
        ("wrong_type", "no A record (only TXT)"),
    ],
)
async def test_a_fault_on_one_ip_makes_that_lookup_unknown(
    zen: LabDns, fault: str, words: str
) -> None:
    zen.fault(f"{reverse_name(LISTED)}.{ZEN}", fault)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        faulty, policy, clean = await probe.check([LISTED, POLICY, CLEAN])
    assert_unknown(faulty, words)
    # The rest of the zone still answers.
    assert policy.status is BlocklistStatus.listed
    assert clean.status is BlocklistStatus.clean


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("timeout", "did not answer in time"),
        ("servfail", "SERVFAIL"),
        ("refused", "REFUSED"),
        ("truncate", "could not reach the resolver"),
        ("wrong_type", "no A record"),
    ],
)
async def test_a_zone_that_fails_its_self_test_is_unknown_for_every_ip_without_asking(
    zen: LabDns, fault: str, words: str
) -> None:
    # Given a zone whose every name misbehaves
    zen.fault(ZEN, fault)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        results = await probe.check([LISTED, POLICY, CLEAN])
    # Then every lookup is unknown, with the self-test's reason
    for result in results:
        assert_unknown(result, "self-test failed", words, zen.nameserver)
    # And only the two test entries were asked about, never the IPs
    assert zen.log.names() == {f"2.0.0.127.{ZEN}", f"1.0.0.127.{ZEN}"}


@pytest.mark.parametrize("code", REFUSAL_CODES)
async def test_spamhaus_refusal_code_fails_the_self_test(lab_dns: LabDns, code: str) -> None:
    # Given Spamhaus answering its refusal code for every name, the test entry included
    lab_dns.list_ip(ZEN, "127.0.0.2", code)
    lab_dns.list_ip(ZEN, "127.0.0.1", code)
    lab_dns.list_ip(ZEN, LISTED, code)
    async with probe_on(lab_dns.nameserver, zone(ZEN)) as probe:
        results = await probe.check([LISTED, CLEAN])
    # Then no IP is listed or clean: each says why Spamhaus did not answer
    for result in results:
        assert_unknown(result, "self-test failed", SPAMHAUS_ERRORS[code])
        assert result.codes == []
    assert a_count(lab_dns, LISTED) == 0
    assert a_count(lab_dns, CLEAN) == 0


async def test_public_resolver_refusal_says_what_to_do(lab_dns: LabDns) -> None:
    lab_dns.list_ip(ZEN, "127.0.0.2", "127.255.255.254")
    async with probe_on(lab_dns.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "refuses this resolver", "use a local recursive resolver or a DQS key")


@pytest.mark.parametrize("code", REFUSAL_CODES)
async def test_spamhaus_refusal_code_for_one_ip_is_unknown(zen: LabDns, code: str) -> None:
    # Given a zone that passes its self-test but refuses to answer for one IP
    zen.list_ip(ZEN, LISTED, code)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        refused, policy = await probe.check([LISTED, POLICY])
    assert_unknown(refused, SPAMHAUS_ERRORS[code])
    assert refused.codes == [code]  # the evidence is kept
    assert policy.status is BlocklistStatus.listed
    # A refusal is not a listing: no TXT reason is fetched for it
    assert a_count(zen, LISTED, rtype="TXT") == 0


async def test_a_refusal_code_next_to_a_listing_code_is_still_unknown(zen: LabDns) -> None:
    zen.list_ip(ZEN, LISTED, "127.0.0.2", "127.255.255.254")
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "refuses this resolver")


@pytest.mark.parametrize("code", ["127.255.255.254", "127.0.1.255"])
async def test_error_answers_are_unknown_on_other_lists_too(lab_dns: LabDns, code: str) -> None:
    lab_dns.blocklist("bl.lab.test", {LISTED: (code,)})
    async with probe_on(lab_dns.nameserver, zone("bl.lab.test", "spamhaus-zen")) as spamhaus:
        [on_spamhaus] = await spamhaus.check([LISTED])
    assert_unknown(on_spamhaus)
    if code.startswith("127.255.255."):
        async with probe_on(lab_dns.nameserver, zone("bl.lab.test", "generic")) as generic:
            [on_generic] = await generic.check([LISTED])
        assert_unknown(on_generic, "error code")


@pytest.mark.parametrize("answer", ["198.51.100.7", "10.0.0.1", "0.0.0.0"])
async def test_answers_outside_loopback_are_unknown(zen: LabDns, answer: str) -> None:
    # A resolver that rewrites missing names to an ad server answers outside 127.0.0.0/8.
    zen.list_ip(ZEN, LISTED, answer)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "outside 127.0.0.0/8")


async def test_a_resolver_rewriting_every_name_fails_the_self_test(lab_dns: LabDns) -> None:
    lab_dns.list_ip(ZEN, "127.0.0.2", "198.51.100.7")
    lab_dns.list_ip(ZEN, "127.0.0.1", "198.51.100.7")
    async with probe_on(lab_dns.nameserver, zone(ZEN, "generic")) as probe:
        [result] = await probe.check([CLEAN])
    assert_unknown(result, "self-test failed", "outside 127.0.0.0/8")


async def test_a_list_that_lists_the_world_fails_the_self_test(lab_dns: LabDns) -> None:
    # Given a dead list whose owner made it answer 127.0.0.2 for every name
    lab_dns.blocklist(ZEN)
    lab_dns.list_ip(ZEN, "127.0.0.1", "127.0.0.2")
    lab_dns.list_ip(ZEN, CLEAN, "127.0.0.2")
    async with probe_on(lab_dns.nameserver, zone(ZEN, "generic")) as probe:
        [result] = await probe.check([CLEAN])
    # Then the listing is not believed
    assert_unknown(result, "self-test failed", "127.0.0.1 is listed")
    assert a_count(lab_dns, CLEAN) == 0


async def test_a_list_answering_127_0_0_1_for_every_name_fails_the_self_test(
    lab_dns: LabDns,
) -> None:
    # echo_client answers with the client's address, 127.0.0.1, whatever the question
    lab_dns.fault(ZEN, "echo_client")
    async with probe_on(lab_dns.nameserver, zone(ZEN, "generic")) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "self-test failed")


async def test_an_ip_answered_with_127_0_0_1_is_unknown(zen: LabDns) -> None:
    zen.list_ip(ZEN, LISTED, "127.0.0.1")
    async with probe_on(zen.nameserver, zone(ZEN, "generic")) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "127.0.0.1", "not a listing code")


async def test_a_slow_answer_within_the_timeout_is_still_read(zen: LabDns) -> None:
    zen.delay(ZEN, TIMEOUT_S / 3)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        listed, clean = await probe.check([LISTED, CLEAN])
    assert listed.status is BlocklistStatus.listed
    assert listed.reason is not None
    assert clean.status is BlocklistStatus.clean


async def test_a_slow_answer_beyond_the_timeout_is_unknown_in_time(zen: LabDns) -> None:
    zen.delay(f"{reverse_name(LISTED)}.{ZEN}", TIMEOUT_S * 5)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        started = time.monotonic()
        slow, clean = await probe.check([LISTED, CLEAN])
        elapsed = time.monotonic() - started
    assert_unknown(slow, "did not answer in time")
    assert clean.status is BlocklistStatus.clean
    assert elapsed < TIMEOUT_S * 3 + 0.5, elapsed


async def test_a_listing_without_txt_has_no_reason(zen: LabDns) -> None:
    zen.list_ip(ZEN, LISTED, "127.0.0.2")  # no TXT record
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert result.status is BlocklistStatus.listed
    assert result.reason is None
    assert result.lists == ["SBL"]
    assert a_count(zen, LISTED, rtype="TXT") == 1


@pytest.mark.parametrize("fault", ["timeout", "servfail", "wrong_type"])
async def test_a_listing_whose_txt_fails_is_still_listed(zen: LabDns, fault: str) -> None:
    # The A answer is what lists; the TXT reason is a courtesy.
    zen.fault(f"{reverse_name(LISTED)}.{ZEN}", fault, rtype="TXT")
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert result.status is BlocklistStatus.listed
    assert result.codes == ["127.0.0.2", "127.0.0.4"]
    assert result.reason is None


async def test_a_long_txt_reason_in_several_strings_is_joined(zen: LabDns) -> None:
    reason = "Listed: " + "x" * 300 + " see https://lab.test/"
    zen.list_ip(ZEN, LISTED, "127.0.0.2", reason=reason)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert result.reason == reason


async def test_a_truncated_answer_is_read_again_over_tcp(zen: LabDns) -> None:
    zen.fault(ZEN, "truncate_udp")
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        listed, clean = await probe.check([LISTED, CLEAN])
    assert listed.status is BlocklistStatus.listed
    assert listed.reason == f"Listed by lab, see https://lab.test/query/ip/{LISTED}"
    assert clean.status is BlocklistStatus.clean
    assert zen.log.transports["tcp"] > 0


async def test_a_name_with_no_a_record_is_unknown_not_clean(zen: LabDns) -> None:
    zen.remove(f"{reverse_name(LISTED)}.{ZEN}", "A")  # only its TXT record is left
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "no record of that type")


async def test_a_resolver_that_answers_only_some_queries(zen: LabDns) -> None:
    # Given a resolver that answers the self-test and most names, but drops some
    dropped, refused = "127.0.0.41", "127.0.0.42"
    zen.fault(f"{reverse_name(dropped)}.{ZEN}", "timeout")
    zen.fault(f"{reverse_name(refused)}.{ZEN}", "refused")
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        results = await probe.check([LISTED, dropped, CLEAN, refused, POLICY])
    # Then what it answered is read, and what it did not is unknown, never clean
    statuses = {r.ip: r.status for r in results}
    assert statuses == {
        LISTED: BlocklistStatus.listed,
        dropped: BlocklistStatus.unknown,
        CLEAN: BlocklistStatus.clean,
        refused: BlocklistStatus.unknown,
        POLICY: BlocklistStatus.listed,
    }


async def test_an_address_that_is_not_an_ip_is_unknown(zen: LabDns) -> None:
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check(["not-an-ip"])
    assert_unknown(result, "not an IP address")
    assert zen.log.total == 0


# ---- policy and abuse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("codes", "severity", "lists"),
    [
        (("127.0.0.10",), ListingSeverity.policy, ["PBL (ISP)"]),
        (("127.0.0.11",), ListingSeverity.policy, ["PBL (Spamhaus)"]),
        (("127.0.0.10", "127.0.0.11"), ListingSeverity.policy, ["PBL (ISP)", "PBL (Spamhaus)"]),
        (("127.0.0.4", "127.0.0.10"), ListingSeverity.abuse, ["XBL", "PBL (ISP)"]),
        (("127.0.0.2",), ListingSeverity.abuse, ["SBL"]),
        (("127.0.0.3",), ListingSeverity.abuse, ["SBL CSS"]),
        (("127.0.0.9", "127.0.0.2"), ListingSeverity.abuse, ["SBL", "SBL DROP"]),
        # A code fleet has no meaning for is still a listing, and not a mild one.
        (("127.0.0.8",), ListingSeverity.abuse, ["Spamhaus ZEN"]),
        (("127.0.0.8", "127.0.0.10"), ListingSeverity.abuse, ["Spamhaus ZEN", "PBL (ISP)"]),
    ],
)
async def test_severity_of_zen_codes(
    lab_dns: LabDns, codes: tuple[str, ...], severity: ListingSeverity, lists: list[str]
) -> None:
    lab_dns.blocklist(ZEN, {LISTED: codes})
    async with probe_on(lab_dns.nameserver, zone(ZEN)) as probe:
        [result] = await probe.check([LISTED])
    assert result.status is BlocklistStatus.listed
    assert result.severity is severity
    assert result.lists == lists
    if "127.0.0.8" in codes:
        assert result.meaning is not None
        assert "no meaning for" in result.meaning


# ---- IPv6 ---------------------------------------------------------------------------------------


def test_reverse_names() -> None:
    assert reverse_name("192.0.2.1") == "1.2.0.192"
    assert reverse_name("2001:db8:7ca6:22::45") == (
        "5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2"
    )


async def test_ipv6_is_asked_in_nibble_form_and_can_be_listed(lab_dns: LabDns) -> None:
    ipv6 = "2001:db8:7ca6:22::45"
    lab_dns.blocklist(ZEN, {ipv6: ("127.0.0.3",)})
    async with probe_on(lab_dns.nameserver, zone(ZEN)) as probe:
        listed, clean = await probe.check([ipv6, "2001:DB8::1"])
    # The server received exactly the name Spamhaus documents for this address
    nibbles = "5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2"
    assert lab_dns.log.count(f"{nibbles}.{ZEN}", "A") == 1
    assert listed.status is BlocklistStatus.listed
    assert listed.codes == ["127.0.0.3"]
    assert listed.lists == ["SBL CSS"]
    assert listed.reason == f"Listed by lab, see https://lab.test/query/ip/{ipv6}"
    assert clean.status is BlocklistStatus.clean
    assert clean.ip == "2001:DB8::1"  # results keep the address as the caller wrote it
    expected = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    assert lab_dns.log.count(f"{expected}.{ZEN}", "A") == 1


async def test_an_ipv4_mapped_ipv6_address_is_looked_up_as_ipv4(zen: LabDns) -> None:
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        mapped, plain = await probe.check([f"::ffff:{LISTED}", LISTED])
    assert mapped.status is BlocklistStatus.listed
    assert mapped.ip == f"::ffff:{LISTED}"
    assert plain.codes == mapped.codes
    assert a_count(zen, LISTED) == 1


# ---- self-test: once per zone and resolver, per sweep ---------------------------------------


async def test_self_test_runs_once_per_zone_per_sweep(lab_dns: LabDns) -> None:
    lab_dns.blocklist(ZEN, {LISTED: ("127.0.0.2",)})
    lab_dns.blocklist("bl.lab.test", {CLEAN: ("127.0.0.2",)})
    zones = [zone(ZEN), zone("bl.lab.test", "spamcop")]
    for sweep in (1, 2):
        async with probe_on(lab_dns.nameserver, *zones) as probe:
            assert await probe.self_test(zones[0]) is None
            results = await probe.check([LISTED, CLEAN, POLICY, "127.0.0.50"])
            assert len(results) == 8
        for zone_name in (ZEN, "bl.lab.test"):
            # RFC 5782: 127.0.0.2 must be listed and 127.0.0.1 must not be, asked once a sweep
            assert a_count(lab_dns, "127.0.0.2", zone_name) == sweep
            assert a_count(lab_dns, "127.0.0.1", zone_name) == sweep


async def test_self_test_on_one_zone_does_not_affect_another(lab_dns: LabDns) -> None:
    lab_dns.blocklist(ZEN, {LISTED: ("127.0.0.2",)})
    lab_dns.blocklist("broken.lab.test")
    lab_dns.fault("broken.lab.test", "servfail")
    async with probe_on(lab_dns.nameserver, zone(ZEN), zone("broken.lab.test", "generic")) as probe:
        on_zen, on_broken = await probe.check([LISTED])
    assert on_zen.status is BlocklistStatus.listed
    assert_unknown(on_broken, "self-test failed", "SERVFAIL")


async def test_a_cancelled_asker_does_not_spoil_the_answer_for_the_others(zen: LabDns) -> None:
    zen.delay(ZEN, 0.1)
    async with probe_on(zen.nameserver, zone(ZEN)) as probe:
        first_test = asyncio.ensure_future(probe.self_test(probe.zones[0]))
        first_lookup = asyncio.ensure_future(probe.lookup(LISTED, probe.zones[0]))
        second_lookup = asyncio.ensure_future(probe.lookup(LISTED, probe.zones[0]))
        await eventually(lambda: a_count(zen, "127.0.0.2") == 1)  # the self-test is asking
        first_test.cancel()
        first_lookup.cancel()
        result = await second_lookup
        assert await probe.self_test(probe.zones[0]) is None
    assert first_test.cancelled()
    assert first_lookup.cancelled()
    assert result.status is BlocklistStatus.listed
    assert a_count(zen, "127.0.0.2") == 1
    assert a_count(zen, LISTED) == 1


# ---- Spamhaus DQS ------------------------------------------------------------------------------

DQS_KEY = "k7c9q2mzx4fwp8r3tnb6yv5hd0"


async def test_dqs_key_goes_into_the_query_name_and_nowhere_else(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Given a DQS zone whose key is in the environment, served by the lab
    monkeypatch.setenv("LAB_DQS_KEY", DQS_KEY)
    served = f"{DQS_KEY}.{DQS_ZONE}"
    lab_dns.blocklist(served, {LISTED: ("127.0.0.4",), POLICY: ("127.0.0.11",)})
    lab_dns.fault(f"{reverse_name('127.0.0.40')}.{served}", "servfail")
    dqs = zone(None, "spamhaus-dqs", key_env="LAB_DQS_KEY")
    caplog.set_level(logging.DEBUG)
    # When IPs are looked up on it
    async with probe_on(lab_dns.nameserver, dqs) as probe:
        results = await probe.check([LISTED, POLICY, CLEAN, "127.0.0.40"])
    # Then the server was asked <reversed-ip>.<key>.zen.dq.spamhaus.net
    assert a_count(lab_dns, LISTED, served) == 1
    assert a_count(lab_dns, "127.0.0.2", served) == 1
    assert [r.status for r in results] == [
        BlocklistStatus.listed,
        BlocklistStatus.listed,
        BlocklistStatus.clean,
        BlocklistStatus.unknown,
    ]
    assert {r.zone for r in results} == {DQS_ZONE}
    assert results[1].severity is ListingSeverity.policy
    # And the key appears nowhere: not in the results, their JSON, or the debug log
    for result in results:
        assert DQS_KEY not in repr(result)
        assert DQS_KEY not in result.model_dump_json()
    assert caplog.records, "debug logging was on"
    assert any(r.name == "fleet.dns" for r in caplog.records)
    assert DQS_KEY not in caplog.text
    assert REDACTED in caplog.text  # the query names were logged, with the key blanked


async def test_dqs_without_its_key_is_unknown_and_asks_nothing(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LAB_DQS_KEY", raising=False)
    dqs = zone(None, "spamhaus-dqs", key_env="LAB_DQS_KEY")
    async with probe_on(lab_dns.nameserver, dqs) as probe:
        results = await probe.check([LISTED, CLEAN])
    for result in results:
        assert_unknown(result, "DQS key is not available", "LAB_DQS_KEY is not set")
        assert result.zone == DQS_ZONE
    assert lab_dns.log.total == 0


@pytest.mark.parametrize("bad_key", ["two words", "dotted.key-value", "x" * 64])
async def test_dqs_key_that_is_not_a_dns_label_is_unknown_and_not_shown(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch, bad_key: str
) -> None:
    monkeypatch.setenv("LAB_DQS_KEY", bad_key)
    dqs = zone(None, "spamhaus-dqs", key_env="LAB_DQS_KEY")
    async with probe_on(lab_dns.nameserver, dqs) as probe:
        [result] = await probe.check([LISTED])
    assert_unknown(result, "not a valid DNS label", "$LAB_DQS_KEY")
    assert bad_key not in result.model_dump_json()
    assert lab_dns.log.total == 0


async def test_dqs_key_from_a_file_and_another_dqs_zone(lab_dns: LabDns, tmp_path: Path) -> None:
    key_file = tmp_path / "dqs.key"
    key_file.write_text(DQS_KEY + "\n", encoding="utf-8")
    served = f"{DQS_KEY}.authbl.dq.spamhaus.net"
    lab_dns.blocklist(served, {LISTED: ("127.0.0.20",)})
    authbl = zone("authbl.dq.spamhaus.net", "spamhaus-dqs", key_file=str(key_file))
    async with probe_on(lab_dns.nameserver, authbl) as probe:
        [result] = await probe.check([LISTED])
    assert result.status is BlocklistStatus.listed
    assert result.zone == "authbl.dq.spamhaus.net"
    assert result.lists == ["AuthBL"]
    assert DQS_KEY not in result.model_dump_json()


# ---- de-duplication: one question per (ip, zone) per sweep ---------------------------------


async def test_one_ip_shared_by_50_devices_is_asked_once_per_zone(lab_dns: LabDns) -> None:
    lab_dns.blocklist(ZEN, {LISTED: ("127.0.0.2",)})
    lab_dns.blocklist("bl.lab.test")
    zones = [zone(ZEN), zone("bl.lab.test", "spamcop")]
    async with probe_on(lab_dns.nameserver, *zones) as probe:
        # 50 devices' lookups at once, then each site's check of the same IP
        one_by_one = await asyncio.gather(
            *(probe.lookup(LISTED, z) for _ in range(50) for z in zones)
        )
        all_at_once = await probe.check([LISTED] * 50)
    assert {(r.zone, r.status) for r in [*one_by_one, *all_at_once]} == {
        (ZEN, BlocklistStatus.listed),
        ("bl.lab.test", BlocklistStatus.clean),
    }
    assert a_count(lab_dns, LISTED, ZEN) == 1
    assert a_count(lab_dns, LISTED, ZEN, "TXT") == 1
    assert a_count(lab_dns, LISTED, "bl.lab.test") == 1
    assert a_count(lab_dns, LISTED, "bl.lab.test", "TXT") == 0  # clean: no reason to fetch
    # Two self-test questions and the IP's A per zone, and one TXT for the listing
    assert lab_dns.log.total == 2 * 3 + 1


def shared_ip_inventory(
    write_inventory: Callable[..., Path],
    lab: LabDns,
    m365: M365Lab,
    n_sites: int,
    per_site: int,
    ip: str = POLICY,
) -> Path:
    """n_sites sites, each with per_site copiers, all behind one declared egress IP."""
    defaults = lab_defaults(lab, connect_s=5, command_s=5, site_s=30, dns_timeout_s=TIMEOUT_S)
    defaults["concurrency"] = {"global": 20, "per_site": 2, "per_host": 20}
    defaults["ehlo_name"] = "scanner-host.msp.test"
    mx = {
        "host": "127.0.0.1",
        "port": m365.mx.port,
        "security": "starttls",
        "ca_file": m365.ca_file,
    }
    built = InventoryBuilder(
        defaults,
        blocklists=[
            {"zone": ZEN, "kind": "spamhaus-zen"},
            {"zone": "bl.lab.test", "kind": "spamcop"},
        ],
        sections={"profiles": {"mx": mx}},
    )
    for s in range(n_sites):
        devices = [
            {
                "id": f"mfp-{d}",
                "smtp": {"profile": "mx", "from": f"s{s}@contoso.test", "to": "scans@contoso.test"},
            }
            for d in range(per_site)
        ]
        built.site(f"site-{s}", *devices, client=f"Client {s % 5}", egress={"ip": ip})
    return write_inventory(built)


async def test_a_sweep_asks_about_a_shared_egress_ip_once_per_zone(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> None:
    # Given 10 sites with 5 copiers each (50 devices), all behind one policy-listed IP
    lab_dns.blocklist(ZEN, {POLICY: ("127.0.0.10",)})
    lab_dns.blocklist("bl.lab.test")
    path = shared_ip_inventory(write_inventory, lab_dns, m365, n_sites=10, per_site=5)
    plan = plan_sweep(load_inventory(str(path)))
    assert sum(len(s.site.devices) for s in plan.sites) == 50
    # When the whole sweep runs
    sweep, stats = await run_measured(plan)
    # Then every site has the IP's result on both zones...
    assert len(sweep.sites) == 10
    for site in sweep.sites:
        by_zone = {(b.ip, b.zone): b for b in site.blocklists}
        assert by_zone[(POLICY, ZEN)].status is BlocklistStatus.listed
        assert by_zone[(POLICY, ZEN)].severity is ListingSeverity.policy
        assert by_zone[(POLICY, "bl.lab.test")].status is BlocklistStatus.clean
        # (the lab MX echoes the client address, 127.0.0.1: that IP is looked up too)
        assert all(b.status is not BlocklistStatus.unknown for b in site.blocklists)
    # ...but the server was asked once per zone: A once, TXT once for the listing
    assert a_count(lab_dns, POLICY, ZEN) == 1
    assert a_count(lab_dns, POLICY, ZEN, "TXT") == 1
    assert a_count(lab_dns, POLICY, "bl.lab.test") == 1
    assert a_count(lab_dns, POLICY, "bl.lab.test", "TXT") == 0
    for zone_name in (ZEN, "bl.lab.test"):
        assert a_count(lab_dns, "127.0.0.2", zone_name) == 1
        assert a_count(lab_dns, "127.0.0.1", zone_name) == 1  # also the echoed IP's lookup
    assert stats.dns_queries == lab_dns.log.total


async def test_a_policy_listing_warns_the_direct_send_copiers_of_the_site(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> None:
    lab_dns.blocklist(ZEN, {POLICY: ("127.0.0.10",)})
    lab_dns.blocklist("bl.lab.test")
    path = shared_ip_inventory(write_inventory, lab_dns, m365, n_sites=1, per_site=2)
    sweep = await run_sweep(plan_sweep(load_inventory(str(path))))
    [site] = sweep.sites
    codes = {flag.code for flag in site.flags}
    assert "DIRECT_SEND_DYNAMIC_IP" in codes, site.flags
    assert "DIRECT_SEND_DIRTY_IP" not in codes


async def test_an_ipv6_site_on_an_ipv4_only_list_is_told_why_not_to_check_its_resolver(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> None:
    # Given a site declared on an IPv6 address, swept against ZEN and a SpamCop-kind list
    lab_dns.blocklist(ZEN)
    lab_dns.blocklist("bl.lab.test")
    ipv6 = "2001:db8::25"
    path = shared_ip_inventory(write_inventory, lab_dns, m365, n_sites=1, per_site=1, ip=ipv6)
    [site] = (await run_sweep(plan_sweep(load_inventory(str(path))))).sites

    # Then ZEN (which covers IPv6) says clean, and the IPv4-only list unknown: the flag says
    # the list has no IPv6 entries, not that the resolver failed
    by_zone = {(b.ip, b.zone): b.status for b in site.blocklists}
    assert by_zone[ipv6, ZEN] is BlocklistStatus.clean
    assert by_zone[ipv6, "bl.lab.test"] is BlocklistStatus.unknown
    [unknown] = [f for f in site.flags if f.code == "BLOCKLIST_UNKNOWN"]
    assert unknown.evidence.startswith(f"{ipv6} on bl.lab.test: ")
    assert "does not cover IPv6" in unknown.remediation
    assert "defaults.dns.nameservers" not in unknown.remediation
    # ... said for information: it does not make the site's standing unknown every night
    assert unknown.severity == "info"
    assert site.verdict is not Verdict.unknown, site.flags


# ---- an unreachable resolver ---------------------------------------------------------------


@pytest.fixture
def silent_nameserver() -> Iterator[str]:
    """A UDP socket on loopback that receives queries and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize("tries", [1, 2])
async def test_a_resolver_that_never_answers_gives_unknown_in_time(
    silent_nameserver: str, tries: int
) -> None:
    zones = [zone(ZEN), zone("bl.lab.test", "spamcop"), zone("b.lab.test", "barracuda")]
    async with probe_on(silent_nameserver, *zones, tries=tries) as probe:
        started = time.monotonic()
        results = await probe.check([LISTED, CLEAN, POLICY, "2001:db8::1"])
        elapsed = time.monotonic() - started
    assert len(results) == 12
    for result in results:
        if result.ip == "2001:db8::1" and result.zone != ZEN:  # IPv4-only lists: not asked
            assert_unknown(result, "does not cover IPv6")
            continue
        assert_unknown(result, "self-test failed", "did not answer in time", silent_nameserver)
    # Every lookup waits on the same self-test: one timeout, not one per lookup.
    # (c-ares may lengthen the later tries; the margin allows for that and a slow machine.)
    bound = TIMEOUT_S * tries * 3 + 1.0
    assert elapsed < bound, (elapsed, bound)


async def test_a_resolver_address_where_nothing_listens_gives_unknown_in_time() -> None:
    # 127.0.0.77 is on the loopback interface, and no one listens on this port there
    nameserver = f"127.0.0.77:{free_udp_port('127.0.0.77')}"
    zones = [zone(ZEN), zone("bl.lab.test", "generic")]
    async with probe_on(nameserver, *zones) as probe:
        started = time.monotonic()
        results = await probe.check([LISTED, CLEAN])
        elapsed = time.monotonic() - started
    for result in results:
        assert_unknown(result, "self-test failed", nameserver)
        assert result.status is not BlocklistStatus.clean
    assert elapsed < TIMEOUT_S * 3 + 1.0, elapsed


async def test_a_second_resolver_is_asked_when_the_first_refuses(lab_dns: LabDns) -> None:
    refusing = LabDns()
    await refusing.start()
    try:
        refusing.fault(ZEN, "refused")
        lab_dns.blocklist(ZEN, {LISTED: ("127.0.0.2",)})
        async with probe_on([refusing.nameserver, lab_dns.nameserver], zone(ZEN)) as probe:
            [result] = await probe.check([LISTED])
    finally:
        await refusing.stop()
    assert result.status is BlocklistStatus.listed
    assert refusing.log.total > 0


# ---- zones and meaning maps from the inventory ---------------------------------------------

CUSTOM_ZONES = """\
blocklists:
  - zone: zen.lab.test
    kind: spamhaus-zen
    name: Spamhaus ZEN (lab)
    codes:
      # this MSP treats Spamhaus-maintained PBL entries as abuse
      127.0.0.11: {list: PBL-STRICT, meaning: "treated as abuse here", severity: abuse}
  - zone: own.lab.test
    name: Own BL
    delist: "https://own.lab.test/remove?ip={ip}&note={literal braces}"
    codes:
      127.0.0.2: {list: OWN, meaning: "spam source"}
      127.0.0.10: {list: OWN-DYN, meaning: "dynamic range", severity: policy}
  - {zone: bl.lab.test, kind: spamcop}
  - {zone: b.lab.test, kind: barracuda}
  - {zone: any.lab.test}
sites:
  - id: s1
    client: C
    devices:
      - {id: d1, smtp: {host: 127.0.0.1, port: 25, from: a@b.test, to: c@b.test}}
"""


async def test_inventory_zones_and_meaning_maps(lab_dns: LabDns) -> None:
    inventory = parse_inventory(CUSTOM_ZONES, "inv.yaml")
    zen_zone, own, spamcop, barracuda, generic = zones_from_inventory(inventory.blocklists)
    lab_dns.blocklist(ZEN, {LISTED: ("127.0.0.11",), POLICY: ("127.0.0.10",)})
    lab_dns.blocklist("own.lab.test", {LISTED: ("127.0.0.2",), POLICY: ("127.0.0.10",)})
    lab_dns.blocklist("bl.lab.test", {LISTED: ("127.0.0.2",)})
    lab_dns.blocklist("b.lab.test", {LISTED: ("127.0.0.2",)})
    lab_dns.blocklist("any.lab.test", {LISTED: ("127.0.0.5",), POLICY: ("127.0.1.3",)})
    async with probe_on(lab_dns.nameserver, zen_zone, own, spamcop, barracuda, generic) as probe:
        results = {(r.ip, r.zone): r for r in await probe.check([LISTED, POLICY])}

    # The inventory's code overrides the built-in map; the other built-in codes stay.
    overridden = results[(LISTED, ZEN)]
    assert (overridden.name, overridden.lists) == ("Spamhaus ZEN (lab)", ["PBL-STRICT"])
    assert overridden.severity is ListingSeverity.abuse
    assert overridden.meaning == "treated as abuse here"
    assert results[(POLICY, ZEN)].severity is ListingSeverity.policy

    # A zone of the MSP's own, with its own map and delisting text (braces and all)
    own_listed, own_policy = results[(LISTED, "own.lab.test")], results[(POLICY, "own.lab.test")]
    assert (own_listed.name, own_listed.lists, own_listed.meaning) == (
        "Own BL",
        ["OWN"],
        "spam source",
    )
    assert own_listed.severity is ListingSeverity.abuse
    assert own_listed.delist == f"https://own.lab.test/remove?ip={LISTED}&note={{literal braces}}"
    assert (own_policy.lists, own_policy.severity) == (["OWN-DYN"], ListingSeverity.policy)

    # Built-in kinds: names, meanings and where to ask for removal
    on_spamcop = results[(LISTED, "bl.lab.test")]
    assert (on_spamcop.name, on_spamcop.lists) == ("SpamCop", ["SpamCop"])
    assert on_spamcop.delist is not None
    assert f"spamcop.net/bl.shtml?{LISTED}" in on_spamcop.delist
    on_barracuda = results[(LISTED, "b.lab.test")]
    assert (on_barracuda.name, on_barracuda.lists) == ("Barracuda BRBL", ["BRBL"])
    assert on_barracuda.delist is not None
    assert "barracudacentral.org" in on_barracuda.delist
    assert results[(POLICY, "bl.lab.test")].status is BlocklistStatus.clean

    # generic: any 127.0.0.x means listed; other loopback answers are listings fleet
    # cannot read, never clean
    on_generic = results[(LISTED, "any.lab.test")]
    assert on_generic.status is BlocklistStatus.listed
    assert (on_generic.name, on_generic.codes) == ("any.lab.test", ["127.0.0.5"])
    assert on_generic.severity is ListingSeverity.abuse
    odd = results[(POLICY, "any.lab.test")]
    assert odd.status is BlocklistStatus.listed
    assert odd.meaning is not None
    assert "no meaning for" in odd.meaning


async def test_two_dqs_zones_with_different_keys_are_two_zones(
    lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LAB_DQS_KEY_A", "keyaaaaaaaaaaaaaaaaaaaaaaa")
    monkeypatch.setenv("LAB_DQS_KEY_B", "keybbbbbbbbbbbbbbbbbbbbbbb")
    lab_dns.blocklist(f"keyaaaaaaaaaaaaaaaaaaaaaaa.{DQS_ZONE}", {LISTED: ("127.0.0.2",)})
    lab_dns.blocklist(f"keybbbbbbbbbbbbbbbbbbbbbbb.{DQS_ZONE}")
    first = zone(None, "spamhaus-dqs", key_env="LAB_DQS_KEY_A")
    second = zone(None, "spamhaus-dqs", key_env="LAB_DQS_KEY_B")
    async with probe_on(lab_dns.nameserver, first, second) as probe:
        on_first, on_second = await probe.check([LISTED])
    assert on_first.status is BlocklistStatus.listed
    assert on_second.status is BlocklistStatus.clean


# ---- the shared resolver wrapper ---------------------------------------------------------------


async def test_dns_query_is_asked_once_even_when_the_first_asker_is_cancelled(
    lab_dns: LabDns,
) -> None:
    lab_dns.add("slow.lab.test", "A", "127.0.0.9")
    lab_dns.delay("slow.lab.test", 0.1)
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1)
    try:
        first = asyncio.ensure_future(dns.query("slow.lab.test", "A"))
        others = [asyncio.ensure_future(dns.query("SLOW.lab.test.", "A")) for _ in range(3)]
        await eventually(lambda: lab_dns.log.count("slow.lab.test", "A") == 1)  # in flight
        first.cancel()
        answers = await asyncio.gather(*others)
    finally:
        await dns.close()
    assert first.cancelled()
    assert all(a.outcome is Outcome.answer and a.records == ("127.0.0.9",) for a in answers)
    assert lab_dns.log.count("slow.lab.test", "A") == 1
    assert dns.stats.queries == 1


async def test_dns_addresses(lab_dns: LabDns) -> None:
    lab_dns.add("mx.lab.test", "A", "127.0.0.5")
    lab_dns.add("mx.lab.test", "AAAA", "::1")
    lab_dns.add("v4only.lab.test", "A", "127.0.0.6")
    lab_dns.add("other.lab.test", "TXT", "no address here")
    lab_dns.fault("slow.lab.test", "timeout", rtype="A")
    lab_dns.add("slow.lab.test", "AAAA", "::1")
    lab_dns.fault("dead.lab.test", "timeout")
    dns = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=1)
    try:
        both = await dns.addresses("mx.lab.test")
        v4only = await dns.addresses("v4only.lab.test")
        literal_v4 = await dns.addresses("127.0.0.7")
        literal_v6 = await dns.addresses("::1")
        localhost = await dns.addresses("localhost")
        missing = await dns.addresses("missing.lab.test")
        nodata = await dns.addresses("other.lab.test")
        half = await dns.addresses("slow.lab.test")
        dead = await dns.addresses("dead.lab.test")
    finally:
        await dns.close()
    assert both.records == ("127.0.0.5", "::1")  # IPv4 first
    assert v4only.records == ("127.0.0.6",)
    assert literal_v4.records == ("127.0.0.7",)
    assert literal_v6.records == ("::1",)
    assert localhost.records == ("127.0.0.1",)
    assert missing.outcome is Outcome.nxdomain
    assert not missing.ok
    assert nodata.outcome is Outcome.nodata
    assert half.records == ("::1",)  # what did answer is used
    assert dead.outcome is Outcome.timeout  # the telling failure, not "no such name"
    # IP literals and localhost never reach the server
    assert not {"127.0.0.7", "::1", "localhost"} & lab_dns.log.names()


async def test_dns_caps_the_questions_in_flight(lab_dns: LabDns) -> None:
    for n in range(6):
        lab_dns.add(f"n{n}.slow.lab.test", "A", f"127.0.0.{10 + n}")
    lab_dns.delay("slow.lab.test", 0.05)
    dns = Dns([lab_dns.nameserver], timeout_s=1.0, tries=1, concurrency=2)
    try:
        answers = await asyncio.gather(*(dns.query(f"n{n}.slow.lab.test", "A") for n in range(6)))
    finally:
        await dns.close()
    assert [a.records for a in answers] == [(f"127.0.0.{10 + n}",) for n in range(6)]
    assert lab_dns.log.max_in_flight == 2


async def test_dns_close_ends_questions_in_flight(lab_dns: LabDns) -> None:
    lab_dns.fault("never.lab.test", "timeout")
    dns = Dns([lab_dns.nameserver], timeout_s=5.0, tries=1)
    asking = asyncio.ensure_future(dns.query("never.lab.test", "A"))
    await eventually(lambda: lab_dns.log.count("never.lab.test", "A") >= 1)  # in flight
    started = time.monotonic()
    await dns.close()
    with pytest.raises(asyncio.CancelledError):
        await asking
    assert time.monotonic() - started < 1.0


async def test_closing_the_resolver_stops_questions_but_not_a_cancellation_of_close(
    silent_nameserver: str,
) -> None:
    dns = Dns([silent_nameserver], 5.0, 1)
    asker = asyncio.ensure_future(dns.query("example.test", "A"))
    await asyncio.sleep(0.05)  # the question is in flight, and will never be answered
    closing = asyncio.ensure_future(dns.close())
    await asyncio.sleep(0)  # close() has cancelled the question and waits for it
    closing.cancel()
    # Whoever cancels close() (a second Ctrl-C, a scheduler's timeout) must see it cancelled.
    with pytest.raises(asyncio.CancelledError):
        await closing
    with pytest.raises(asyncio.CancelledError):
        await asker
    assert dns._resolver._closed  # and the resolver is closed all the same


async def test_an_ipv6_address_on_a_list_without_ipv6_is_unknown_not_clean(
    lab_dns: LabDns,
) -> None:
    # Given lists that answer NXDOMAIN for every IPv6 name: SpamCop and Barracuda, which
    # document no IPv6 listing, and a generic list the inventory does not say covers IPv6;
    # next to Spamhaus ZEN and a generic list declared `ipv6: true`
    ipv6 = "2001:db8:7ca6:22::45"
    names = {"spamcop": "sc.lab.test", "barracuda": "b.lab.test", "generic": "g.lab.test"}
    for name in (*names.values(), "v6.lab.test", ZEN):
        lab_dns.blocklist(name)
    zones = [zone(name, kind) for kind, name in names.items()]
    covered = [zone(ZEN), zone("v6.lab.test", "generic", ipv6=True)]
    async with probe_on(lab_dns.nameserver, *zones, *covered) as probe:
        results = await probe.check([ipv6, CLEAN])

    # Then on the lists without IPv6 the address is unknown, and nothing was asked about it
    by = {(r.ip, r.zone): r for r in results}
    for name in names.values():
        assert_unknown(by[ipv6, name], "does not cover IPv6")
        assert a_count(lab_dns, ipv6, name) == 0
        assert by[CLEAN, name].status is BlocklistStatus.clean  # IPv4 as before
    # ... and where IPv6 is covered, its NXDOMAIN is clean
    for name in (ZEN, "v6.lab.test"):
        assert by[ipv6, name].status is BlocklistStatus.clean
        assert a_count(lab_dns, ipv6, name) == 1
