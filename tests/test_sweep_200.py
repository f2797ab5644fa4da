"""A sweep of 200 sites, a quarter of them pointed at hostile servers, completes with every
site accounted for, inside a bound computed from the timeouts and the caps.

150 sites do Direct Send to the Microsoft 365-like MX, each from its own 127.0.3.x address;
50 talk to one hostile server that picks its behaviour from the client's address (every
behaviour of tests/hostile.py, in turn). Everything runs in this process, on loopback.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.inventory import load_inventory
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.results import BlocklistStatus, Category, Verdict

from .conftest import M365Lab
from .hostile import BEHAVIOURS, PASSWORD_ENV, HostileServer, hostile_device, publish_contoso
from .inventory_builder import InventoryBuilder, device, lab_defaults
from .test_hostile_smtp import CASES

SITES = 200
HOSTILE_EVERY = 4  # every fourth site: 50 hostile
# The site budget leaves the tarpit (8 replies at 0.3 s) over a second for its TLS handshake
# and scheduling among 200 sites on a loaded 2-core machine (3 s left 0.6 s, too little).
CONNECT_S, COMMAND_S, SITE_S = 1.0, 1.0, 4.0
GLOBAL, PER_HOST, PER_SITE = 200, 200, 2  # fleet's default global cap
# The lab's DNS server shares this process's event loop with 150 TLS handshakes (both
# ends): on a loaded 2-core machine an answer can take over 0.5 s, so allow 1.5 s.
DNS_TIMEOUT_S, DNS_TRIES = 1.5, 1  # and DNS concurrency above the questions in flight
# After its conversation a site asks DNS, one round at a time: the blocklist's self-test,
# the lookup of its IP (the zone lists nobody, so no TXT), its copier's MX, and the SPF
# record of the sender's domain (one record, no include).
DNS_ROUNDS = 4
# No behaviour makes the probe wait out more than this many command timeouts (the hostile
# corpus measures it behaviour by behaviour).
STALLS = max(case.stalls for case in CASES)
# CPU, not waiting: 150 TLS conversations, both ends in this one process, on a small shared
# CI machine (the whole sweep takes under 2 s on a quiet one).
MARGIN_S = 2.5


def bound_s() -> float:
    """Sites run on min(global, sites) workers, so in ceil(sites / workers) waves; a site
    ends within its budget (site_s) or its stalls (command_s each), plus a polite QUIT after
    a stage the server refused (at most min(command_s, 5)), plus its DNS rounds (each at
    most timeout_s x tries)."""
    waves = math.ceil(SITES / min(GLOBAL, SITES))
    conversation_s = min(SITE_S, STALLS * COMMAND_S) + min(COMMAND_S, 5.0)
    per_site_s = conversation_s + DNS_ROUNDS * DNS_TIMEOUT_S * DNS_TRIES
    return waves * per_site_s + MARGIN_S


ZONE = "zen.sweep200.test"
ORDER = list(BEHAVIOURS)
EXPECTED = {c.behaviour: c.category for c in CASES}
# With this sweep's budget of 4 s, the tarpit's 0.3 s per reply add up to an ok conversation.
EXPECTED["tarpit"] = Category.ok


def inventory(
    lab: LabDns, mx_port: int, hostile_port: int, ca_file: str
) -> tuple[InventoryBuilder, dict[str, str]]:
    defaults = lab_defaults(
        lab, connect_s=CONNECT_S, command_s=COMMAND_S, site_s=SITE_S, dns_timeout_s=DNS_TIMEOUT_S
    )
    defaults["dns"].update(tries=DNS_TRIES, concurrency=1000)
    defaults["concurrency"] = {"global": GLOBAL, "per_site": PER_SITE, "per_host": PER_HOST}
    built = InventoryBuilder(defaults, blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}])
    hostile: dict[str, str] = {}  # site id -> behaviour
    for n in range(SITES):
        if n % HOSTILE_EVERY == 0:
            k = n // HOSTILE_EVERY
            behaviour = ORDER[k % len(ORDER)]
            site_id = f"hostile-{k:02d}"
            hostile[site_id] = behaviour
            user = f"{site_id}@contoso.test"  # a login of its own
            mfp = hostile_device(BEHAVIOURS[behaviour], hostile_port, ca_file, username=user)
            built.site(site_id, mfp, client="Hostile", bind=f"127.0.4.{k + 1}")
        else:
            mfp = device(mx_port, ca_file, host="localhost", to="alice@contoso.test")
            built.site(f"office-{n:03d}", mfp, client="Contoso", bind=f"127.0.3.{n}")
    return built, hostile


async def test_200_sites_a_quarter_hostile_complete_with_every_site_accounted_for(
    m365: M365Lab,
    lab_dns: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 200 sites, and one hostile server that misbehaves by the client's address
    monkeypatch.setenv(PASSWORD_ENV, "hostile-test-password")
    publish_contoso(lab_dns)
    lab_dns.blocklist(ZONE)
    by_address = {f"127.0.4.{k + 1}": ORDER[k % len(ORDER)] for k in range(SITES)}
    server = HostileServer(by_address.__getitem__, certs)
    port = await server.start()
    try:
        built, hostile = inventory(lab_dns, m365.mx.port, port, m365.ca_file)
        plan = plan_sweep(load_inventory(str(write_inventory(built))))

        # When it is swept
        began = time.perf_counter()
        result = await run_sweep(plan)
        took_s = time.perf_counter() - began
    finally:
        await server.stop()

    # Then it completed inside the bound, with every site accounted for, in order
    assert took_s <= bound_s(), f"{took_s:.1f} s > {bound_s():.1f} s"
    assert result.sweep.complete
    assert result.sweep.sites_missing == []
    assert result.sweep.sites_planned == SITES
    assert [s.site for s in result.sites] == [p.site.id for p in plan.sites]
    assert len(hostile) == SITES // HOSTILE_EVERY
    # ... the hostile server played every behaviour, once per hostile site
    assert sorted(server.served) == sorted(hostile.values())
    # ... every healthy site is ok: clean IP, accepted at RCPT
    healthy = [s for s in result.sites if s.site not in hostile]
    assert len(healthy) == 150
    assert {s.verdict for s in healthy} == {Verdict.ok}, [
        (s.site, s.flags[0].evidence) for s in healthy if s.verdict is not Verdict.ok
    ][:3]
    assert {b.status for s in healthy for b in s.blocklists} == {BlocklistStatus.clean}
    # ... and every hostile site ended its device in the behaviour's category, with a finding
    for site in result.sites:
        if site.site not in hostile:
            continue
        (device,) = site.devices
        assert device.category is EXPECTED[hostile[site.site]], (site.site, device.finding)
        assert device.finding
        if device.category is not Category.ok:
            assert device.remediation
            assert site.verdict is not Verdict.ok
