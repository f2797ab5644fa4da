"""What an agent and its central may take on trust, and what not (review E): the real
`fleet serve` and real agents on loopback, and plain servers that answer as a catch-all web
site, a TLS-inspecting firewall or a dying link would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from fleet.lab.dns import LabDns
from fleet.results import SweepResult

from .conftest import M365Lab, eventually, fleet_env, free_port, publish_spf, run_fleet_async
from .test_history import ZONE, history_inventory
from .test_serve import (  # noqa: F401 - the fixtures
    CentralProcess,
    _sealed,
    agent_sweep,
    central,
    inventory,
    key_of,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def plain_server(handler: Handler) -> AsyncIterator[str]:
    """A bare TCP server on loopback answering with `handler`; yields its http:// URL. Its
    handlers still running at the end are cancelled and their connections closed."""
    running: set[asyncio.Task[None]] = set()

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        running.add(task)
        try:
            await handler(reader, writer)
        finally:
            running.discard(task)
            writer.close()

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(running):
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


async def spooled_result(inventory: Path, spool: Path, site: str = "site-0") -> Path:  # noqa: F811
    """A real sealed result waiting in `spool` (its central was down)."""
    down = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = await agent_sweep(inventory, site, down, spool)
    assert code == 0, stderr
    [waiting] = waiting_in(spool)
    return waiting


def waiting_in(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.json"))


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: *(\d+)", head)
    if length:
        await reader.readexactly(int(length.group(1)))
    return head


# ---- 3: only the central's own receipt removes a spooled result ---------------------------


async def test_a_2xx_that_is_not_the_centrals_receipt_keeps_the_result(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    waiting = await spooled_result(inventory, spool)

    # Given a mistyped path behind a reverse proxy, landing on a catch-all web site
    async def welcome(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        page = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(page), page)
        )
        await writer.drain()
        writer.close()

    async with plain_server(welcome) as url:
        run = await run_fleet_async("push", f"{url}/html200", "--spool", str(spool))
    # Then the result stays in the spool, and the agent says the answer was no receipt
    assert run.code == 3, run.stderr
    assert waiting.exists()
    assert "delivered" not in run.stderr
    assert "not the central's receipt" in run.stderr
    assert f"it stays in {spool}" in run.stderr


async def test_a_receipt_for_another_sweep_keeps_the_result(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    waiting = await spooled_result(inventory, spool)

    async def other(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"status": "stored", "sweep": "20261101T000000Z-abcdef"}'
        writer.write(
            b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
            b"Connection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async with plain_server(other) as url:
        run = await run_fleet_async("push", url, "--spool", str(spool))
    assert run.code == 3, run.stderr
    assert waiting.exists()


# ---- 1: the page dates each site by its own result, and says when it is old --------------


async def test_the_page_shows_an_old_result_with_its_own_date_as_stale(
    inventory: Path,  # noqa: F811
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given site-1's agent stopped pushing 23 days ago: its last result is that old
    path = tmp_path / "site-1.json"
    run = await run_fleet_async(
        "sweep", "-i", str(inventory), "--site", "site-1", "--no-store",
        "--format", "json", "--output", str(path), "-q",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    fresh = SweepResult.model_validate_json(path.read_text(encoding="utf-8"))
    back = timedelta(days=23)
    old_start = fresh.sweep.started_at - back
    old_id = old_start.strftime("%Y%m%dT%H%M%SZ") + "-0ld0ld"
    old = fresh.model_copy(
        update={
            "sweep": fresh.sweep.model_copy(
                update={
                    "id": old_id,
                    "started_at": old_start,
                    "finished_at": (fresh.sweep.finished_at or fresh.sweep.started_at) - back,
                }
            ),
            "sites": [
                site.model_copy(
                    update={
                        "started_at": site.started_at - back,
                        "finished_at": site.finished_at - back,
                    }
                )
                for site in fresh.sites
            ],
        }
    )
    async with httpx.AsyncClient(base_url=central.url) as client:
        answer = await client.post("/api/v1/results", content=_sealed(old, "site-1"))
        assert answer.status_code == 201, answer.text
        page = (await client.get("/")).text
    # Then the page dates it by its own time, never by the moment the page was drawn,
    # and says it is stale
    site_start = old.sites[0].started_at.strftime("%Y-%m-%d %H:%M UTC")
    assert f"{site_start}, sweep latest" in page  # its trend's newest mark
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert f"{now}, sweep" not in page
    assert "no result for over 48 h from site-1" in page
    assert "incomplete" in page


# ---- 2: a certificate the agent cannot trust, or a spool waiting for days, is exit 3 -----


async def test_a_spool_waiting_for_days_raises_the_exit_code(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    waiting = await spooled_result(inventory, spool)
    # Given the result has waited three days for a central that cannot be reached
    three_days_ago = time.time() - 3 * 86400
    os.utime(waiting, (three_days_ago, three_days_ago))
    down = f"http://127.0.0.1:{free_port()}"
    # When tonight's sweep finds the site fine and the central still down
    code, _, stderr = await agent_sweep(inventory, "site-0", down, spool)
    # Then it exits 3 (the RMM shows it), saying how long the oldest has waited
    assert code == 3, stderr
    assert "the oldest has waited 72 h" in stderr
    assert len(list(spool.glob("*.json"))) == 2


# ---- 4: an interrupted sweep that swept nothing pushes nothing ----------------------------


async def test_a_sweep_stopped_before_any_site_spools_and_pushes_nothing(
    lab_dns: LabDns,
    m365: M365Lab,
    write_inventory: Callable[..., Path],
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given an MX that accepts connections and never says a word
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    silent_mx = await asyncio.start_server(silent, "127.0.0.1", 0)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    text = history_inventory(lab_dns, silent_mx.sockets[0].getsockname()[1], m365.ca_file, sites=1)
    swept_inventory = write_inventory(text)
    spool = tmp_path / "spool"
    try:
        sweep = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleet", "sweep", "-i", str(swept_inventory), "--no-store",
            "-q", "--push", central.url, "--spool", str(spool),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=fleet_env(FLEET_AGENT_KEY=key_of("site-0")),
        )  # fmt: skip
        await asyncio.sleep(1.5)  # under way, talking to the silent MX
        # When it is stopped twice (Ctrl-C, Ctrl-C) before any site finished
        sweep.send_signal(signal.SIGINT)
        await asyncio.sleep(0.3)
        if sweep.returncode is None:
            sweep.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(sweep.communicate(), 30)
    finally:
        silent_mx.close()
    stderr = err.decode()
    # Then nothing is spooled or pushed, and it says so
    assert "nothing swept, nothing pushed" in stderr
    assert list(spool.glob("*.json")) == []
    assert "refused" not in stderr
    assert central.sweeps() == 0


# ---- the endpoint's own URL, as README's table names it ----------------------------------


async def test_the_endpoint_url_is_taken_for_the_base_url(
    inventory: Path,  # noqa: F811
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    await spooled_result(inventory, spool)
    run = await run_fleet_async("push", f"{central.url}/api/v1/results", "--spool", str(spool))
    assert run.code == 0, run.stderr
    assert list(spool.glob("*.json")) == []
    assert central.sweeps() == 1


# ---- 8, 9: the agent's side of a slow or huge answer -------------------------------------


async def test_the_agent_gives_up_on_an_answer_that_trickles(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from fleet.push import Spool, deliver, results_url

    spool = tmp_path / "spool"
    waiting = await spooled_result(inventory, spool)

    # Given a server that answers one byte at a time, never long enough apart for a read
    # timeout
    async def trickle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        with contextlib.suppress(ConnectionError):
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b" " * 100000:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(0.2)

    async with plain_server(trickle) as url:
        started = time.monotonic()
        outcome = await asyncio.to_thread(
            deliver, Spool(spool), results_url(url), timeout_s=1.0, deadline_s=2.0
        )
        took = time.monotonic() - started
    # Then the push ends at its deadline, the central counted as unreachable this time
    assert took < 10
    assert outcome.unreachable is not None
    assert "did not answer within 2 s" in outcome.unreachable
    assert waiting.exists()


async def test_the_agent_reads_only_the_start_of_a_huge_answer(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    waiting = await spooled_result(inventory, spool)
    sent = 0

    # Given a 422 whose body is 2 GB
    async def huge(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(
            b"HTTP/1.1 422 Unprocessable\r\nContent-Type: application/json\r\n"
            b"Content-Length: 2000000000\r\n\r\n"
        )
        chunk = b"x" * 65536
        with contextlib.suppress(ConnectionError):
            while sent < 2_000_000_000:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)

    async with plain_server(huge) as url:
        run = await run_fleet_async("push", url, "--spool", str(spool))
    # Then the agent reads the start, calls it a refusal, and hangs up
    assert run.code == 3, run.stderr
    assert "refused" in run.stderr
    assert waiting.exists()
    assert sent < 64 * 1024 * 1024


async def test_408_is_temporary_like_429(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    await spooled_result(inventory, spool)

    async def timed_out(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        body = b'{"status": "refused", "reason": "the body did not arrive in time"}'
        writer.write(
            b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    async with plain_server(timed_out) as url:
        code, _, stderr = await agent_sweep(inventory, "site-0", url, spool)
    # Then the next run tries again: no refusal, the site's own exit code
    assert code == 0, stderr
    assert "answered 408: the body did not arrive in time" in stderr
    assert "refused" not in stderr


# ---- 6: nobody can write lines of their own into the access log --------------------------


async def test_a_request_cannot_forge_lines_in_the_access_log(
    central: CentralProcess,  # noqa: F811
) -> None:
    forged = "2026-11-30 00:18:00,000 INFO fleet.access: 203.0.113.9"
    target = (
        "/x%0A" + forged.replace(" ", "%20")
        + '%20%22POST%20/api/v1/results%22%20201%20stored%20sweep%20forged%1B%5B2J'
    )  # fmt: skip

    async def send(request: bytes) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", central.port)
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        return answer

    # Given a path with an encoded line break and terminal escape
    await send(f"GET {target} HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n".encode())
    # and a peer address made up in X-Forwarded-For (uvicorn trusts it from 127.0.0.1)
    made_up = '198.51.100.7 "GET /healthz" 200 0B 1ms'
    await send(
        f"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Forwarded-For: {made_up}\r\n"
        "Connection: close\r\n\r\n".encode()
    )
    await send(
        b"GET /healthz HTTP/1.1\r\nHost: c\r\nX-Forwarded-For: 192.0.2.44\r\n"
        b"Connection: close\r\n\r\n"
    )
    # and bodies whose refusal's reason quotes what they hold
    async with httpx.AsyncClient(base_url=central.url) as client:
        for body in (
            {"sweep": {"id": f"x\n{forged}\x1b[2J"}, "sites": []},
            {"sweep": f"\n{forged}", "sites": [{"site": f"\n{forged}"}]},
            [f"\n{forged}"],
        ):
            answer = await client.post("/api/v1/results", json=body)
            assert answer.status_code == 422, answer.text
    log = central.log.read_text(encoding="utf-8", errors="replace")
    lines = log.splitlines()
    # Then each request is one line of its own, the path re-quoted, no escape byte; a peer
    # that is not an IP address is logged as "-"
    assert not any(line.startswith(forged) for line in lines), log
    assert "\x1b" not in log
    assert "%0A2026-11-30" in log
    assert made_up not in log
    assert '- "GET /healthz" 200' in log
    assert '192.0.2.44 "GET /healthz" 200' in log


# ---- 5: the central reads its inventory again when the file changes ----------------------


async def test_serve_reads_its_inventory_again_when_it_changes(
    lab_dns: LabDns,
    m365: M365Lab,
    write_inventory: Callable[..., Path],
    inventory: Path,  # noqa: F811
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    # Given the MSP adds site-3 to the inventory while the central runs
    grown = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=4))
    assert grown == inventory
    # When site-3's agent pushes its first result
    code, _, stderr = await agent_sweep(inventory, "site-3", central.url, spool)
    # Then the central knows the site: no restart needed
    assert code == 0, stderr
    assert "(201 stored)" in stderr
    # And an inventory broken by the next edit keeps the one the central has, saying why
    write_inventory("clients: [not, an, inventory\n")
    async with httpx.AsyncClient(base_url=central.url) as client:
        page = (await client.get("/")).text
    assert "site-3" in page
    assert "not swept: site-0, site-1, site-2" in page
    log = central.log.read_text(encoding="utf-8")
    assert "keeps the inventory it has" in log
    assert "read the inventory again: 4 site(s)" in log


# ---- 8: a slow but steady body is taken; only one that stalls is dropped ------------------


@contextlib.asynccontextmanager
async def central_in_process(inventory: Path, db: Path, **options: float) -> AsyncIterator[int]:  # noqa: F811
    """The central in this process (to give it short timeouts) on a loopback port."""
    import uvicorn

    from fleet.agent import SiteKeys
    from fleet.inventory import load_inventory
    from fleet.serve import Central

    from .test_serve import MASTER

    app = Central(
        load_inventory(str(inventory)),
        str(db),
        SiteKeys(MASTER.encode()),
        max_body_bytes=65536,
        **options,
    ).app()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    await eventually(lambda: server.started)
    try:
        yield port
    finally:
        server.should_exit = True
        await serving


async def test_a_slow_but_steady_body_is_read_to_its_end(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given a central that drops a body stalling for 0.5 s
    async with central_in_process(inventory, tmp_path / "c.db", body_timeout_s=0.5) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = b'{"not": "a result"}' + b" " * 2000
        writer.write(
            b"POST /api/v1/results HTTP/1.1\r\nHost: central\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        # When the body arrives slowly (2 s in all) but never pauses for 0.5 s
        for start in range(0, len(body), 200):
            writer.write(body[start : start + 200])
            await writer.drain()
            await asyncio.sleep(0.2)
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    # Then it is read whole and judged (not a result: 422), not dropped as timed out (408)
    assert answer.startswith(b"HTTP/1.1 422"), answer


# ---- 7: connections that send nothing cannot keep the agents out --------------------------


async def test_stalled_anonymous_bodies_do_not_keep_an_agent_out(
    inventory: Path,  # noqa: F811
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given 48 connections, none with a site's key, each sending a POST's headers and one
    # byte of its body, then nothing (more than the central reads at once)
    holders = []
    for _ in range(48):
        reader, writer = await asyncio.open_connection("127.0.0.1", central.port)
        writer.write(
            b"POST /api/v1/results HTTP/1.1\r\nHost: central\r\nContent-Length: 5000\r\n\r\n{"
        )
        await writer.drain()
        holders.append((reader, writer))
    try:
        # When an agent pushes its result
        started = time.monotonic()
        code, _, stderr = await agent_sweep(inventory, "site-0", central.url, tmp_path / "s")
        took = time.monotonic() - started
    finally:
        for _, writer in holders:
            writer.close()
    # Then it is stored at once: its key gets it a place the others cannot hold
    assert code == 0, stderr
    assert "(201 stored)" in stderr
    assert took < 30
    assert central.sweeps() == 1


def test_the_push_header_proves_the_sites_key_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleet.agent import PUSH_HEADER, SiteKeys, push_headers

    from .test_serve import MASTER

    keys = SiteKeys(MASTER.encode())
    now = time.time()
    monkeypatch.delenv("FLEET_AGENT_KEY", raising=False)
    assert push_headers("site-0", now) == {}
    monkeypatch.setenv("FLEET_AGENT_KEY", key_of("site-0") + "\n")
    header = push_headers("site-0", now)[PUSH_HEADER]
    assert key_of("site-0") not in header
    assert keys.vouches(header, now)
    assert keys.vouches(header, now + 600)
    assert not keys.vouches(header, now + 3600)  # an old header is not reused
    assert not keys.vouches(header.replace("site-0", "site-1", 1), now)
    assert not keys.vouches(push_headers("site-1", now)[PUSH_HEADER], now)  # site-0's key
    for junk in ("", "site-0", "site-0 x y", "a b c d", "é 1 é"):
        assert not keys.vouches(junk, now)
    assert not SiteKeys(None).vouches(header, now)


async def test_a_refused_result_is_sent_and_reported_once_a_run(
    inventory: Path,  # noqa: F811
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    # Given a result in the spool the central refuses (signed with another site's key)
    refused = await spooled_result(inventory, spool, site="site-1")
    wrong = refused.with_name("20200101T000000Z-aaaaaa.json")
    document = SweepResult.model_validate_json(refused.read_bytes())
    wrong.write_bytes(_sealed(document, "site-2"))
    refused.unlink()
    # When tonight's sweep delivers the spool before it sweeps, and its own result after
    code, _, stderr = await agent_sweep(inventory, "site-0", central.url, spool)
    # Then the refusal is reported once, the new result delivered, and the run exits 3
    assert code == 3, stderr
    assert stderr.count("the central refused 20200101T000000Z-aaaaaa.json") == 1, stderr
    assert "(201 stored)" in stderr
    assert waiting_in(spool) == [wrong]


async def test_ctrl_c_ends_a_push_at_once_and_keeps_the_result(
    inventory: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    waiting = await spooled_result(inventory, spool)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(3600)  # never answers

    async with plain_server(silent) as url:
        push = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleet", "push", url, "--spool", str(spool),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, env=fleet_env(),
        )  # fmt: skip
        await asyncio.sleep(2)
        push.send_signal(signal.SIGINT)
        await asyncio.wait_for(push.wait(), 10)
    assert push.returncode != 0
    assert waiting.exists()


async def test_a_spooled_file_that_is_no_result_is_refused_not_fatal(
    central: CentralProcess,  # noqa: F811
    tmp_path: Path,
) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    for name, content in (
        ("20200101T000000Z-a", b"[1]"),
        ("20200101T000000Z-b", b'{"sites": [1]}'),
    ):
        (spool / f"{name}.json").write_bytes(content)
    run = await run_fleet_async("push", central.url, "--spool", str(spool))
    assert run.code == 3, run.stderr
    assert run.stderr.count("the central refused") == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert len(waiting_in(spool)) == 2
