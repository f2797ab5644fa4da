"""Agents push home (issue 19): the real `fleet serve` on loopback, real agents
(`fleet sweep --push`, `fleet push`), the spool, per-site keys, faults and load."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from fleet.agent import derive_site_key, seal
from fleet.lab.dns import LabDns
from fleet.results import SweepResult

from .conftest import M365Lab, eventually, fleet_env, free_port, publish_spf, run_fleet_async
from .test_history import ZONE, history_inventory

MASTER = "the-central-master-key-for-tests-0123456789"
DIRTY_IP = "127.0.0.41"  # site-1's egress


def key_of(site: str) -> str:
    return derive_site_key(MASTER.encode(), site)


class CentralProcess:
    """`fleet serve` in a child process, with its stderr (the access log) kept in a file."""

    def __init__(
        self, inventory: Path, db: Path, log: Path, *extra: str, host: str = "127.0.0.1"
    ) -> None:
        self.inventory, self.db, self.log, self.extra = inventory, db, log, extra
        self.port = free_port(host)
        self.listen = f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"
        self.url = f"http://{self.listen}"
        self.process: asyncio.subprocess.Process | None = None
        self.command = [sys.executable, "-m", "fleet"]  # or tests/windows_like.py's shim
        self.preexec_fn: Callable[[], None] | None = None  # e.g. a file-size limit

    async def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command,
                "serve",
                "-i",
                str(self.inventory),
                "--db",
                str(self.db),
                "--listen",
                self.listen,
                *self.extra,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
                env=fleet_env(FLEET_AGENT_MASTER_KEY=MASTER),
                preexec_fn=self.preexec_fn,
            )
        async with httpx.AsyncClient() as client:
            for _ in range(300):
                if self.process.returncode is not None:
                    raise AssertionError(f"fleet serve exited: {self.log.read_text()}")
                try:
                    if (await client.get(f"{self.url}/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"fleet serve did not come up: {self.log.read_text()}")

    async def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(sig)
            await asyncio.wait_for(self.process.wait(), 30)
        self.process = None

    def sweeps(self) -> int:
        if not self.db.exists():
            return 0
        with sqlite3.connect(self.db) as connection:
            return int(connection.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0])


@pytest.fixture
def inventory(lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]) -> Path:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    return write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file))


@pytest.fixture
async def central(inventory: Path, tmp_path: Path) -> AsyncIterator[CentralProcess]:
    server = CentralProcess(inventory, tmp_path / "central.db", tmp_path / "central.log")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def agent_sweep(
    inventory: Path,
    site: str,
    url: str,
    spool: Path,
    *,
    key: str | None = None,
    db: Path | None = None,
) -> tuple[int, str, str]:
    """The RMM's nightly job at `site`: sweep it and push the result home (keeping its own
    history in `db` when given)."""
    env = fleet_env(FLEET_AGENT_KEY=key or key_of(site))
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--site",
        site,
        *(("--db", str(db)) if db else ("--no-store",)),
        "-q",
        "--push",
        url,
        "--spool",
        str(spool),
        env=env,
    )
    return run.code, run.stdout, run.stderr


async def test_a_dirty_site_pushes_and_the_central_reports_it(
    inventory: Path, central: CentralProcess, lab_dns: LabDns, m365: M365Lab, tmp_path: Path
) -> None:
    # Given site-1's IP is listed and the tenant's MX refuses it
    lab_dns.list_ip(ZONE, DIRTY_IP, "127.0.0.4", reason="Listed by lab XBL")
    m365.tenant.banned_ips.add(DIRTY_IP)
    spool = tmp_path / "spool"

    # When the agent at site-1 sweeps and pushes
    code, stdout, stderr = await agent_sweep(inventory, "site-1", central.url, spool)

    # Then it prints its summary, exits critical, and the result is delivered
    assert code == 2, stderr
    assert "DIRECT_SEND_DIRTY_IP" in stdout
    assert "(201 stored)" in stderr
    assert list(spool.iterdir()) == []
    report = await run_fleet_async("report", "--last", "--db", str(central.db))
    assert report.code == 2, report.stderr
    assert "DIRECT_SEND_DIRTY_IP" in report.stdout
    assert "site-1" in report.stdout
    history = await run_fleet_async("history", "--db", str(central.db))
    assert "push:127.0.0.1" in history.stdout

    # The same result again is 200: already stored, nothing added
    result = await run_fleet_async("report", "--last", "--db", str(central.db), "--format", "json")
    stored = SweepResult.model_validate_json(result.stdout)
    async with httpx.AsyncClient(base_url=central.url) as client:
        health = await client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        resent = await client.post("/api/v1/results", content=_sealed(stored, "site-1"))
        assert resent.status_code == 200, resent.text
        assert resent.json() == {"status": "already_stored", "sweep": stored.sweep.id}
    assert central.sweeps() == 1

    # The page shows the latest result of every site: site-1's finding, the others not
    # heard from yet
    async with httpx.AsyncClient(base_url=central.url) as client:
        page = await client.get("/")
        assert page.status_code == 200
        assert "script-src" in page.headers["content-security-policy"]
        assert "DIRECT_SEND_DIRTY_IP" in page.text
        assert "not swept: site-0, site-2" in page.text
        # A query string (where a careless script might put a key) is not logged either
        assert (await client.get("/healthz?token=not-for-the-log")).status_code == 200

    # When site-1 is clean again, its next push replaces the finding on the page
    lab_dns.delist_ip(ZONE, DIRTY_IP)
    m365.tenant.banned_ips.clear()
    code, _, stderr = await agent_sweep(inventory, "site-1", central.url, spool)
    assert code == 0, stderr
    async with httpx.AsyncClient(base_url=central.url) as client:
        page = await client.get("/")
    assert "DIRECT_SEND_DIRTY_IP" not in page.text
    assert "last 2 sweeps: 1 critical, 1 ok" in page.text  # site-1's trend

    # The access log has one line per request, and never a body or a key
    log = central.log.read_text()
    assert '"POST /api/v1/results" 201' in log
    assert f"stored sweep {stored.sweep.id} (site-1)" in log
    assert '"POST /api/v1/results" 200' in log
    for secret in (MASTER, key_of("site-1"), stored.sweep.signature or "?", "scanner@contoso"):
        assert secret not in log
    assert "not-for-the-log" not in log


def _sealed(result: SweepResult, key_site: str | None) -> bytes:
    """The result as an agent holding `key_site`'s key would send it (None: unsigned)."""
    with pytest.MonkeyPatch.context() as patch:
        if key_site is None:
            patch.delenv("FLEET_AGENT_KEY", raising=False)
        else:
            patch.setenv("FLEET_AGENT_KEY", key_of(key_site))
        return seal(result).model_dump_json().encode()


async def test_one_sites_key_cannot_push_another_site(
    inventory: Path, central: CentralProcess, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    # Given an agent holding site-1's key that sends site-0's results
    code, _, stderr = await agent_sweep(
        inventory, "site-0", central.url, spool, key=key_of("site-1")
    )

    # Then the central refuses it (403, with the reason), stores nothing, and the agent
    # keeps the file and exits 3 although the site itself is ok
    assert code == 3, stderr
    assert "refused" in stderr
    assert "(403)" in stderr
    assert "signed with the key of site 'site-1', not of site 'site-0'" in stderr
    assert central.sweeps() == 0
    [kept] = spool.glob("*.json")
    result = SweepResult.model_validate_json(kept.read_text())

    # And every other kind of bad push is refused with its own status and reason
    elsewhere = result.model_copy(
        update={"sites": [result.sites[0].model_copy(update={"site": "elsewhere"})]}
    )
    other_id = result.model_copy(
        update={"sweep": result.sweep.model_copy(update={"id": "20260101T000000Z-abcdef"})}
    )
    # A forged signature or digest in letters hmac cannot compare is refused, not a 500
    sealed = SweepResult.model_validate_json(_sealed(result, "site-0"))
    odd_signature = sealed.model_copy(
        update={"sweep": sealed.sweep.model_copy(update={"signature": "\u00e9" * 64})}
    )
    odd_digest = sealed.model_copy(
        update={"sweep": sealed.sweep.model_copy(update={"digest": "\u00e9" * 64})}
    )
    # A start without a time zone is read as UTC, not a 500 (it was compared with an end
    # that has one)
    assert result.sweep.finished_at is not None
    naive_start = (result.sweep.finished_at + timedelta(seconds=1)).replace(tzinfo=None)
    zoneless = result.model_copy(
        update={"sweep": result.sweep.model_copy(update={"started_at": naive_start})}
    )
    cases = [
        (_sealed(zoneless, "site-0"), 422, "the sweep finished before it started"),
        (_sealed(result, None), 401, "the result is not signed"),
        (odd_signature.model_dump_json().encode(), 401, "does not match the key of site"),
        (odd_digest.model_dump_json().encode(), 422, "does not match its digest"),
        (_sealed(result, "nowhere-site"), 401, "does not match the key of site 'site-0'"),
        (_sealed(elsewhere, "elsewhere"), 403, "site 'elsewhere' is not in the inventory"),
        (b'{"sweep": {"id": 1}', 422, "not a fleet sweep result"),
        (b"\xff\xfe not json", 422, "not UTF-8"),
        (b"x" * (9 * 1024 * 1024), 413, "larger than this central takes"),
    ]
    # Someone with no key learns nothing of the inventory: neither which sites it holds
    # nor their clients (an unsigned result naming a real site with a wrong client, or a
    # site that does not exist, is refused as unsigned)
    guessed = result.model_copy(
        update={"sites": [result.sites[0].model_copy(update={"client": "Guess"})]}
    )
    for probe in (guessed, elsewhere):
        cases.append((_sealed(probe, None), 401, "the result is not signed"))
    async with httpx.AsyncClient(base_url=central.url, timeout=30) as client:
        for body, status, reason in cases:
            answer = await client.post("/api/v1/results", content=body)
            assert answer.status_code == status, (status, answer.text)
            assert reason in answer.json()["reason"]
            assert "Client 0" not in answer.text

        # A body without a length is cut off as soon as it passes the limit
        async def endless() -> AsyncIterator[bytes]:
            for _ in range(1000):
                yield b"y" * 65536

        # (the central answers 413 and hangs up; a client still sending may see only the
        # hang-up, as HTTP/1.1 allows: either way nothing is stored and the central is fine)
        try:
            answer = await client.post("/api/v1/results", content=endless())
            assert answer.status_code == 413
        except httpx.TransportError:
            pass
        assert "413" in central.log.read_text().splitlines()[-1]
        assert (await client.get("/healthz")).status_code == 200

        # The right key stores it; a different result under the same sweep id is refused
        answer = await client.post("/api/v1/results", content=_sealed(result, "site-0"))
        assert answer.status_code == 201, answer.text
        site = result.sites[0]
        egress = site.egress.model_copy(update={"egress_ip": "127.0.0.99"})
        changed = result.model_copy(update={"sites": [site.model_copy(update={"egress": egress})]})
        answer = await client.post("/api/v1/results", content=_sealed(changed, "site-0"))
        assert answer.status_code == 422
        assert "another result with sweep id" in answer.json()["reason"]
        answer = await client.post("/api/v1/results", content=_sealed(other_id, "site-0"))
        assert answer.status_code == 201
    assert central.sweeps() == 2
    assert MASTER not in central.log.read_text()


async def test_central_down_the_agent_spools_and_the_next_run_delivers(
    inventory: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    server = CentralProcess(inventory, tmp_path / "central.db", tmp_path / "central.log")
    # Given the central is down tonight
    code, stdout, stderr = await agent_sweep(inventory, "site-0", server.url, spool)

    # Then the agent still reports and exits as usual, and says the result waits
    assert code == 0, stderr
    assert "site-0" in stdout
    assert "1 result(s) wait in the spool" in stderr
    [first] = spool.glob("*.json")

    # When the central is back, the next run delivers the spool first, oldest first (this
    # time the agent keeps a history of its own too: the pushed result is read back from it)
    await server.start()
    try:
        code, _, stderr = await agent_sweep(
            inventory, "site-0", server.url, spool, db=tmp_path / "site.db"
        )
        assert code == 0, stderr
        lines = [line for line in stderr.splitlines() if line.startswith("delivered")]
        assert len(lines) == 2
        assert lines[0].startswith(f"delivered {first.name} ")
        assert list(spool.iterdir()) == []
        assert server.sweeps() == 2

        # And `fleet push` with an empty spool has nothing to do
        run = await run_fleet_async("push", server.url, "--spool", str(spool))
        assert run.code == 0
        assert "nothing to deliver" in run.stderr

        # Nights spooled in any order are delivered oldest first (names sort by start time)
        last = await run_fleet_async("report", "--last", "--db", str(server.db), "--format", "json")
        stored = SweepResult.model_validate_json(last.stdout)
        nights = [f"202611{day:02d}T010000Z-0000{day:02d}" for day in (20, 21, 22, 23, 24)]
        for night in reversed(nights):
            result = stored.model_copy(
                update={"sweep": stored.sweep.model_copy(update={"id": night})}
            )
            (spool / f"{night}.json").write_bytes(_sealed(result, "site-0"))
        run = await run_fleet_async("push", server.url, "--spool", str(spool))
        assert run.code == 0, run.stderr
        delivered = [line.split()[1] for line in run.stderr.splitlines() if "delivered" in line]
        assert delivered == [f"{night}.json" for night in nights]
        assert server.sweeps() == 7
    finally:
        await server.stop()


class HoldingProxy:
    """A slow link: passes the first `forward_bytes` of each request on to the central,
    then holds the rest. Whoever hangs up, the other side is hung up on too."""

    def __init__(self, upstream_port: int, forward_bytes: int) -> None:
        self.upstream_port = upstream_port
        self.forward_bytes = forward_bytes
        self.forwarded = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def agent_to_central() -> None:
            while data := await reader.read(65536):
                room = max(0, self.forward_bytes - self.forwarded)
                if room:
                    up_writer.write(data[:room])
                    await up_writer.drain()
                    self.forwarded += min(room, len(data))

        async def central_to_agent() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(agent_to_central()), asyncio.create_task(central_to_agent())]
        # Whichever side hangs up first, both connections are closed
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for side in (up_writer, writer):
            side.close()
            with contextlib.suppress(ConnectionError):
                await side.wait_closed()


async def test_a_push_cut_off_mid_body_stores_nothing_and_is_retried(
    inventory: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    server = CentralProcess(inventory, tmp_path / "central.db", tmp_path / "central.log")
    await agent_sweep(inventory, "site-2", server.url, spool)  # central down: spooled
    [waiting] = spool.glob("*.json")
    size = waiting.stat().st_size
    await server.start()
    proxy = HoldingProxy(server.port, forward_bytes=size // 2)
    await proxy.start()
    try:
        # Given a push through a link that stalls half-way through the body
        agent = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleet",
            "push",
            f"http://127.0.0.1:{proxy.port}",
            "--spool",
            str(spool),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=fleet_env(FLEET_AGENT_KEY=key_of("site-2")),
        )
        await eventually(lambda: proxy.forwarded >= size // 2)
        # When the agent is killed mid-body
        agent.kill()
        await agent.wait()
        # Then the central stores nothing and says the agent went away
        await eventually(lambda: "went away mid-body" in server.log.read_text())
        assert server.sweeps() == 0
        assert waiting.exists()

        # Given another push stalled mid-body, when the central itself is killed
        proxy.forwarded = 0
        agent_run = asyncio.create_task(
            run_fleet_async(
                "push",
                f"http://127.0.0.1:{proxy.port}",
                "--spool",
                str(spool),
                env=fleet_env(FLEET_AGENT_KEY=key_of("site-2")),
            )
        )
        await eventually(lambda: proxy.forwarded >= size // 2)
        await server.stop(signal.SIGKILL)
        # Then the agent keeps the file and says so
        run = await agent_run
        assert run.code == 3, run.stderr
        assert "1 result(s) wait in the spool" in run.stderr
        assert waiting.exists()

        # And once the central is back, the retry stores it whole, once (`fleet push` sends
        # files sealed when they were swept: it needs no key, and does not warn about one)
        await server.start()
        run = await run_fleet_async("push", server.url, "--spool", str(spool))
        assert run.code == 0, run.stderr
        assert "(201 stored)" in run.stderr
        assert "FLEET_AGENT_KEY" not in run.stderr
        assert not waiting.exists()
        assert server.sweeps() == 1
        report = await run_fleet_async("report", "--last", "--db", str(server.db))
        assert "site-2" in report.stdout
    finally:
        await proxy.stop()
        await server.stop()


async def test_200_concurrent_pushes_all_land(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    from .test_reports import fixed_sweep

    many = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=200))
    base = fixed_sweep()
    template = base.sites[0]
    bodies = []
    for n in range(200):
        site = template.model_copy(update={"site": f"site-{n}", "client": f"Client {n % 2}"})
        info = base.sweep.model_copy(
            update={"id": f"20261129T010000Z-{n:06x}", "sites_planned": 1, "filters": []}
        )
        result = SweepResult(sweep=info, sites=[site], changes=[], previous_sweep=None)
        bodies.append(_sealed(result, f"site-{n}"))
    server = CentralProcess(many, tmp_path / "central.db", tmp_path / "central.log")
    await server.start()
    try:
        # When 200 agents push at the same moment
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            answers = await asyncio.gather(
                *(client.post("/api/v1/results", content=body) for body in bodies)
            )
        # Then every one is stored, once
        assert [a.status_code for a in answers] == [201] * 200, {a.text for a in answers}
        assert server.sweeps() == 200
        # And the page shows the latest result of every site
        async with httpx.AsyncClient(base_url=server.url) as client:
            page = await client.get("/")
        assert page.status_code == 200
        assert "site-199" in page.text
    finally:
        await server.stop()


async def test_plain_http_is_refused_except_to_loopback(inventory: Path, tmp_path: Path) -> None:
    for url in ("http://192.0.2.10:8025", "http://fleet.msp.example", "ftp://127.0.0.1"):
        run = await run_fleet_async("push", url, "--spool", str(tmp_path / "spool"))
        assert run.code == 3
        assert "fleet: --push" in run.stderr
    # Refused before anything is probed
    run = await run_fleet_async(
        "sweep", "-i", str(inventory), "--push", "http://192.0.2.10", "--spool", str(tmp_path)
    )
    assert run.code == 3
    assert "plain http:// is refused except to a loopback address" in run.stderr


async def test_the_central_serves_https_and_the_agent_verifies_it(
    inventory: Path, certs: object, tmp_path: Path
) -> None:
    from fleet.lab.certs import LabCertificates

    assert isinstance(certs, LabCertificates)
    issued = certs.ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "central.pem", tmp_path / "central.key"
    issued.cert_chain_pems[0].write_to_path(str(cert_file))
    issued.private_key_pem.write_to_path(str(key_file))
    server = CentralProcess(
        inventory,
        tmp_path / "central.db",
        tmp_path / "central.log",
        "--tls-cert",
        str(cert_file),
        "--tls-key",
        str(key_file),
    )
    server.url = f"https://127.0.0.1:{server.port}"
    spool = tmp_path / "spool"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(certs.ca_file))  # the readiness check trusts the CA
        await server.start()
    try:
        # An agent that does not trust the central's certificate keeps its result, and
        # exits 3: a TLS-inspecting firewall or a wrong certificate does not pass by itself
        code, _, stderr = await agent_sweep(inventory, "site-0", server.url, spool)
        assert code == 3, stderr
        assert "CERTIFICATE_VERIFY_FAILED" in stderr
        assert "certificate is not trusted here" in stderr
        assert server.sweeps() == 0
        # One that trusts the MSP's CA delivers
        run = await run_fleet_async(
            "push",
            server.url,
            "--spool",
            str(spool),
            env=fleet_env(SSL_CERT_FILE=str(certs.ca_file)),
        )
        assert run.code == 0, run.stderr
        assert server.sweeps() == 1
    finally:
        await server.stop()


async def test_a_central_answering_5xx_keeps_the_result_in_the_spool(
    inventory: Path, tmp_path: Path
) -> None:
    # Given a central (or its proxy) that answers 503 to everything
    async def unwell(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"status": "error", "reason": "maintenance"}'
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(unwell, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spool = tmp_path / "spool"
    try:
        code, _, stderr = await agent_sweep(inventory, "site-0", f"http://127.0.0.1:{port}", spool)
    finally:
        server.close()
        await server.wait_closed()
    # Then the agent reports as usual, says why, and keeps the result for the next run
    assert code == 0, stderr
    assert "answered 503: maintenance" in stderr
    assert "1 result(s) wait in the spool" in stderr
    assert len(list(spool.glob("*.json"))) == 1


async def test_serve_refuses_to_run_open_or_misconfigured(inventory: Path, tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    run = await run_fleet_async("serve", "-i", str(inventory), "--db", db)
    assert run.code == 3
    assert "fleet serve needs the agents' master key" in run.stderr
    central = fleet_env(FLEET_AGENT_MASTER_KEY=MASTER)
    for listen, words in (("8025", "expected HOST:PORT"), ("::1:8025", "in brackets")):
        run = await run_fleet_async(
            "serve", "-i", str(inventory), "--db", db, "--listen", listen, env=central
        )
        assert run.code == 3
        assert words in run.stderr
    run = await run_fleet_async(
        "serve", "-i", str(inventory), "--db", db, "--tls-cert", db, env=central
    )
    assert run.code == 3
    assert "give --tls-cert and --tls-key together" in run.stderr
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = await run_fleet_async(
        "serve", "-i", str(inventory), "--db", str(blocker / "c.db"), env=central
    )
    assert run.code == 3
    assert "cannot open the store" in run.stderr
    assert "Traceback" not in run.stderr


async def test_the_page_follows_the_store_whoever_writes_it(
    inventory: Path, central: CentralProcess, tmp_path: Path
) -> None:
    # Given the page before anything arrived: every site not swept yet
    async with httpx.AsyncClient(base_url=central.url) as client:
        page = await client.get("/")
    assert "not swept: site-0, site-1, site-2" in page.text
    # When a result reaches the store by `fleet ingest` rather than a push
    result_file = tmp_path / "site-2.json"
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--site",
        "site-2",
        "--no-store",
        "--format",
        "json",
        "-o",
        str(result_file),
        "-q",
        env=fleet_env(FLEET_AGENT_KEY=key_of("site-2")),
    )
    assert run.code == 0, run.stderr
    run = await run_fleet_async(
        "ingest",
        "-i",
        str(inventory),
        "--db",
        str(central.db),
        str(result_file),
        env=fleet_env(FLEET_AGENT_MASTER_KEY=MASTER),
    )
    assert run.code == 0, run.stderr
    # Then the page shows it too
    async with httpx.AsyncClient(base_url=central.url) as client:
        page = await client.get("/")
    assert "not swept: site-0, site-1." in page.text


async def test_a_body_that_stalls_is_dropped_and_stores_nothing(
    inventory: Path, tmp_path: Path
) -> None:
    import uvicorn

    from fleet.agent import SiteKeys
    from fleet.inventory import load_inventory
    from fleet.serve import Central

    # Given the central in this process, with a short body timeout
    db = tmp_path / "c.db"
    central = Central(
        load_inventory(str(inventory)),
        str(db),
        SiteKeys(MASTER.encode()),
        max_body_bytes=65536,
        body_timeout_s=0.5,
    )
    port = free_port()
    config = uvicorn.Config(central.app(), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        # When an agent sends its headers and the start of a body, then nothing more
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(
            b"POST /api/v1/results HTTP/1.1\r\nHost: central\r\nContent-Length: 5000\r\n"
            b'\r\n{"sweep": {'
        )
        await writer.drain()
        # Then the central answers 408 and hangs up, instead of holding a slot for ever
        answer = await asyncio.wait_for(reader.read(), 10)
        assert answer.startswith(b"HTTP/1.1 408"), answer
        writer.close()
        await writer.wait_closed()
    finally:
        server.should_exit = True
        await serving
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0] == 0


async def test_healthz_says_when_the_store_cannot_be_written(
    inventory: Path, central: CentralProcess
) -> None:
    # Given another process holds the store's write lock (as a stuck writer would)
    holder = sqlite3.connect(central.db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        async with httpx.AsyncClient(base_url=central.url, timeout=30) as client:
            health = await client.get("/healthz")
        # Then the central says it cannot store, and why, within its wait
        assert health.status_code == 503
        assert health.json()["status"] == "error"
        assert "database is locked" in health.json()["reason"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # And once the lock is gone it is healthy again
    async with httpx.AsyncClient(base_url=central.url) as client:
        assert (await client.get("/healthz")).status_code == 200


async def test_an_agent_pushes_over_ipv6_loopback(inventory: Path, tmp_path: Path) -> None:
    server = CentralProcess(inventory, tmp_path / "c.db", tmp_path / "c.log", host="::1")
    await server.start()
    try:
        code, _, stderr = await agent_sweep(inventory, "site-0", server.url, tmp_path / "spool")
        assert code == 0, stderr
        assert "(201 stored)" in stderr
        assert server.sweeps() == 1
        assert '::1 "POST /api/v1/results" 201' in server.log.read_text()
    finally:
        await server.stop()


async def test_a_dry_run_push_checks_the_url_and_creates_nothing(
    inventory: Path, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--dry-run",
        "--push",
        "https://central.example",
        "--spool",
        str(spool),
    )
    assert run.code == 0, run.stderr
    assert "then push the sealed result to https://central.example/api/v1/results" in run.stdout
    assert str(spool) in run.stdout
    assert not spool.exists()
    # A URL a real push refuses is refused by the dry run too
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--dry-run",
        "--push",
        "http://192.0.2.10",
        "--spool",
        str(spool),
    )
    assert run.code == 3
    assert "plain http:// is refused" in run.stderr
    assert not spool.exists()


def test_the_spool_drops_only_abandoned_half_written_files(tmp_path: Path) -> None:
    import os
    import time

    from fleet.push import STALE_WRITE_S, Spool

    folder = tmp_path / "spool"
    folder.mkdir()
    old_temp = folder / ".incoming-abc.tmp"
    fresh_temp = folder / ".incoming-def.tmp"
    old_result = folder / "20261129T010000Z-x.json"
    for path in (old_temp, fresh_temp, old_result):
        path.write_text("{}")
    long_ago = time.time() - STALE_WRITE_S - 60
    os.utime(old_temp, (long_ago, long_ago))
    os.utime(old_result, (long_ago, long_ago))
    spool = Spool(folder)
    assert not old_temp.exists()  # a killed agent's leftover
    assert fresh_temp.exists()  # perhaps being written right now by another run
    assert spool.pending() == [old_result]  # a sealed result is never dropped, however old
