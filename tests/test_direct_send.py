"""Direct Send readiness (issue 11): the MX a copier uses and the SPF of its sender domain
for the site's egress IP, against the suite's own DNS server, then through the whole
engine into the matrix, table, CSV and JSON."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from fleet.dns import Dns, MxRecord
from fleet.inventory import load_inventory
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Mailbox, m365_mx
from fleet.matrix import assess
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.probes.direct_send import DirectSendProbe, DirectSendTarget
from fleet.probes.spf import MAX_LOOKUPS, evaluate, evaluate_known, parse_record
from fleet.report import render
from fleet.results import (
    DirectSendCheck,
    Egress,
    EgressTransport,
    Mode,
    MxCheck,
    MxResult,
    Severity,
    SiteObservation,
    SpfCheck,
    SpfResult,
    SweepResult,
    ValidationError,
    Verdict,
)

from .conftest import M365Lab
from .inventory_builder import InventoryBuilder, device, lab_defaults
from .inventory_builder import site as builder_site

TIMEOUT_S = 0.3
IP = "192.0.2.10"
OTHER_IP = "198.51.100.99"
MX_NAME = "contoso-test.mail.protection.lab.test"
WriteInventory = Callable[..., Path]


@pytest.fixture
async def dns(lab_dns: LabDns) -> AsyncIterator[Dns]:
    """One sweep's resolver, on the lab DNS server only."""
    resolver = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=1)
    try:
        yield resolver
    finally:
        await resolver.close()


async def spf(
    dns: Dns, domain: str, ip: str = IP, sender: str | None = None, helo: str = "mfp.lab.test"
) -> tuple[SpfResult, str]:
    evaluation = await evaluate(dns, domain, ip, sender or f"scanner@{domain}", helo, budget_s=5)
    return evaluation.result, evaluation.detail


# ---- SPF: the results a receiver would reach -------------------------------------------------


async def test_pass_via_ip4(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("ip4.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lab_dns.add("host.test", "TXT", f"v=spf1 ip4:{IP} -all")
    assert await spf(dns, "ip4.test") == (
        SpfResult.pass_,
        f"{IP} is authorised by ip4:192.0.2.0/24",
    )
    assert (await spf(dns, "host.test"))[0] is SpfResult.pass_


async def test_pass_via_an_include_chain(lab_dns: LabDns, dns: Dns) -> None:
    # Given contoso -> outlook -> a provider's netblock, two includes deep
    lab_dns.add("contoso.test", "TXT", "v=spf1 include:spf.outlook.test -all")
    lab_dns.add("spf.outlook.test", "TXT", "v=spf1 include:nets.outlook.test ~all")
    lab_dns.add("nets.outlook.test", "TXT", "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8::/32 -all")
    evaluation = await evaluate(dns, "contoso.test", IP, "scanner@contoso.test", "mfp.lab.test")
    assert evaluation.result is SpfResult.pass_
    assert evaluation.mechanism == (
        "include:spf.outlook.test > include:nets.outlook.test > ip4:192.0.2.0/25"
    )
    assert evaluation.lookups == 2
    assert evaluation.record == "v=spf1 include:spf.outlook.test -all"
    # an include that does not pass does not match: the evaluation goes on to -all
    assert (await spf(dns, "contoso.test", OTHER_IP))[0] is SpfResult.fail
    # and IPv6 takes the ip6 path
    assert (await spf(dns, "contoso.test", "2001:db8::25"))[0] is SpfResult.pass_


async def test_dash_all_fails_and_tilde_all_softfails(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("strict.test", "TXT", "v=spf1 ip4:198.51.100.0/24 -all")
    lab_dns.add("soft.test", "TXT", "v=spf1 ip4:198.51.100.0/24 ~all")
    lab_dns.add("open.test", "TXT", "v=spf1 ip4:198.51.100.0/24 ?all")
    lab_dns.add("no-all.test", "TXT", "v=spf1 ip4:198.51.100.0/24")
    lab_dns.add("excluded.test", "TXT", f"v=spf1 -ip4:{IP} +all")
    assert await spf(dns, "strict.test") == (
        SpfResult.fail,
        f"{IP} is not authorised: it falls through to -all",
    )
    assert await spf(dns, "soft.test") == (
        SpfResult.softfail,
        f"{IP} is not authorised: it falls through to ~all",
    )
    assert (await spf(dns, "open.test"))[0] is SpfResult.neutral
    result, detail = await spf(dns, "no-all.test")
    assert result is SpfResult.neutral
    assert "no mechanism of no-all.test matched" in detail
    assert await spf(dns, "excluded.test") == (
        SpfResult.fail,
        f"{IP} is not authorised: it matches -ip4:{IP}",
    )


async def test_no_record_is_none(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("txt-only.test", "TXT", "google-site-verification=abc", "v=spf10 nope")
    lab_dns.add("a-only.test", "A", "192.0.2.1")
    assert await spf(dns, "missing.test") == (
        SpfResult.none,
        "missing.test does not exist (NXDOMAIN)",
    )
    assert await spf(dns, "txt-only.test") == (
        SpfResult.none,
        "txt-only.test publishes no SPF record",
    )
    assert (await spf(dns, "a-only.test"))[0] is SpfResult.none
    assert (await spf(dns, "localhost"))[0] is SpfResult.none  # not a multi-label domain


async def test_redirect(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("brand.test", "TXT", "v=spf1 redirect=_spf.corp.test")
    lab_dns.add("_spf.corp.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lab_dns.add("first.test", "TXT", f"v=spf1 ip4:{OTHER_IP} redirect=_spf.corp.test")
    lab_dns.add("nowhere.test", "TXT", "v=spf1 redirect=gone.corp.test")
    lab_dns.add("all-wins.test", "TXT", "v=spf1 ~all redirect=_spf.corp.test")
    evaluation = await evaluate(dns, "brand.test", IP, "scanner@brand.test", "h.test")
    assert evaluation.result is SpfResult.pass_
    assert evaluation.mechanism == "redirect=_spf.corp.test > ip4:192.0.2.0/24"
    assert (await spf(dns, "brand.test", OTHER_IP))[0] is SpfResult.fail
    # a mechanism that matches comes before the redirect
    assert (await spf(dns, "first.test", OTHER_IP))[0] is SpfResult.pass_
    # redirect is ignored when all is present (all always matches first)
    assert (await spf(dns, "all-wins.test"))[0] is SpfResult.softfail
    # a redirect to a domain without SPF is a permerror, not a none
    result, detail = await spf(dns, "nowhere.test")
    assert result is SpfResult.permerror
    assert "redirect=gone.corp.test" in detail


async def test_more_than_ten_lookups_is_permerror(lab_dns: LabDns, dns: Dns) -> None:
    # Given one record whose includes cost 11 lookups before the IP is reached, and one
    # that costs exactly 10
    def includes(n: int) -> str:
        return " ".join(f"include:n{i}.many.test" for i in range(n))

    for i in range(11):
        lab_dns.add(f"n{i}.many.test", "TXT", "v=spf1 -all")
    lab_dns.add("eleven.test", "TXT", f"v=spf1 {includes(11)} ip4:{IP} -all")
    lab_dns.add("ten.test", "TXT", f"v=spf1 {includes(10)} ip4:{IP} -all")
    lab_dns.add("nested.test", "TXT", "v=spf1 include:six.test include:five.test -all")
    lab_dns.add("six.test", "TXT", f"v=spf1 {includes(5)} -all")
    lab_dns.add("five.test", "TXT", f"v=spf1 {includes(5)} -all")
    evaluation = await evaluate(dns, "eleven.test", IP, "s@eleven.test", "h.test")
    assert evaluation.result is SpfResult.permerror
    assert (
        evaluation.detail
        == f"more than {MAX_LOOKUPS} DNS lookups (the 11th is include:n10.many.test)"
    )
    assert evaluation.record is not None
    assert evaluation.record.startswith("v=spf1 include:n0.many.test")
    assert (await spf(dns, "ten.test"))[0] is SpfResult.pass_
    # lookups count across nested includes: 2 + 5 + 5 = 12
    assert (await spf(dns, "nested.test"))[0] is SpfResult.permerror
    # an include loop ends there too, as does a redirect loop
    lab_dns.add("loop-a.test", "TXT", "v=spf1 include:loop-b.test -all")
    lab_dns.add("loop-b.test", "TXT", "v=spf1 include:loop-a.test -all")
    lab_dns.add("spin.test", "TXT", "v=spf1 redirect=spin.test")
    for looping in ("loop-a.test", "spin.test"):
        result, detail = await spf(dns, looping)
        assert result is SpfResult.permerror
        assert detail.startswith("more than 10 DNS lookups")
    # an IP matched before the limit is reached passes (terms are evaluated in order)
    lab_dns.add("early.test", "TXT", f"v=spf1 ip4:{IP} {includes(11)} -all")
    assert (await spf(dns, "early.test"))[0] is SpfResult.pass_


async def test_more_than_two_void_lookups_is_permerror(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add(
        "voids.test", "TXT", f"v=spf1 a:gone1.test a:gone2.test mx:gone3.test ip4:{IP} -all"
    )
    lab_dns.add("two-voids.test", "TXT", f"v=spf1 a:gone1.test exists:gone2.test ip4:{IP} -all")
    result, detail = await spf(dns, "voids.test")
    assert result is SpfResult.permerror
    assert "found nothing" in detail
    assert (await spf(dns, "two-voids.test"))[0] is SpfResult.pass_


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ("v=spf1 ip4:192.0.2.300 -all", "not an IPv4 address"),
        ("v=spf1 ip4:192.0.2.0/33 -all", "prefix length"),
        ("v=spf1 ip6:192.0.2.1 -all", "not an IPv6 address"),
        ("v=spf1 include:localhost -all", "does not end in a domain name"),
        ("v=spf1 include: -all", "include needs a domain"),
        ("v=spf1 exists:%{x}.test -all", "%{x}"),
        ("v=spf1 exists:%{d0}.test -all", "transformer 0"),
        ("v=spf1 a:%zz.test -all", "bad macro"),
        ("v=spf1 frobnicate:x.test -all", "unknown mechanism"),
        ("v=spf1 -all -all?", "'all' takes no argument"),
        ("v=spf1 redirect=a.test redirect=b.test", "redirect= appears twice"),
        ("v=spf1 a/40 -all", "prefix length out of range"),
        ("v=spf1 mx:x.test/8/ -all", "bad mx mechanism"),
    ],
)
async def test_a_syntax_error_anywhere_is_permerror_before_any_lookup(
    lab_dns: LabDns, dns: Dns, record: str, words: str
) -> None:
    # Given a record whose first term would match, but with a syntax error further on
    lab_dns.add("broken.test", "TXT", f"v=spf1 ip4:{IP} " + record.removeprefix("v=spf1 "))
    result, detail = await spf(dns, "broken.test")
    assert result is SpfResult.permerror
    assert detail.startswith("syntax error in the SPF record of broken.test: ")
    assert words in detail, detail
    assert lab_dns.log.names() == {"broken.test"}  # nothing else was asked


async def test_two_spf_records_or_an_include_without_one_is_permerror(
    lab_dns: LabDns, dns: Dns
) -> None:
    lab_dns.add("twice.test", "TXT", "v=spf1 -all", f"v=spf1 ip4:{IP} -all")
    lab_dns.add("inc-none.test", "TXT", "v=spf1 include:nothing-here.test -all")
    assert await spf(dns, "twice.test") == (
        SpfResult.permerror,
        "twice.test publishes 2 SPF records (one is allowed)",
    )
    result, detail = await spf(dns, "inc-none.test")
    assert result is SpfResult.permerror
    assert detail == "include:nothing-here.test: nothing-here.test does not exist (NXDOMAIN)"


@pytest.mark.parametrize("fault", ["timeout", "servfail", "refused"])
async def test_a_resolver_failure_is_temperror_never_a_pass(
    lab_dns: LabDns, dns: Dns, fault: str
) -> None:
    # Given a record that would pass after an include whose DNS cannot be answered
    lab_dns.add("slow.test", "TXT", f"v=spf1 include:_spf.slow-provider.test ip4:{IP} -all")
    lab_dns.fault("_spf.slow-provider.test", fault)
    lab_dns.add("dead.test", "A", "192.0.2.1")
    lab_dns.fault("dead.test", fault, "TXT")
    result, detail = await spf(dns, "slow.test")
    assert result is SpfResult.temperror
    assert detail.startswith("TXT lookup of _spf.slow-provider.test: ")
    result, detail = await spf(dns, "dead.test")
    assert result is SpfResult.temperror
    assert "dead.test" in detail


async def test_the_whole_evaluation_has_a_time_budget(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("slowly.test", "TXT", f"v=spf1 ip4:{IP} -all")
    lab_dns.delay("slowly.test", 0.25)
    evaluation = await evaluate(dns, "slowly.test", IP, "s@slowly.test", "h", budget_s=0.05)
    assert evaluation.result is SpfResult.temperror
    assert evaluation.detail == "the evaluation did not finish within 0.05 s"


async def test_a_mx_and_exists_with_macros(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("mechs.test", "TXT", "v=spf1 a mx:mail.mechs.test a:office.mechs.test/24 -all")
    lab_dns.add("mechs.test", "A", "203.0.113.1")
    lab_dns.add("mail.mechs.test", "MX", "10 mx1.mechs.test", "20 mx2.mechs.test")
    lab_dns.add("mx2.mechs.test", "A", "203.0.113.50")
    lab_dns.add("mx1.mechs.test", "A", "203.0.113.40")
    lab_dns.add("office.mechs.test", "A", "198.51.100.1")
    assert (await spf(dns, "mechs.test", "203.0.113.1"))[0] is SpfResult.pass_  # a
    assert (await spf(dns, "mechs.test", "203.0.113.50"))[0] is SpfResult.pass_  # mx
    assert (await spf(dns, "mechs.test", "198.51.100.200"))[0] is SpfResult.pass_  # a/24
    assert (await spf(dns, "mechs.test", "198.51.101.1"))[0] is SpfResult.fail

    # exists with %{i} %{ir} %{v} %{d} %{l} %{o} %{s} %{h}, transformers and delimiters
    lab_dns.add(
        "macros.test",
        "TXT",
        "v=spf1 exists:%{ir}.%{v}.%{l1r-}.%{o}._spf.%{d2} "
        "exists:%{i}.helo.%{h}.x.test exists:%{S}.sender.x.test -all",
    )
    lab_dns.add("10.2.0.192.in-addr.front.macros.test._spf.macros.test", "A", "127.0.0.2")
    lab_dns.add("192.0.2.11.helo.mfp.lab.test.x.test", "A", "127.0.0.2")
    evaluation = await evaluate(dns, "macros.test", IP, "front-scanner@macros.test", "h.test")
    assert evaluation.result is SpfResult.pass_
    assert evaluation.mechanism is not None
    assert evaluation.mechanism.startswith("exists:%{ir}")
    assert evaluation.uses_sender
    helo = await evaluate(dns, "macros.test", "192.0.2.11", "x@macros.test", "mfp.lab.test")
    assert helo.result is SpfResult.pass_
    # %{S} is URL-escaped ("ops%40macros.test"): not a name a resolver sends, so it is a
    # name that does not exist, and here the third such lookup: permerror
    sender = await evaluate(dns, "macros.test", "192.0.2.12", "ops@macros.test", "h.test")
    assert sender.result is SpfResult.permerror
    assert sender.void_lookups == 3
    assert "ops%40macros.test.sender.x.test" not in lab_dns.log.names()
    # IPv6: %{i} is dotted nibbles, %{v} is ip6
    lab_dns.add("v6.test", "TXT", "v=spf1 exists:%{i}.%{v}.v6.test -all")
    nibbles = "2.0.0.1.0.d.b.8." + "0." * 23 + "1"
    lab_dns.add(f"{nibbles}.ip6.v6.test", "A", "127.0.0.2")
    assert (await spf(dns, "v6.test", "2001:db8::1"))[0] is SpfResult.pass_


def test_upper_case_macros_are_url_escaped() -> None:
    from fleet.probes.spf import _CheckHost

    checker = _CheckHost(None, ipaddress.ip_address(IP), "o'neil+scan@x.test", "h.test")  # type: ignore[arg-type]
    assert (
        checker.expand("%{S}.%{l}.%{L}", "x.test")
        == "o%27neil%2Bscan%40x.test.o'neil+scan.o%27neil%2Bscan"
    )
    assert checker.expand("%{d}%%%_%-", "x.test") == "x.test% %20"
    assert checker.expand("%{ir}.%{i2}", "x.test") == "10.2.0.192.2.10"


async def test_ptr_is_counted_but_never_matches(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("ptr.test", "TXT", "v=spf1 ptr ~all")
    evaluation = await evaluate(dns, "ptr.test", IP, "s@ptr.test", "h.test")
    assert evaluation.result is SpfResult.softfail
    assert evaluation.lookups == 1


def test_records_are_parsed_completely() -> None:
    record = parse_record(
        "v=spf1 +a -mx:mail.x.test/24//64 ~ip4:192.0.2.0/24 ?ip6:2001:db8::/32 "
        "include:_spf.x.test exists:%{i}.x.test ptr:x.test all exp=explain.%{d} "
        "foo=bar redirect=y.test"
    )
    assert [t.name for t in record.mechanisms] == [
        "a",
        "mx",
        "ip4",
        "ip6",
        "include",
        "exists",
        "ptr",
        "all",
    ]
    assert [t.qualifier for t in record.mechanisms][:4] == ["+", "-", "~", "?"]
    assert record.mechanisms[1].cidr4 == 24
    assert record.mechanisms[1].cidr6 == 64
    assert record.redirect is not None
    assert record.redirect.spec == "y.test"


async def test_an_evaluation_from_known_answers_is_the_evaluation(
    lab_dns: LabDns, dns: Dns
) -> None:
    # Given records of every kind: the ones a sweep meets most (ip4, an include chain, a
    # redirect) and the limits, macros, a, mx, ptr and none
    lab_dns.add("ip4.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lab_dns.add("chain.test", "TXT", "v=spf1 include:spf.outlook.test ~all")
    lab_dns.add("spf.outlook.test", "TXT", "v=spf1 ip4:192.0.2.0/25 ip6:2001:db8::/32 -all")
    lab_dns.add("brand.test", "TXT", "v=spf1 redirect=ip4.test")
    for i in range(11):
        lab_dns.add(f"n{i}.many.test", "TXT", "v=spf1 -all")
    many = " ".join(f"include:n{i}.many.test" for i in range(11))
    lab_dns.add("eleven.test", "TXT", f"v=spf1 ip4:{IP} {many} -all")
    lab_dns.add("voids.test", "TXT", "v=spf1 a:gone1.test a:gone2.test mx:gone3.test -all")
    lab_dns.add("mechs.test", "TXT", "v=spf1 a mx:mail.mechs.test ptr -all")
    lab_dns.add("mechs.test", "A", "198.51.100.99")
    lab_dns.add("mail.mechs.test", "MX", "10 mx1.mechs.test")
    lab_dns.add("mx1.mechs.test", "A", "192.0.2.10")
    lab_dns.add("macros.test", "TXT", "v=spf1 exists:%{ir}.%{l}.x.test -all")
    lab_dns.add("10.2.0.192.scanner.x.test", "A", "127.0.0.2")
    lab_dns.add("broken.test", "TXT", "v=spf1 ip4:192.0.2.0/24 bogus -all")
    domains = ["ip4.test", "chain.test", "brand.test", "eleven.test", "voids.test"]
    domains += ["mechs.test", "macros.test", "broken.test", "missing.test"]
    ips = [IP, OTHER_IP, "2001:db8::25"]
    for domain in domains:
        for ip in ips:
            # When it is evaluated once (which asks the resolver), then again from the answers
            # the sweep now has
            asked = await evaluate(dns, domain, ip, f"scanner@{domain}", "h.test")
            queries = lab_dns.log.total
            known = evaluate_known(dns, domain, ip, f"scanner@{domain}", "h.test")
            # Then it is the same evaluation, and nothing more was asked
            assert known == asked, (domain, ip)
            assert lab_dns.log.total == queries
    # An evaluation that would need an answer not asked yet is left to evaluate()
    lab_dns.add("fresh.test", "TXT", f"v=spf1 ip4:{IP} -all")
    assert evaluate_known(dns, "fresh.test", IP, "s@fresh.test", "h.test") is None
    assert evaluate_known(dns, "chain.test", "203.0.113.7", "s@chain.test", "h.test") is not None
    assert "fresh.test" not in lab_dns.log.names()


async def test_the_replayed_evaluation_is_the_evaluation_for_errors_and_limits(
    lab_dns: LabDns,
) -> None:
    # Given records that end in each error and at each limit: a resolver failure deep in an
    # include, an exists or an MX host; two and three void lookups; ten and eleven lookups;
    # too many MX names; an include or redirect to nothing; nesting without end
    add = lab_dns.add
    for i in range(11):
        add(f"n{i}.many.test", "TXT", "v=spf1 -all")
    ten = " ".join(f"include:n{i}.many.test" for i in range(10))
    add("ten.test", "TXT", f"v=spf1 {ten} ip4:{IP} -all")
    add("eleven.test", "TXT", f"v=spf1 {ten} include:n10.many.test ip4:{IP} -all")
    add("twovoids.test", "TXT", f"v=spf1 a:gone1.test a:gone2.test ip4:{IP} -all")
    add("voids.test", "TXT", "v=spf1 a:gone1.test a:gone2.test mx:gone3.test -all")
    add("failinc.test", "TXT", "v=spf1 include:sf.test -all")
    add("refinc.test", "TXT", "v=spf1 include:ref.test -all")
    add("exsf.test", "TXT", "v=spf1 exists:sf.test -all")
    add("mxsf.test", "TXT", "v=spf1 mx:sfmx.test -all")
    add("sfmx.test", "MX", "10 sfhost.test")
    lab_dns.fault("sf.test", "servfail")
    lab_dns.fault("sfhost.test", "servfail")
    lab_dns.fault("ref.test", "refused")
    add("bigmx.test", "TXT", "v=spf1 mx -all")
    add("bigmx.test", "MX", *[f"{i} m{i}.bigmx.test" for i in range(11)])
    add("mxhit.test", "TXT", "v=spf1 mx:mail.mxhit.test -all")
    add("mail.mxhit.test", "MX", "10 mx1.mxhit.test", "20 mx2.mxhit.test")
    add("mx1.mxhit.test", "A", "192.0.2.11")
    add("mx2.mxhit.test", "A", IP)
    add("noneinc.test", "TXT", "v=spf1 include:nothing.test -all")
    add("noneredir.test", "TXT", "v=spf1 redirect=nothing.test")
    add("loop.test", "TXT", "v=spf1 include:loop.test -all")
    add("two.test", "TXT", "v=spf1 -all", "v=spf1 +all")
    domains = ["ten.test", "eleven.test", "twovoids.test", "voids.test", "failinc.test"]
    domains += ["refinc.test", "exsf.test", "mxsf.test", "bigmx.test", "mxhit.test"]
    domains += ["noneinc.test", "noneredir.test", "loop.test", "two.test", "Missing.Test."]
    for domain in domains:
        for ip in (IP, OTHER_IP, "2001:db8::25"):
            resolver = Dns([lab_dns.nameserver], timeout_s=TIMEOUT_S, tries=1)  # a new sweep
            try:
                # When it is evaluated once (asking as it goes), then again from the answers
                # the sweep now has
                got = await evaluate(resolver, domain, ip, f"scanner@{domain}", "h.test")
                queries = lab_dns.log.total
                known = evaluate_known(resolver, domain, ip, f"scanner@{domain}", "h.test")
            finally:
                await resolver.close()
            # Then the replay over the sweep's answers comes to the same evaluation (result,
            # reason, counters), asking nothing more
            assert known is not None, (domain, ip)
            assert known == got, (domain, ip)
            assert type(known) is type(got)
            assert lab_dns.log.total == queries


# ---- de-duplication ------------------------------------------------------------------------


def target(
    device: str, sender: str = "scanner@contoso.test", host: str = MX_NAME
) -> DirectSendTarget:
    return DirectSendTarget(
        device=device,
        mode=Mode.direct_send,
        host=host,
        sender=sender,
        recipient="frontdesk@contoso.test",
        helo="mfp.lab.test",
    )


async def test_one_evaluation_per_domain_and_ip_per_sweep(lab_dns: LabDns, dns: Dns) -> None:
    # Given three sites' worth of copiers, all sending as contoso.test from one IP
    lab_dns.add("contoso.test", "TXT", "v=spf1 include:spf.outlook.test -all")
    lab_dns.add("spf.outlook.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lab_dns.add("contoso.test", "MX", f"0 {MX_NAME}")
    probe = DirectSendProbe(dns)
    batches = [
        [target(f"mfp-{site}-{n}", sender=f"scanner{n}@contoso.test") for n in range(4)]
        for site in range(3)
    ]
    results = [await probe.check(batch, [IP]) for batch in batches]
    # Then every device has its MX and SPF result...
    for batch, checks in zip(batches, results, strict=True):
        assert [(c.device, c.kind) for c in checks] == [
            (t.device, kind) for t in batch for kind in ("mx", "spf")
        ]
        assert {c.result for c in checks} == {"match", "pass"}
    # ...from one evaluation, and every DNS question asked once
    assert probe.spf.evaluations == 1
    assert lab_dns.log.count("contoso.test", "TXT") == 1
    assert lab_dns.log.count("spf.outlook.test", "TXT") == 1
    assert lab_dns.log.count("contoso.test", "MX") == 1
    # a second IP is a second evaluation, whose DNS answers are already known
    await probe.check([target("mfp-x")], [OTHER_IP])
    assert probe.spf.evaluations == 2
    assert lab_dns.log.count("contoso.test", "TXT") == 1


async def test_a_lone_copier_whose_domain_mx_is_known_is_checked_the_same_way(
    lab_dns: LabDns, dns: Dns
) -> None:
    # Given a domain whose MX another site's check already asked (the fast path, issue 20)
    lab_dns.add("contoso.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lab_dns.add("contoso.test", "MX", f"0 {MX_NAME}")
    probe = DirectSendProbe(dns)
    first = await probe.check([target("mfp-1")], [IP])
    assert dns.answered("contoso.test", "MX") is not None
    # When a lone copier of the domain is checked, from one IP and from two
    alone = await probe.check([target("mfp-2")], [IP])
    two_ips = await probe.check([target("mfp-3")], [IP, OTHER_IP])

    # Then it gets what the first copier got: its MX check, then its SPF check per IP
    def shape(checks: list[DirectSendCheck]) -> list[tuple[str, str, str | None]]:
        return [(c.kind, str(c.result), getattr(c, "ip", None)) for c in checks]

    assert shape(alone) == shape(first) == [("mx", "match", None), ("spf", "pass", IP)]
    assert shape(two_ips) == [("mx", "match", None), ("spf", "pass", IP), ("spf", "fail", OTHER_IP)]
    assert [c.device for c in alone] == ["mfp-2", "mfp-2"]
    # ...and every DNS question was asked once
    assert lab_dns.log.count("contoso.test", "MX") == 1
    assert lab_dns.log.count("contoso.test", "TXT") == 1


async def test_a_record_that_reads_the_sender_is_evaluated_per_sender(
    lab_dns: LabDns, dns: Dns
) -> None:
    lab_dns.add("contoso.test", "TXT", "v=spf1 exists:%{l}.allowed.contoso.test -all")
    lab_dns.add("scanner.allowed.contoso.test", "A", "127.0.0.2")
    probe = DirectSendProbe(dns)
    checks = await probe.check(
        [
            target("a", sender="scanner@contoso.test"),
            target("b", sender="printer@contoso.test"),
            target("c", sender="scanner@contoso.test"),
        ],
        [IP],
    )
    spf_results = {c.device: c.result for c in checks if c.kind == "spf"}
    assert spf_results == {"a": "pass", "b": "fail", "c": "pass"}
    assert probe.spf.evaluations == 2


# ---- MX ------------------------------------------------------------------------------------


async def test_the_mx_a_copier_uses(lab_dns: LabDns, dns: Dns) -> None:
    lab_dns.add("contoso.test", "MX", f"10 {MX_NAME}", "20 backup-mx.contoso.test")
    lab_dns.add("nomx.test", "A", "192.0.2.1")
    lab_dns.fault("slowmx.test", "timeout", "MX")
    probe = DirectSendProbe(dns)

    async def mx(host: str, recipient: str = "frontdesk@contoso.test") -> tuple[str, str]:
        check = await probe.mx(
            DirectSendTarget("d", Mode.direct_send, host, "s@contoso.test", recipient, "h")
        )
        return check.result, check.detail

    assert await mx(MX_NAME) == ("match", f"{MX_NAME} is an MX of contoso.test")
    assert (await mx(MX_NAME.upper() + "."))[0] == "match"
    assert (await mx("backup-mx.contoso.test"))[0] == "match"
    # the domain moved to a new MX; a typo; an IP address instead of the name
    assert await mx("old-mx.contoso.test") == (
        "mismatch",
        f"the copier sends to old-mx.contoso.test, but the MX of contoso.test is {MX_NAME}, "
        "backup-mx.contoso.test",
    )
    assert (await mx("contoso-test.mail.protecton.lab.test"))[0] == "mismatch"
    result, detail = await mx("192.0.2.25")
    assert result == "mismatch"
    assert "the IP address 192.0.2.25" in detail
    # a domain without MX has nothing to compare with; a resolver failure is unknown
    assert (await mx(MX_NAME, "x@nomx.test"))[0] == "none"
    result, detail = await mx(MX_NAME, "x@slowmx.test")
    assert result == "unknown"
    assert "did not answer in time" in detail


async def test_a_connector_relay_is_compared_with_its_sender_domain_mx(
    lab_dns: LabDns, dns: Dns
) -> None:
    lab_dns.add("contoso.test", "MX", f"0 {MX_NAME}")
    lab_dns.add("example.net", "MX", "0 mx.example.net")
    relay = DirectSendTarget(
        "relay", Mode.relay, MX_NAME, "scanner@contoso.test", "someone@example.net", "h"
    )
    check = await DirectSendProbe(dns).mx(relay)
    assert (check.domain, check.result) == ("contoso.test", "match")


# ---- through the engine: matrix, table, CSV, JSON --------------------------------------------


def inventory(dns: LabDns, *sites: dict[str, Any], zones: bool = True) -> InventoryBuilder:
    defaults = lab_defaults(dns, connect_s=3, command_s=5, site_s=30, dns_timeout_s=TIMEOUT_S)
    defaults["ehlo_name"] = "scanner-host.msp.test"
    blocklists = [{"zone": "zen.lab.test", "kind": "spamhaus-zen"}] if zones else []
    return InventoryBuilder(defaults, blocklists).add(*sites)


def site(ident: str, ip: str, *devices: dict[str, Any], declared: bool = True) -> dict[str, Any]:
    """A site that sends from `ip` (bound, and declared unless told otherwise)."""
    egress = {"bind": ip, "ip": ip} if declared else {"bind": ip}
    return builder_site(ident, *devices, client=ident.title(), egress=egress)


def copier(
    ident: str, host: str, port: int, ca_file: str, sender: str, to: str, **smtp: Any
) -> dict[str, Any]:
    return device(port, ca_file, ident=ident, host=host, mail_from=sender, to=to, **smtp)


@pytest.fixture
async def named_mx(
    lab_dns: LabDns, m365: M365Lab, certs: LabCertificates
) -> AsyncIterator[LabSmtpServer]:
    """The tenant's MX under its real-looking name, served on loopback by the lab DNS."""
    lab_dns.add(MX_NAME, "A", "127.0.0.1")
    server = m365_mx(m365.tenant, certs.server_context(MX_NAME, "127.0.0.1"))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def test_the_matrix_and_every_report_show_mx_and_spf_findings(
    lab_dns: LabDns,
    m365: M365Lab,
    named_mx: LabSmtpServer,
    write_inventory: WriteInventory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given four tenants' domains: one whose SPF names the site, one that fails it (-all),
    # one that softfails it (~all), one with a record that costs too many lookups; and
    # one that cannot be looked up at all
    lab_dns.blocklist("zen.lab.test")
    m365.tenant.accepted_domains |= {"fabrikam.test", "tailspin.test", "wide.test", "slow.test"}
    lab_dns.add("contoso.test", "MX", f"0 {MX_NAME}")
    lab_dns.add("contoso.test", "TXT", "v=spf1 ip4:127.0.0.81 -all")
    lab_dns.add("fabrikam.test", "TXT", "v=spf1 include:spf.outlook.test -all")
    lab_dns.add("tailspin.test", "TXT", "v=spf1 include:spf.outlook.test ~all")
    lab_dns.add("spf.outlook.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all")
    lab_dns.add(
        "wide.test", "TXT", "v=spf1 " + " ".join(f"a:h{i}.wide.test" for i in range(12)) + " -all"
    )
    for i in range(12):
        lab_dns.add(f"h{i}.wide.test", "A", "192.0.2.1")
    lab_dns.fault("slow.test", "timeout", "TXT")
    monkeypatch.setenv("FLEET_TEST_DS_TOKEN", "token")
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(token="token")
    mx, ca = named_mx.port, m365.ca_file

    def ds(ident: str, domain: str, host: str = MX_NAME) -> dict[str, Any]:
        return copier(ident, host, mx, ca, f"scanner@{domain}", f"office@{domain}")

    text = inventory(
        lab_dns,
        # the MX by name, SPF pass; a copier set to the IP of the MX; and one on submission
        site(
            "contoso",
            "127.0.0.81",
            ds("by-name", "contoso.test"),
            ds("by-ip", "contoso.test", host="127.0.0.1"),
            copier(
                "konica",
                "127.0.0.1",
                m365.submission.port,
                ca,
                "scanner@contoso.test",
                "office@contoso.test",
                auth={
                    "username": "scanner@contoso.test",
                    "oauth2": {"token_env": "FLEET_TEST_DS_TOKEN"},
                },
            ),
        ),
        site("fabrikam", "127.0.0.82", ds("mfp", "fabrikam.test")),
        site("tailspin", "127.0.0.83", ds("mfp", "tailspin.test")),
        site("wide", "127.0.0.84", ds("mfp", "wide.test")),
        site("slow", "127.0.0.85", ds("mfp", "slow.test")),
    )
    result = await run_sweep(plan_sweep(load_inventory(str(write_inventory(text)))))
    sites = {s.site: s for s in result.sites}
    assert all(d.category.value == "ok" for s in result.sites for d in s.devices)

    def flags(name: str) -> dict[str, tuple[Severity, list[str], str, str]]:
        return {
            f.code: (f.severity, f.devices, f.evidence, f.remediation) for f in sites[name].flags
        }

    # the copier set to an IP: MX_MISMATCH, naming the current MX; SPF passes for both
    contoso = flags("contoso")
    assert set(contoso) == {"MX_MISMATCH"}
    severity, devices, evidence, remedy = contoso["MX_MISMATCH"]
    assert (severity, devices) == (Severity.warn, ["by-ip"])
    assert "the IP address 127.0.0.1" in evidence
    assert f"Set these copiers' SMTP server to {MX_NAME}" in remedy
    assert sites["contoso"].verdict is Verdict.warn
    checked = {(c.device, c.kind): c.result for c in sites["contoso"].checks}
    assert checked == {
        ("by-name", "mx"): "match",
        ("by-name", "spf"): "pass",
        ("by-ip", "mx"): "mismatch",
        ("by-ip", "spf"): "pass",
    }  # the submission copier is not checked

    # -all: critical, with the exact record and the ip4: to add
    severity, devices, evidence, remedy = flags("fabrikam")["SPF_NOT_AUTHORISED"]
    assert (severity, devices) == (Severity.critical, ["mfp"])
    assert "SPF of fabrikam.test for 127.0.0.82: fail" in evidence
    assert "`v=spf1 include:spf.outlook.test -all`" in evidence
    assert "Add ip4:127.0.0.82 to the SPF record of fabrikam.test" in remedy
    assert "make it `v=spf1 ip4:127.0.0.82 include:spf.outlook.test -all`" in remedy
    assert sites["fabrikam"].verdict is Verdict.critical

    # ~all: warn
    severity, _, evidence, remedy = flags("tailspin")["SPF_NOT_AUTHORISED"]
    assert severity is Severity.warn
    assert ": softfail:" in evidence
    assert "make it `v=spf1 ip4:127.0.0.83 include:spf.outlook.test ~all`" in remedy
    assert sites["tailspin"].verdict is Verdict.warn

    # too many lookups: SPF_BROKEN
    severity, _, evidence, remedy = flags("wide")["SPF_BROKEN"]
    assert severity is Severity.warn
    assert "permerror: more than 10 DNS lookups" in evidence
    assert "ip4:/ip6:" in remedy

    # a resolver that does not answer: unknown, never a pass
    severity, _, evidence, _ = flags("slow")["SPF_UNKNOWN"]
    assert severity is Severity.unknown
    assert "temperror" in evidence
    assert sites["slow"].verdict is Verdict.unknown

    # the table: the mx / spf column and the findings
    table = render("table", result)
    rows = {line.split()[1]: line for line in table.splitlines()[4:9]}
    assert "mx mismatch" in rows["contoso"]
    assert "spf fail" in rows["fabrikam"]
    assert "spf softfail" in rows["tailspin"]
    assert "spf permerror" in rows["wide"]
    assert "spf temperror" in rows["slow"]
    assert "SPF_NOT_AUTHORISED [critical] mfp" in table
    assert "MX_MISMATCH [warn] by-ip" in table
    detail = render("table", result, detail=True)
    by_ip_row = next(line for line in detail.splitlines() if " by-ip " in line)
    assert by_ip_row.rstrip().endswith("mx mismatch")

    # the CSV: per device and per site
    rows_csv = list(csv.DictReader(io.StringIO(render("csv", result), newline="")))
    by_device = {(r["site"], r["device"]): r for r in rows_csv}
    assert by_device[("contoso", "by-ip")]["mx_check"] == "mismatch"
    assert by_device[("contoso", "konica")]["mx_check"] == "not checked"
    assert by_device[("fabrikam", "mfp")]["spf_check"] == "fail (127.0.0.82)"
    assert by_device[("fabrikam", "mfp")]["flags"] == "SPF_NOT_AUTHORISED"
    assert by_device[("fabrikam", "mfp")]["recommended_action"].startswith(
        "Add ip4:127.0.0.82 to the SPF record of fabrikam.test"
    )
    per_site = list(csv.DictReader(io.StringIO(render("csv", result, per_site=True), newline="")))
    assert {r["site"]: r["spf_check"] for r in per_site}["wide"] == "permerror (127.0.0.84)"

    # the JSON: the checks, typed
    document = json.loads(render("json", result))
    assert SweepResult.model_validate(document) == result
    fabrikam_checks = document["sites"][1]["checks"]
    assert fabrikam_checks[1] == {
        "device": "mfp",
        "kind": "spf",
        "domain": "fabrikam.test",
        "ip": "127.0.0.82",
        "result": "fail",
        "detail": "127.0.0.82 is not authorised: it falls through to -all",
        "record": "v=spf1 include:spf.outlook.test -all",
        "host": None,
        "mx_hosts": [],
        "mechanism": "-all",
        "lookups": 1,
        "add": "ip4:127.0.0.82",
    }


async def test_no_spf_record_and_an_unknown_egress_ip(
    lab_dns: LabDns,
    m365: M365Lab,
    named_mx: LabSmtpServer,
    write_inventory: WriteInventory,
) -> None:
    # Given a sender domain without SPF, and a site swept from an IP no one declared
    # (the lab MX echoes it, so it is known after the conversation)
    m365.tenant.accepted_domains.add("bare.test")
    text = inventory(
        lab_dns,
        site(
            "bare",
            "127.0.0.86",
            copier("mfp", MX_NAME, named_mx.port, m365.ca_file, "s@bare.test", "o@bare.test"),
            declared=False,
        ),
        zones=False,
    )
    [bare] = (await run_sweep(plan_sweep(load_inventory(str(write_inventory(text)))))).sites
    assert bare.egress.declared_ip is None
    assert bare.egress_ip == "127.0.0.86"
    [flag] = bare.flags
    assert flag.code == "SPF_NOT_AUTHORISED"
    assert flag.severity is Severity.warn
    assert "bare.test publishes no SPF record" in flag.remediation
    assert "`v=spf1 ip4:127.0.0.86 include:spf.protection.outlook.com -all`" in flag.remediation


async def test_mx_answers_are_typed_records_not_text(lab_dns: LabDns, dns: Dns) -> None:
    # Given a domain with two MX hosts and a null MX (RFC 7505) elsewhere
    lab_dns.add("typed.test", "MX", "20 Backup.Typed.Test.", "10 mx.typed.test")
    lab_dns.add("null.test", "MX", "0 .")
    # When the resolver asks for them
    answer = await dns.query("typed.test", "MX")
    null = await dns.query("null.test", "MX")
    # Then each is a (preference, exchange) record, lower case, without the final dot
    assert answer.ok
    assert sorted(answer.mx) == [MxRecord(10, "mx.typed.test"), MxRecord(20, "backup.typed.test")]
    assert null.ok
    assert null.mx == (MxRecord(0, ""),)


def test_checks_read_back_as_typed_mx_and_spf_checks() -> None:
    # Given the JSON of one MX and one SPF check, as a sweep writes them
    mx = MxCheck(device="d", domain="c.test", result=MxResult.mismatch, detail="x", host="h")
    spf = SpfCheck(device="d", domain="c.test", ip=IP, result=SpfResult.pass_, detail="y")
    text = msgspec.json.encode([mx, spf])
    # When read back, `kind` picks the model and the result is that model's enum
    back = msgspec.json.decode(text, type=list[DirectSendCheck])
    assert back == [mx, spf]
    assert isinstance(back[0], MxCheck)
    assert back[0].result is MxResult.mismatch
    assert isinstance(back[1], SpfCheck)
    assert back[1].result is SpfResult.pass_
    # Then a result of the other kind, an unknown kind, or an SPF key on an MX check is refused
    document = json.loads(text)
    for bad in (
        {**document[0], "result": "pass"},
        {**document[1], "result": "match"},
        {**document[0], "kind": "dkim"},
        {**document[0], "record": "v=spf1 -all"},
    ):
        with pytest.raises(ValidationError):
            msgspec.convert([bad], list[DirectSendCheck])


def test_the_lookup_limit_advice_follows_the_count_not_the_wording() -> None:
    """SPF_BROKEN advises trimming includes when the evaluation counted more lookups than
    RFC 7208 allows: the matrix reads `lookups`, not the prose the SPF probe wrote."""

    def remedy(detail: str, lookups: int) -> str:
        check = SpfCheck(
            device="mfp",
            domain="c.test",
            ip=IP,
            result=SpfResult.permerror,
            detail=detail,
            lookups=lookups,
            add=f"ip4:{IP}",
        )
        now = datetime.now(UTC)
        observation = SiteObservation(
            site="hq",
            client="C",
            name=None,
            tags=[],
            egress=Egress(transport=EgressTransport.direct, egress_ip=IP),
            devices=[],
            blocklists=[],
            checks=[check],
            started_at=now,
            finished_at=now,
        )
        (flag,) = assess(observation, now.date()).flags
        assert flag.code == "SPF_BROKEN"
        return flag.remediation

    assert "stay within 10 lookups" in remedy("include loop: a.test", MAX_LOOKUPS + 1)
    assert "stay within" not in remedy("bad term: ip4:300.1.1.1 (DNS lookups fine)", 2)
