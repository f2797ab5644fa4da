"""The DNS fault corpus: every way a resolver or a blocklist fails to answer gives `unknown`
with the reason, never `clean`, through the real engine (inventory -> plan -> run_sweep).

Each case is one sweep of one site whose copier is healthy (Direct Send to the Microsoft
365-like MX, from its own address, with MX and SPF in order), so the only thing wrong is
the blocklist: the site must come out `unknown` with BLOCKLIST_UNKNOWN, and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.inventory import load_inventory
from fleet.lab.dns import LabDns
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.probes.dnsbl_zones import reverse_name
from fleet.results import BlocklistStatus, SiteResult, Verdict

from .conftest import M365Lab
from .hostile import healthy_site, lab_inventory, publish_contoso
from .inventory_builder import InventoryBuilder

ZONE = "zen.faults.test"  # a Spamhaus-like zone (kind spamhaus-zen)
OTHER = "bl.faults.test"  # a second, healthy list (kind generic)
SITE_IP = "127.0.0.77"  # the site sends from here, and declares it
DNS_TIMEOUT_S = 0.3


def name(ip: str, zone: str = ZONE) -> str:
    return f"{reverse_name(ip)}.{zone}"


@dataclass(frozen=True)
class Fault:
    id: str
    arrange: Callable[[LabDns], None]
    words: str  # in the reason
    zones: tuple[str, ...] = (ZONE,)  # the zones that must be unknown


def zone_fault(kind: str) -> Callable[[LabDns], None]:
    return lambda dns: dns.fault(ZONE, kind)


def site_ip_answers(*codes: str) -> Callable[[LabDns], None]:
    return lambda dns: dns.list_ip(ZONE, SITE_IP, *codes)


def every_name_answers(code: str) -> Callable[[LabDns], None]:
    """A list (or a resolver in front of it) that answers one code for every name."""

    def arrange(dns: LabDns) -> None:
        for ip in ("127.0.0.2", "127.0.0.1", SITE_IP):
            dns.list_ip(ZONE, ip, code)

    return arrange


def fault_on(kind: str, *names: str) -> Callable[[LabDns], None]:
    """A resolver that answers some questions and not others."""

    def arrange(dns: LabDns) -> None:
        for faulty in names:
            dns.fault(faulty, kind)

    return arrange


FAULTS = [
    # the resolver fails
    Fault("timeout", zone_fault("timeout"), "did not answer in time"),
    Fault("servfail", zone_fault("servfail"), "SERVFAIL"),
    Fault("refused", zone_fault("refused"), "REFUSED"),
    # TC over UDP, and the connection dropped over TCP: the answer never arrives
    Fault("truncated", zone_fault("truncate"), "dropped the connection"),
    Fault("wrong_type", zone_fault("wrong_type"), "no A record"),
    # Spamhaus's refusal answers, for the site's IP only (the zone passes its self-test)
    Fault("spamhaus_252", site_ip_answers("127.255.255.252"), "mistyped"),
    Fault("spamhaus_254", site_ip_answers("127.255.255.254"), "refuses this resolver"),
    Fault("spamhaus_255", site_ip_answers("127.255.255.255"), "free-use query limit"),
    Fault("refusal_next_to_a_listing", site_ip_answers("127.0.0.4", "127.255.255.254"), "refuses"),
    # ... and for every name: a public resolver, refused by Spamhaus
    Fault(
        "spamhaus_254_everywhere",
        every_name_answers("127.255.255.254"),
        "self-test failed: Spamhaus refuses this resolver",
    ),
    # answers that are no blocklist answer at all
    Fault("outside_loopback", site_ip_answers("192.0.2.1"), "outside 127.0.0.0/8"),
    Fault("rewriting_resolver", every_name_answers("198.51.100.7"), "outside 127.0.0.0/8"),
    Fault("lists_the_world", every_name_answers("127.0.0.2"), "127.0.0.1 is listed"),
    Fault("answers_127_0_0_1", site_ip_answers("127.0.0.1"), "not a listing code"),
    # a resolver that answers only some questions
    Fault("only_the_site_ip_times_out", fault_on("timeout", name(SITE_IP)), "in time"),
    Fault("only_the_site_ip_is_refused", fault_on("refused", name(SITE_IP)), "REFUSED"),
    Fault("only_the_test_entry_times_out", fault_on("timeout", name("127.0.0.2")), "127.0.0.2"),
    Fault("only_the_negative_test_fails", fault_on("servfail", name("127.0.0.1")), "127.0.0.1"),
    Fault(
        "one_zone_answers_the_other_does_not",
        fault_on("servfail", OTHER),
        "SERVFAIL",
        zones=(OTHER,),
    ),
]


def sweep_inventory(dns: LabDns, m365: M365Lab) -> InventoryBuilder:
    inventory = lab_inventory(
        dns,
        connect_s=5,
        command_s=5,
        site_s=20,
        dns_timeout_s=DNS_TIMEOUT_S,
        blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}, {"zone": OTHER, "kind": "generic"}],
    )
    egress = {"bind": SITE_IP, "ip": SITE_IP}
    return healthy_site(inventory, m365.mx.port, m365.ca_file, "office", egress)


async def sweep_site(
    dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> SiteResult:
    publish_contoso(dns)
    dns.blocklist(ZONE)
    dns.blocklist(OTHER)
    result = await run_sweep(
        plan_sweep(load_inventory(str(write_inventory(sweep_inventory(dns, m365)))))
    )
    assert result.sweep.complete
    (site,) = result.sites
    return site


async def test_without_a_fault_the_site_is_ok_and_clean(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> None:
    """The control: the same sweep, nothing broken."""
    site = await sweep_site(lab_dns, m365, write_inventory)

    assert site.verdict is Verdict.ok, site.flags
    assert {(b.zone, b.status) for b in site.blocklists} == {
        (ZONE, BlocklistStatus.clean),
        (OTHER, BlocklistStatus.clean),
    }


@pytest.mark.parametrize("fault", FAULTS, ids=[f.id for f in FAULTS])
async def test_a_dns_fault_is_unknown_with_its_reason_never_clean(
    fault: Fault, lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> None:
    # Given a resolver or a list that fails in one way
    fault.arrange(lab_dns)

    # When the site is swept
    site = await sweep_site(lab_dns, m365, write_inventory)

    # Then the copier itself is fine, and the blocklist says it could not tell, and why
    assert [d.category.value for d in site.devices] == ["ok"]
    assert site.egress_ip == SITE_IP
    by_zone = {b.zone: b for b in site.blocklists if b.ip == SITE_IP}
    assert set(by_zone) == {ZONE, OTHER}
    for zone in fault.zones:
        result = by_zone[zone]
        assert result.status is BlocklistStatus.unknown, result
        assert result.detail is not None
        assert fault.words in result.detail, result.detail
        assert result.lists == []
        assert result.severity is None
    for zone in set(by_zone) - set(fault.zones):
        assert by_zone[zone].status is BlocklistStatus.clean  # the healthy list still answers
    # ... and the site is `unknown` with BLOCKLIST_UNKNOWN, nothing else
    assert site.verdict is Verdict.unknown
    assert {f.code for f in site.flags} == {"BLOCKLIST_UNKNOWN"}
    flag = site.flags[0]
    assert fault.words in flag.evidence
    assert flag.devices == ["mfp"]
