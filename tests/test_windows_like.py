"""The Windows-simulation tier: the command line's main flows in a child process that lacks
what Windows lacks (tests/windows_like.py: no fcntl, termios, pwd, grp, resource or uvloop,
no `add_signal_handler`, stdout in cp1252), against the loopback lab.

Names in the inventory are in scripts cp1252 cannot show (Polish, Japanese): the table, the
transcript and the reports must print them with replacement characters, never fail."""

from __future__ import annotations

import asyncio
import html
import json
import signal
import sqlite3
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Tenant, m365_mx
from fleet.results import EgressTransport, SweepResult, Verdict

from .conftest import ROOT, M365Lab, eventually, publish_spf
from .inventory_builder import InventoryBuilder, device, lab_defaults
from .windows_like import SHIM, no_traceback, run_windows_like, start_windows_like, windows_env

ZONE = "zen.lab.test"
CLIENT = "Biuro Łódź 東京"  # Ł, ź and the kanji are not in cp1252
SHOWN = "Biuro ?ód? ??"  # what a cp1252 console shows of it
BANNER = "mx.contoso.test ESMTP gotowy: Łódź 東京"
REFUSAL = "Skrzynka nie istnieje: łódź@contoso.test"


def polish_inventory(
    dns: LabDns,
    mx_port: int,
    ca_file: str | None,
    sites: int = 3,
    global_: int = 4,
    egress: dict[int, dict[str, str]] | None = None,
) -> InventoryBuilder:
    """Sites of a client named in Polish and Japanese, each from its own address (127.0.0.60
    up) unless `egress` gives a site (by number) another way out; no STARTTLS without a
    `ca_file`."""
    defaults = lab_defaults(dns, connect_s=5, command_s=5, site_s=60, dns_timeout_s=1)
    defaults["concurrency"] = {"global": global_, "per_site": 1, "per_host": 4}
    built = InventoryBuilder(defaults, blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}])
    for n in range(sites):
        ip = f"127.0.0.{60 + n}"
        mfp = device(mx_port, ca_file, security="starttls" if ca_file else "none")
        mfp["location"] = "Piętro 2, recepcja"
        built.site(
            f"site-{n}",
            mfp,
            client=CLIENT,
            name=f"Oddział {n}, Kraków",
            egress=(egress or {}).get(n, {"bind": ip, "ip": ip}),
        )
    return built


@pytest.fixture
def inventory(lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]) -> Path:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    # site-1's IP is listed and refused: a critical row, its flags and remediation shown
    lab_dns.list_ip(ZONE, "127.0.0.61", "127.0.0.4", reason="Listed by lab XBL")
    m365.tenant.banned_ips.add("127.0.0.61")
    return write_inventory(polish_inventory(lab_dns, m365.mx.port, m365.ca_file))


@pytest.fixture
async def polish_mx() -> AsyncIterator[int]:
    """A plain SMTP server that greets and refuses in UTF-8 Polish and Japanese, as servers
    do: aiosmtpd only speaks ASCII before SMTPUTF8, so this one speaks the raw stream."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"220 {BANNER}\r\n".encode())
        while line := await reader.readline():
            verb = line.split()[0].upper() if line.split() else b""
            answer = {
                b"EHLO": "250-mx.contoso.test\r\n250 8BITMIME",
                b"RCPT": f"550 5.1.1 {REFUSAL}",
                b"QUIT": "221 Do widzenia",
            }.get(verb, "250 OK")
            writer.write(f"{answer}\r\n".encode())
            await writer.drain()
            if verb == b"QUIT":
                break
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    server.close()
    await server.wait_closed()


async def test_validate_and_dry_run(inventory: Path) -> None:
    run = await run_windows_like("validate", str(inventory))
    no_traceback(run)
    assert run.code == 0, run.stderr
    run = await run_windows_like("sweep", "-i", str(inventory), "--dry-run")
    no_traceback(run)
    assert run.code == 0, run.stderr
    assert run.stdout.startswith("fleet sweep --dry-run: nothing is sent.")
    assert f"site-0 ({SHOWN})" in run.stdout
    example = await run_windows_like("validate", str(ROOT / "inventory.example.yaml"))
    assert example.code == 0, example.stderr


async def test_the_demo_and_the_schema(tmp_path: Path) -> None:
    demo = await run_windows_like("demo", cwd=tmp_path)
    no_traceback(demo)
    assert demo.code == 0, demo.stderr
    assert "5 sites: 2 critical, 2 warn, 1 ok" in demo.stdout
    assert (tmp_path / "fleet-demo.csv").exists()
    schema = await run_windows_like("schema")
    assert schema.code == 0
    assert json.loads(schema.stdout)["type"] == "object"


async def test_a_log_file_that_cannot_be_written_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "gone" / "agent.log"
    run = await run_windows_like(
        "--log-file", str(log), "validate", str(ROOT / "inventory.example.yaml")
    )
    no_traceback(run)
    assert run.code == 3
    assert f"fleet: cannot write the log file {log}: No such file or directory" in run.stderr


async def test_a_bad_inventory_is_refused_with_exit_3(write_inventory: Callable[..., Path]) -> None:
    bad = write_inventory('sites:\n  - id: "Łódź: not an id"\n    client: 東京\n', name="bad.yaml")
    run = await run_windows_like("validate", str(bad))
    no_traceback(run)
    assert run.code == 3
    assert "; nothing was probed" in run.stderr
    assert "\\u0141" in run.stderr  # stderr shows what cp1252 lacks as an escape, as Windows does


async def test_stored_sweep_report_and_scan_transcript(inventory: Path, tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    sweep = await run_windows_like("sweep", "-i", str(inventory), "--db", str(db), "--detail")
    no_traceback(sweep)
    assert sweep.code == 2, sweep.stderr  # site-1 is critical
    assert SHOWN in sweep.stdout
    assert "DIRECT_SEND_DIRTY_IP" in sweep.stdout
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT COUNT(*) FROM site_results").fetchone()[0] == 3
        assert check.execute("SELECT complete FROM sweeps").fetchall() == [(1,)]

    report = await run_windows_like("report", "--db", str(db), "--last")
    no_traceback(report)
    assert report.code == 2
    assert SHOWN in report.stdout
    assert "DIRECT_SEND_DIRTY_IP" in report.stdout
    page = await run_windows_like("report", "--db", str(db), "--last", "--format", "html")
    no_traceback(page)
    assert page.code == 2
    assert "&#321;&#243;d&#378;" in page.stdout  # lossless: the page says Łódź
    assert CLIENT in html.unescape(page.stdout)
    for command in (("history",), ("diff", "--format", "json"), ("prune", "--keep-days", "30")):
        run = await run_windows_like(*command, "--db", str(db))
        no_traceback(run)
        assert run.code == 0, (command, run.stderr)


async def test_scan_prints_the_transcript(
    polish_mx: int, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    text = polish_inventory(lab_dns, polish_mx, None, sites=1)
    scan = await run_windows_like("scan", "site-0", "-i", str(write_inventory(text)), "--no-store")
    no_traceback(scan)
    assert scan.code == 2, scan.stderr
    assert "<- 220 mx.contoso.test ESMTP gotowy: ?ód? ??" in scan.stdout
    assert "<- 550 5.1.1 Skrzynka nie istnieje: ?ód?@contoso.test" in scan.stdout
    assert SHOWN in scan.stdout


async def test_bind_and_socks5_egress_work_as_on_linux(
    m365: M365Lab,
    lab_dns: LabDns,
    socks_proxy: Callable[[str], str],
    write_inventory: Callable[..., Path],
) -> None:
    # Given one site that binds its source address and one behind a SOCKS5 proxy that
    # sends from its own
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    proxy = socks_proxy("127.0.0.71")
    text = polish_inventory(
        lab_dns, m365.mx.port, m365.ca_file, sites=2, egress={1: {"via": proxy}}
    )
    run = await run_windows_like(
        "sweep", "-i", str(write_inventory(text)), "--no-store", "--format", "json"
    )
    no_traceback(run)
    assert run.code == 0, run.stderr
    # Then the server saw each site from its own address, and the result says how it left
    sites = {s.site: s for s in SweepResult.model_validate_json(run.stdout).sites}
    assert sites["site-0"].egress.transport is EgressTransport.bind
    assert sites["site-0"].egress_ip == "127.0.0.60"
    assert sites["site-1"].egress.transport is EgressTransport.socks5
    assert sites["site-1"].egress_ip == "127.0.0.71"
    assert set(m365.mx.stats.peers) == {"127.0.0.60", "127.0.0.71"}


async def test_agent_sweep_and_its_ingest(inventory: Path, tmp_path: Path) -> None:
    master = "central-master-key-0123456789abcdef"
    central = windows_env(FLEET_AGENT_MASTER_KEY=master)
    key = await run_windows_like("agent-key", "site-0", "-i", str(inventory), env=central)
    assert key.code == 0, key.stderr
    site_key = key.stdout.strip()

    # At the site: the RMM's nightly task, one site, a self-contained signed result
    result_file = tmp_path / "site-0.json"
    agent = await run_windows_like(
        "sweep",
        "-i",
        str(inventory),
        "--site",
        "site-0",
        "--no-store",
        "--format",
        "json",
        "-o",
        str(result_file),
        "-q",
        env=windows_env(FLEET_AGENT_KEY=site_key),
    )
    no_traceback(agent)
    assert agent.code == 0, agent.stderr
    result = SweepResult.model_validate_json(result_file.read_bytes())
    assert result.sites[0].client == CLIENT  # the file is UTF-8, whatever the console
    assert result.sweep.signature

    # On the central machine
    db = tmp_path / "central.db"
    ingest = await run_windows_like(
        "ingest", "-i", str(inventory), "--db", str(db), str(result_file), env=central
    )
    no_traceback(ingest)
    assert ingest.code == 0, ingest.stderr
    assert "stored sweep" in ingest.stdout
    report = await run_windows_like("report", "--db", str(db), "--last", "--format", "json")
    assert report.code == 0, report.stderr
    document = json.loads(report.stdout)  # lossless: what cp1252 lacks comes as \\uXXXX escapes
    assert document["sites"][0]["client"] == CLIENT


async def test_agent_pushes_home_as_the_scheduled_task_runs_it_to_a_windows_like_central(
    inventory: Path, tmp_path: Path
) -> None:
    from .test_serve import MASTER, CentralProcess, key_of

    # The central too runs Windows-like: a technician may run `fleet serve` on a laptop.
    central = CentralProcess(inventory, tmp_path / "central.db", tmp_path / "central.log")
    central.command = [sys.executable, "-c", SHIM]
    await central.start()
    try:
        # What examples/windows/install-fleet-agent.ps1's task runs, C:\ProgramData\fleet
        # being tmp_path here
        data = tmp_path / "ProgramData-fleet"
        data.mkdir()
        agent = await run_windows_like(
            "--log-file",
            str(data / "agent.log"),
            "sweep",
            "--site",
            "site-1",
            "--push",
            central.url,
            "--spool",
            str(data / "spool"),
            "--quiet",
            "--output",
            str(data / "last.txt"),
            env=windows_env(
                FLEET_AGENT_KEY=key_of("site-1"),
                FLEET_INVENTORY=str(inventory),
                FLEET_DB=str(data / "fleet.db"),
            ),
        )
        no_traceback(agent)
        assert agent.code == 2, agent.stderr  # site-1 is critical: the code an RMM sees
        assert agent.stdout == ""
        headline = [line for line in agent.stderr.splitlines() if line.startswith("fleet sweep ")]
        assert len(headline) == 1, agent.stderr
        assert headline[0].endswith("1 sites: 1 critical")
        assert "delivered" in agent.stderr
        assert central.sweeps() == 1
        assert list((data / "spool").iterdir()) == []  # delivered, so nothing waits
        assert CLIENT in (data / "last.txt").read_text(encoding="utf-8")  # a file: UTF-8, whole
        assert MASTER not in agent.stderr
    finally:
        await central.stop()
    assert "Traceback" not in central.log.read_text(encoding="cp1252")


@pytest.fixture
async def slow_mx(certs: LabCertificates, lab_dns: LabDns) -> AsyncIterator[LabSmtpServer]:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    server = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.1)
    await server.start()
    yield server
    await server.stop()


@pytest.mark.slow
async def test_ctrl_c_keeps_what_finished_and_a_second_sweep_is_refused(
    slow_mx: LabSmtpServer,
    lab_dns: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    text = polish_inventory(lab_dns, slow_mx.port, str(certs.ca_file), sites=8, global_=1)
    inventory = write_inventory(text)
    db = tmp_path / "fleet.db"
    process = await start_windows_like(
        "sweep", "-i", str(inventory), "--db", str(db), "--format", "json", "-q"
    )
    await eventually(lambda: len(slow_mx.stats.peers) >= 2)

    # While it runs, a second sweep on the same store is refused
    second = await run_windows_like("sweep", "-i", str(inventory), "--db", str(db), "-q")
    no_traceback(second)
    assert second.code == 3
    assert "another sweep is already using the store" in second.stderr
    assert "(pid " in second.stderr

    # Ctrl-C: running sites finish, no new one starts
    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert time.monotonic() - signalled < 5
    assert process.returncode == 3
    assert "SIGINT: finishing running sites" in err.decode("cp1252")
    assert "Traceback" not in err.decode("cp1252")
    result = SweepResult.model_validate_json(out)
    assert result.sweep.complete is False
    assert result.sweep.interrupted == "interrupted by SIGINT"
    assert 1 <= len(result.sites) < 8
    assert len(result.sites) + len(result.sweep.sites_missing) == 8
    assert all(site.verdict is Verdict.ok for site in result.sites)
    with sqlite3.connect(db) as check:
        assert check.execute("SELECT COUNT(*) FROM site_results").fetchone()[0] == len(result.sites)
        assert check.execute("SELECT complete FROM sweeps").fetchall() == [(0,)]


async def test_a_second_ctrl_c_cancels_running_work(
    certs: LabCertificates, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    # Each reply takes 2 s: a site's conversation lasts far longer than the test waits.
    crawl = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=2)
    await crawl.start()
    process = None
    try:
        text = polish_inventory(lab_dns, crawl.port, str(certs.ca_file), sites=4)
        inventory = write_inventory(text)
        process = await start_windows_like(
            "sweep", "-i", str(inventory), "--no-store", "--format", "json", "-q"
        )
        assert process.stderr is not None
        await eventually(lambda: len(crawl.stats.peers) >= 1)
        process.send_signal(signal.SIGINT)
        said = b""
        while b"SIGINT: finishing running sites" not in said:
            line = await asyncio.wait_for(process.stderr.readline(), 10)
            assert line, f"fleet ended without stopping gracefully: {said!r}"  # EOF: no hang
            said += line
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        out, err = await asyncio.wait_for(process.communicate(), 30)
        assert time.monotonic() - signalled < 5  # not the ~20 s the conversations would take
        assert b"SIGINT again: cancelling running conversations" in err
        assert process.returncode == 3
        result = SweepResult.model_validate_json(out)
        assert result.sweep.complete is False
    finally:
        if process is not None and process.returncode is None:
            process.kill()
            await process.wait()
        await crawl.stop()
