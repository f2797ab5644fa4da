"""The sweep orchestrator: each site from its own egress, caps that hold, clean stops,
and a plan that can be inspected (issue 5)."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.inventory import load_inventory
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, QuietHandler, Tenant, m365_mx
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.results import Category, EgressTransport, SweepResult, Verdict
from fleet.runner import Control, SweepOptions

from .conftest import ROOT, M365Lab, eventually, fleet_env, free_port, publish_spf, run_fleet
from .inventory_builder import InventoryBuilder, device

ZONE = "zen.lab.test"


def built(
    dns: LabDns,
    global_: int = 50,
    per_site: int = 2,
    per_host: int = 50,
    *,
    connect_s: float = 3,
    command_s: float = 3,
    site_s: float = 30,
) -> InventoryBuilder:
    """The suite's defaults (lab DNS, timeouts, caps) and blocklist, sites still to add."""
    return InventoryBuilder(
        defaults={
            "dns": {"nameservers": [dns.nameserver], "timeout_s": 1, "tries": 1},
            "timeouts": {"connect_s": connect_s, "command_s": command_s, "site_s": site_s},
            "concurrency": {"global": global_, "per_site": per_site, "per_host": per_host},
        },
        blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}],
    )


async def sweep(path: Path, control: Control | None = None) -> SweepResult:
    return await run_sweep(plan_sweep(load_inventory(str(path))), SweepOptions(control=control))


async def test_each_site_is_probed_from_its_own_egress(
    m365: M365Lab,
    lab_dns: LabDns,
    socks_proxy: Callable[[str], str],
    write_inventory: Callable[..., Path],
) -> None:
    # Given four sites leaving by different ways: two bind a source address, two go
    # through their own SOCKS5 proxy that sends from its own address
    lab_dns.blocklist(ZONE, {"127.0.0.52": ("127.0.0.4",)})
    publish_spf(lab_dns)
    m365.tenant.banned_ips.add("127.0.0.52")
    proxy_a = socks_proxy("127.0.0.52")
    proxy_b = socks_proxy("127.0.0.53")
    inventory = built(lab_dns)
    for name, egress in [
        ("bind-a", {"bind": "127.0.0.50"}),
        ("bind-b", {"bind": "127.0.0.51"}),
        ("socks-a", {"via": proxy_a}),
        ("socks-b", {"via": proxy_b, "ip": "127.0.0.99"}),
    ]:
        inventory.site(name, device(m365.mx.port, m365.ca_file), client="Contoso", egress=egress)
    result = await sweep(write_inventory(inventory.yaml()))

    # Then the server saw each site from its own address, and the results say so
    sites = {s.site: s for s in result.sites}
    assert {s: sites[s].egress_ip for s in sites} == {
        "bind-a": "127.0.0.50",
        "bind-b": "127.0.0.51",
        "socks-a": "127.0.0.52",
        "socks-b": "127.0.0.53",
    }
    assert sites["socks-a"].egress.transport is EgressTransport.socks5
    assert sites["bind-a"].egress.transport is EgressTransport.bind
    assert set(m365.mx.stats.peers) == {"127.0.0.50", "127.0.0.51", "127.0.0.52", "127.0.0.53"}
    # the server decided per site: only the listed IP is refused
    assert sites["socks-a"].verdict is Verdict.critical
    assert sites["socks-a"].devices[0].category is Category.ip_reputation
    assert sites["socks-a"].flags[0].code == "DIRECT_SEND_DIRTY_IP"
    assert {sites[s].verdict for s in ("bind-a", "bind-b")} == {Verdict.ok}
    # declared and observed disagree: both recorded, flagged, and both looked up
    socks_b = sites["socks-b"]
    assert socks_b.egress.declared_ip == "127.0.0.99"
    assert socks_b.egress.observed_ips == ["127.0.0.53"]
    assert "EGRESS_IP_CHANGED" in {f.code for f in socks_b.flags}
    assert {b.ip for b in socks_b.blocklists} == {"127.0.0.99", "127.0.0.53"}


async def test_a_proxy_on_an_ipv6_address_is_used_as_written(
    m365: M365Lab,
    lab_dns: LabDns,
    socks_proxy: Callable[..., str],
    write_inventory: Callable[..., Path],
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    proxy = socks_proxy("127.0.0.54", listen="::1")
    assert proxy.startswith("socks5://[::1]:")
    inventory = built(lab_dns).site(
        "v6-proxy", device(m365.mx.port, m365.ca_file), egress={"via": proxy}
    )
    (site,) = (await sweep(write_inventory(inventory.yaml()))).sites
    assert site.egress.via == proxy  # kept with its brackets, so it can be parsed again
    assert site.egress_ip == "127.0.0.54"
    assert site.verdict is Verdict.ok


async def test_a_dead_proxy_is_egress_unreachable_not_an_smtp_failure(
    m365: M365Lab, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    inventory = built(lab_dns).site(
        "far",
        device(m365.mx.port, m365.ca_file),
        egress={"via": f"socks5://127.0.0.1:{free_port()}", "ip": "127.0.0.60"},
    )
    (site,) = (await sweep(write_inventory(inventory.yaml()))).sites
    assert site.devices[0].category is Category.egress_unreachable
    assert site.devices[0].failed_stage.value == "connect"
    assert site.verdict is Verdict.unknown
    assert [f.code for f in site.flags] == ["EGRESS_UNREACHABLE"]
    assert m365.mx.stats.connections == 0


@pytest.mark.slow  # several seconds
@pytest.mark.parametrize(
    ("caps", "expect"),
    [
        ((50, 2, 50), {"per_site": 2}),  # (global, per_site, per_host)
        ((50, 3, 4), {"per_host": 4}),
        ((5, 3, 50), {"global": 5}),
    ],
)
async def test_concurrency_caps_hold(
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    caps: tuple[int, int, int],
    expect: dict[str, int],
) -> None:
    # Slow servers keep connections open long enough to overlap.
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    tenant = Tenant(accepted_domains={"contoso.test"})
    servers = [m365_mx(tenant, certs.server_context(), delay_s=0.04) for _ in range(2)]
    for server in servers:
        await server.start()
    try:
        global_, per_site, per_host = caps
        inventory = built(lab_dns, global_, per_site, per_host)
        for n in range(6):
            # three distinct conversations per site, on two servers
            devices = [
                device(
                    servers[k % 2].port,
                    str(certs.ca_file),
                    to=f"user{k}@contoso.test",
                    ident=f"mfp-{k}",
                )
                for k in range(3)
            ]
            inventory.site(f"site-{n}", *devices, bind=f"127.0.1.{n + 1}")
        result = await sweep(write_inventory(inventory.yaml()))
        assert len(result.sites) == 6
        assert all(d.category is Category.ok for s in result.sites for d in s.devices)
        per_peer = max(max(s.stats.max_per_peer.values()) for s in servers)
        total = _max_total([s.stats for s in servers])
        if "per_site" in expect:
            # no site ever has more than per_site connections open, and some reach it
            assert _max_site(servers) == expect["per_site"]
        if "per_host" in expect:
            # both servers are host 127.0.0.1: the cap is per destination host, across ports
            assert total == expect["per_host"]
        if "global" in expect:
            assert total == expect["global"]
        assert per_peer <= 3
    finally:
        for server in servers:
            await server.stop()


def _max_site(servers: list[LabSmtpServer]) -> int:
    """The most connections one site (one source address) had open at once, on all servers."""
    events: list[tuple[float, int, str]] = []
    for server in servers:
        events.extend(server.stats.timeline)
    open_now: dict[str, int] = {}
    most = 0
    for _, delta, peer in sorted(events):
        open_now[peer] = open_now.get(peer, 0) + delta
        most = max(most, open_now[peer])
    return most


def _max_total(stats: list[object]) -> int:
    events: list[tuple[float, int, str]] = []
    for s in stats:
        events.extend(s.timeline)  # type: ignore[attr-defined]
    now = most = 0
    for _, delta, _peer in sorted(events):
        now += delta
        most = max(most, now)
    return most


async def test_the_site_time_budget_ends_a_hung_site(
    lab_dns: LabDns, write_inventory: Callable[..., Path], certs: LabCertificates
) -> None:
    # A server that accepts and never says anything: only the site budget can end it
    # before the command timeout.
    release = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        lab_dns.blocklist(ZONE)
        publish_spf(lab_dns)
        inventory = built(lab_dns, command_s=20, site_s=0.5).site(
            "hung",
            device(port, str(certs.ca_file)),
            egress={"bind": "127.0.0.70", "ip": "127.0.0.70"},
        )
        started = time.monotonic()
        (site,) = (await sweep(write_inventory(inventory.yaml()))).sites
        assert time.monotonic() - started < 3
        assert site.devices[0].category is Category.timeout
        assert "site_s" in (site.devices[0].finding or "")
    finally:
        release.set()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)  # let the handlers close their connections


async def test_stop_finishes_running_sites_and_marks_the_sweep_incomplete(
    certs: LabCertificates, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.05)
    await slow.start()
    try:
        inventory = built(lab_dns, global_=1, per_site=1, per_host=1)
        for n in range(5):
            inventory.site(f"s{n}", device(slow.port, str(certs.ca_file)), bind=f"127.0.2.{n + 1}")
        text = inventory.yaml()
        control = Control()
        done: list[str] = []

        def on_site(site: object) -> None:
            done.append(getattr(site, "site", ""))
            if len(done) == 2:
                control.reason = "interrupted by test"
                control.stop.set()

        result = await run_sweep(
            plan_sweep(load_inventory(str(write_inventory(text)))),
            SweepOptions(control=control, on_site=on_site),
        )
        assert [s.site for s in result.sites] == ["s0", "s1"]
        assert result.sweep.complete is False
        assert result.sweep.interrupted == "interrupted by test"
        assert result.sweep.sites_missing == ["s2", "s3", "s4"]
        assert all(s.verdict is Verdict.ok for s in result.sites)  # finished whole, not cut
    finally:
        await slow.stop()


@pytest.mark.slow  # several seconds
async def test_sigterm_stops_the_command_promptly_with_what_finished(
    certs: LabCertificates, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.1)
    await slow.start()
    try:
        built_inventory = built(lab_dns, global_=1, per_site=1, per_host=1)
        for n in range(8):
            built_inventory.site(
                f"s{n}", device(slow.port, str(certs.ca_file)), bind=f"127.0.3.{n + 1}"
            )
        inventory = write_inventory(built_inventory.yaml())
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleet",
            "sweep",
            "-i",
            str(inventory),
            "--no-store",
            "--format",
            "json",
            "-q",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=fleet_env(),
        )
        # When the first sites have been probed, SIGTERM arrives
        await eventually(lambda: len(slow.stats.peers) >= 2)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = await asyncio.wait_for(process.communicate(), 20)
        # Then the command exits promptly: the running site finishes, no new one starts
        assert time.monotonic() - signalled < 3
        assert process.returncode == 3
        assert b"SIGTERM: finishing running sites" in err
        result = SweepResult.model_validate_json(out)
        assert result.sweep.complete is False
        assert result.sweep.interrupted == "interrupted by SIGTERM"
        assert 1 <= len(result.sites) < 8
        assert len(result.sites) + len(result.sweep.sites_missing) == 8
        assert all(s.verdict is Verdict.ok for s in result.sites)
    finally:
        await slow.stop()


def test_dry_run_reports_the_deduplicated_plan_of_the_example() -> None:
    run = run_fleet("sweep", "-i", str(ROOT / "inventory.example.yaml"), "--dry-run")
    assert run.code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "fleet sweep --dry-run: nothing is sent."
    # contoso-hq's two copiers share one conversation: 7 devices, 6 conversations;
    # two sites declare an egress IP, looked up on two blocklists.
    assert lines[1] == (
        "4 sites, 7 devices -> 6 SMTP conversations; 2 declared egress IPs x 2 blocklists = 4 "
        "lookups (+4 self-test queries; IPs the servers echo may add more)"
    )
    assert (
        "contoso-branch (Contoso Dental) via socks5://10.20.0.5:1080, expected IP 198.51.100.23"
        in run.stdout
    )
    assert "[mfp-frontdesk, mfp-backoffice]" in run.stdout
    assert "northwind-office (Northwind Traders) via direct, from 192.0.2.10" in run.stdout


def test_dry_run_honours_filters() -> None:
    run = run_fleet(
        "sweep",
        "-i",
        str(ROOT / "inventory.example.yaml"),
        "--dry-run",
        "--client",
        "contoso dental",
    )
    assert run.code == 0
    assert run.stdout.splitlines()[1].startswith("2 sites, 3 devices -> 2 SMTP conversations")
    run = run_fleet(
        "sweep", "-i", str(ROOT / "inventory.example.yaml"), "--dry-run", "--tag", "weekly"
    )
    assert run.stdout.splitlines()[1].startswith("1 sites, 2 devices -> 2 SMTP conversations")
    run = run_fleet(
        "sweep", "-i", str(ROOT / "inventory.example.yaml"), "--dry-run", "--site", "nope"
    )
    assert run.code == 3
    assert "no such site: nope" in run.stderr


async def test_public_ip_lookup_gives_direct_sites_their_egress_ip(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # A "what is my IP" name that the lab resolver answers with the asker's address.
    lab_dns.fault("myip.lab.test", "echo_client")
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    inventory = built(lab_dns)
    inventory.defaults["public_ip_lookup"] = {
        "name": "myip.lab.test",
        "nameserver": lab_dns.nameserver,
    }
    # a server that does not echo the IP: without the lookup the site's IP would be unknown
    quiet = LabSmtpServer(
        QuietHandler(), hostname="lab-mx.test", tls_context=certs.server_context("localhost")
    )
    await quiet.start()
    try:
        inventory.site("here", device(quiet.port, str(certs.ca_file)))
        (site,) = (await sweep(write_inventory(inventory.yaml()))).sites
    finally:
        await quiet.stop()
    assert site.egress.observed_ips == ["127.0.0.1"]
    assert lab_dns.log.count("myip.lab.test") == 1


async def test_a_proxy_that_accepts_and_never_answers_is_egress_unreachable(
    m365: M365Lab, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    # A SOCKS5 proxy that takes the connection and says nothing: the egress is broken, which
    # says nothing about the mail server (not UNREACHABLE, not "port 25 blocked").
    release = asyncio.Event()

    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()
        writer.close()

    proxy = await asyncio.start_server(mute, "127.0.0.1", 0)
    port = proxy.sockets[0].getsockname()[1]
    try:
        lab_dns.blocklist(ZONE)
        publish_spf(lab_dns)
        inventory = built(lab_dns, connect_s=0.5).site(
            "mute",
            device(m365.mx.port, m365.ca_file),
            egress={"via": f"socks5://127.0.0.1:{port}", "ip": "127.0.0.61"},
        )
        (site,) = (await sweep(write_inventory(inventory.yaml()))).sites
        assert site.devices[0].category is Category.egress_unreachable
        assert "does not answer" in (site.devices[0].finding or "")
        assert [f.code for f in site.flags] == ["EGRESS_UNREACHABLE"]
        assert site.verdict is Verdict.unknown
    finally:
        release.set()
        proxy.close()
        await proxy.wait_closed()
        await asyncio.sleep(0.05)


def test_copiers_with_the_same_login_but_other_secrets_are_tested_apart(
    write_inventory: Callable[..., Path],
) -> None:
    # One username, three ways to sign in: three conversations, not one.
    logins: list[dict[str, object]] = [
        {"username": "scan@c.test", "password_env": "PW_A"},
        {"username": "scan@c.test", "password_file": "pw.txt"},
        {"username": "scan@c.test", "oauth2": {"token_env": "TOKEN"}},
        {"username": "scan@c.test", "password_env": "PW_A"},
    ]
    devices = [
        {
            "id": f"d{n}",
            "smtp": {
                "host": "smtp.c.test",
                "port": 587,
                "auth": auth,
                "from": "scan@c.test",
                "to": "x@c.test",
            },
        }
        for n, auth in enumerate(logins)
    ]
    inventory = InventoryBuilder().site("s", *devices)
    plan = plan_sweep(load_inventory(str(write_inventory(inventory.yaml()))))
    groups = [[d.id for d in c.devices] for c in plan.sites[0].conversations]
    assert groups == [["d0", "d3"], ["d1"], ["d2"]]


async def test_a_bug_on_one_site_costs_that_site_only_and_its_evidence_is_scrubbed(
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    certs: LabCertificates,
) -> None:
    from fleet.credentials import Secrets
    from fleet.plan import SitePlan
    from fleet.results import SiteResult
    from fleet.runner import Sweeper

    secrets = Secrets()
    secrets.add("s3cret-canary-internal")  # as if the sweep had read it

    async def buggy_site(sweeper: Sweeper, site_plan: SitePlan) -> SiteResult:
        if site_plan.site.id == "broken":
            raise RuntimeError("unexpected state near s3cret-canary-internal")
        return await Sweeper.site(sweeper, site_plan)

    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    closed = free_port()  # nobody listens there: connection refused
    inventory = built(lab_dns)
    for ident, ip in (("broken", "127.0.0.71"), ("fine", "127.0.0.72")):
        inventory.site(ident, device(closed, str(certs.ca_file)), egress={"bind": ip, "ip": ip})
    plan = plan_sweep(load_inventory(str(write_inventory(inventory.yaml()))))
    result = await run_sweep(plan, SweepOptions(secrets=secrets, probe_site=buggy_site))
    assert result.sweep.complete
    broken, fine = result.sites
    assert broken.verdict is Verdict.unknown
    (flag,) = broken.flags
    assert flag.code == "INTERNAL_ERROR"
    assert flag.evidence == "RuntimeError: unexpected state near ****"
    assert fine.devices[0].category is Category.unreachable  # swept as usual


async def test_a_bug_in_one_conversation_stops_its_siblings(
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    certs: LabCertificates,
) -> None:
    from fleet.probes.spec import ConversationSpec
    from fleet.results import Conversation

    sibling_cancelled = asyncio.Event()

    async def buggy_converse(
        spec: ConversationSpec, *args: object, **kwargs: object
    ) -> Conversation:
        if spec.rcpt_to.startswith("bug"):
            await asyncio.sleep(0.05)
            raise KeyError("a bug")
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            sibling_cancelled.set()
            raise
        raise AssertionError("not reached")

    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    inventory = built(lab_dns).site(
        "one",
        device(2525, str(certs.ca_file), to="bug@contoso.test", ident="a"),
        device(2525, str(certs.ca_file), to="fine@contoso.test", ident="b"),
        egress={"bind": "127.0.0.73", "ip": "127.0.0.73"},
    )
    started = time.monotonic()
    plan = plan_sweep(load_inventory(str(write_inventory(inventory.yaml()))))
    (site,) = (await run_sweep(plan, SweepOptions(converse=buggy_converse))).sites
    assert time.monotonic() - started < 5  # not the 30 s of the orphaned sibling
    assert sibling_cancelled.is_set()
    assert [f.code for f in site.flags] == ["INTERNAL_ERROR"]
    assert site.flags[0].evidence == "KeyError: 'a bug'"


async def test_a_nameserver_given_by_name_is_resolved_once_when_the_sweep_starts(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]
) -> None:
    # `localhost` comes from /etc/hosts: no DNS question leaves this machine.
    lab_dns.blocklist(ZONE, {"127.0.0.90": ("127.0.0.4",)})
    publish_spf(lab_dns)
    inventory = built(lab_dns).site(
        "listed",
        device(m365.mx.port, m365.ca_file),
        egress={"bind": "127.0.0.90", "ip": "127.0.0.90"},
    )
    inventory.defaults["dns"]["nameservers"] = [f"localhost:{lab_dns.port}"]
    (site,) = (await sweep(write_inventory(inventory.yaml()))).sites
    assert [b.status.value for b in site.blocklists] == ["listed"]


async def test_a_nameserver_name_that_does_not_resolve_stops_the_sweep_before_anything(
    lab_dns: LabDns, write_inventory: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket as socket_module

    from fleet.errors import NameserverError

    def no_such_name(host: str, *args: object, **kwargs: object) -> object:
        # The system resolver's answer for a name that does not exist, without asking
        # anyone (a test sends nothing beyond loopback).
        raise socket_module.gaierror(socket_module.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket_module, "getaddrinfo", no_such_name)
    inventory = built(lab_dns).site("a", device(25, "/nonexistent"))
    inventory.defaults["dns"]["nameservers"] = ["dns.msp.lan"]
    started: list[object] = []
    with pytest.raises(NameserverError, match=r"cannot resolve 'dns\.msp\.lan'"):
        await run_sweep(
            plan_sweep(load_inventory(str(write_inventory(inventory.yaml())))),
            SweepOptions(on_start=started.append),
        )
    assert started == []  # nothing begun, so nothing half-stored


@pytest.mark.slow
async def test_an_abort_cancels_running_sites_and_keeps_the_finished_ones(
    certs: LabCertificates, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    # Given four sites that take turns on one slow mail server (one conversation at a time)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.2)
    await slow.start()
    try:
        inventory = built(lab_dns, global_=4, per_site=1, per_host=1)
        for n in range(4):
            inventory.site(f"s{n}", device(slow.port, str(certs.ca_file)), bind=f"127.0.3.{n + 1}")
        text = inventory.yaml()
        control = Control()
        # When the caller aborts as soon as the first site is done
        result = await run_sweep(
            plan_sweep(load_inventory(str(write_inventory(text)))),
            SweepOptions(control=control, on_site=lambda site: control.abort.set()),
        )
    finally:
        await slow.stop()
    # Then the sweep returns what finished, marked incomplete, and names the sites it lacks
    assert 1 <= len(result.sites) < 4
    assert result.sweep.complete is False
    assert len(result.sweep.sites_missing) == 4 - len(result.sites)


async def test_a_failing_callback_stops_the_sweep_with_its_own_error(
    m365: M365Lab, lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given a caller whose per-site callback fails (as a broken store would)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    inventory = built(lab_dns)
    for n in range(3):
        inventory.site(f"s{n}", device(m365.mx.port, str(certs.ca_file)), bind=f"127.0.3.{n + 1}")
    text = inventory.yaml()

    def broken(site: object) -> None:
        raise RuntimeError("the store broke")

    # When the sweep runs, the error itself reaches the caller (not wrapped in a group)
    with pytest.raises(RuntimeError, match="the store broke"):
        await run_sweep(
            plan_sweep(load_inventory(str(write_inventory(text)))), SweepOptions(on_site=broken)
        )
