"""How many agent pushes `fleet serve` takes per second on this machine, and its memory.

The central runs as `fleet serve` in a child process (its CPU time and peak RSS from
wait4). The results pushed are real: one sweep of the offline demo lab (five sites, every
transcript) gives the templates, and each of N inventory sites gets one of them under its
own id, sealed and signed with its own derived key, as its agent would send it. The load
generator (this process, httpx) keeps C pushes in flight, each on its own connection as
separate agents would, and shares the machine's cores with the central.

    .venv/bin/python -m bench.serve --results 2000 --concurrency 200
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import logging
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from fleet import __version__
from fleet.agent import derive_site_key, seal_info
from fleet.inventory import load_inventory
from fleet.lab.demo import DemoLab
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.results import SiteResult, SweepInfo, SweepResult
from fleet.runner import SweepOptions

MASTER = "bench-master-key-not-a-secret-0123456789"


async def demo_sites(folder: Path) -> list[SiteResult]:
    """The demo lab's five sites, swept for real (with their transcripts)."""
    lab = DemoLab(folder)
    inventory_path = await lab.start()
    try:
        plan = plan_sweep(load_inventory(str(inventory_path)))
        result = await run_sweep(plan, SweepOptions(inventory_path=str(inventory_path)))
    finally:
        await lab.stop()
    return list(result.sites)


def central_inventory(sites: int) -> str:
    rows = [
        f"""\
  - id: site-{n}
    client: Client {n // 10}
    devices:
      - id: mfp
        smtp: {{host: 127.0.0.1, port: 25, mode: direct_send,
                from: scanner@contoso.test, to: frontdesk@contoso.test}}
"""
        for n in range(sites)
    ]
    return "sites:\n" + "".join(rows)


def one_site_results(templates: list[SiteResult], sites: int) -> list[SweepResult]:
    """N one-site results, as N agents push them (distinct sweep ids, one site each)."""
    now = datetime.now(UTC)
    out = []
    for n in range(sites):
        site = templates[n % len(templates)].model_copy(
            update={"site": f"site-{n}", "client": f"Client {n // 10}"}
        )
        info = SweepInfo(
            id=f"{now:%Y%m%dT%H%M%SZ}-{n:06x}",
            started_at=now + timedelta(microseconds=n),
            finished_at=now + timedelta(microseconds=n),
            complete=True,
            tool_version=__version__,
            sites_planned=1,
        )
        out.append(SweepResult(sweep=info, sites=[site], changes=[], previous_sweep=None))
    return out


def bodies(templates: list[SiteResult], sites: int) -> list[bytes]:
    """One signed result per site, as each site's agent would push it."""
    out = []
    for n, result in enumerate(one_site_results(templates, sites)):
        info = seal_info(result.sweep, result.sites)
        assert info.digest is not None
        key = derive_site_key(MASTER.encode(), f"site-{n}").encode()
        signature = hmac.new(key, info.digest.encode(), hashlib.sha256).hexdigest()
        sweep = info.model_copy(update={"signature": signature})
        out.append(result.model_copy(update={"sweep": sweep}).model_dump_json(indent=2).encode())
    return out


async def push_all(url: str, payloads: list[bytes], concurrency: int) -> list[float]:
    """Push every payload with `concurrency` in flight; each push's latency in seconds."""
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:

        async def one(body: bytes) -> None:
            async with gate:
                started = time.perf_counter()
                answer = await client.post(url, content=body)
                latencies.append(time.perf_counter() - started)
                if answer.status_code != 201:
                    raise RuntimeError(f"push answered {answer.status_code}: {answer.text}")

        await asyncio.gather(*(one(body) for body in payloads))
    return latencies


def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if process.poll() is not None:
            raise RuntimeError("fleet serve exited")
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("fleet serve did not come up")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=int, default=2000, help="pushes (one site each)")
    parser.add_argument("--concurrency", type=int, default=200, help="pushes in flight")
    args = parser.parse_args()
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # the demo lab's own chatter
    with tempfile.TemporaryDirectory(prefix="fleet-bench-serve-") as temp:
        folder = Path(temp)
        templates = asyncio.run(demo_sites(folder / "demo"))
        payloads = bodies(templates, args.results)
        process, url, db = start_central(folder, args.results, "central")
        try:
            wait_healthy(url, process)
            idle_rss = _rss_mb(process.pid)
            started, own_cpu = time.perf_counter(), time.process_time()
            latencies = asyncio.run(push_all(f"{url}/api/v1/results", payloads, args.concurrency))
            wall, own_cpu = time.perf_counter() - started, time.process_time() - own_cpu
        finally:
            process.terminate()
            _, _, usage = os.wait4(process.pid, 0)
        with sqlite3.connect(db) as connection:
            stored = connection.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0]
        sizes = [len(body) for body in payloads]
        latencies.sort()
        print(f"fleet serve: {args.results} pushes, {args.concurrency} in flight, loopback")
        print(
            f"  machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end"
        )
        print(
            f"  body size: mean {statistics.mean(sizes) / 1024:.1f} KiB, max {max(sizes) / 1024:.1f} KiB"
        )
        print(f"  stored: {stored} of {args.results}")
        print(f"  wall: {wall:.2f} s -> {args.results / wall:.0f} pushes/s")
        print(
            f"  latency: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
            f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms"
        )
        cpu = usage.ru_utime + usage.ru_stime
        print(
            f"  central CPU (whole run, start-up included): {cpu:.2f} s, "
            f"{cpu / args.results * 1000:.2f} ms per push"
        )
        print(f"  load generator CPU (httpx, this process): {own_cpu:.2f} s")
        print(f"  central memory: {idle_rss:.0f} MB RSS idle, peak {usage.ru_maxrss / 1024:.0f} MB")


def start_central(folder: Path, sites: int, name: str) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`fleet serve` for N sites' agents on a free loopback port (its inventory, store and
    log in `folder`, named `name`): the process, its URL and its store."""
    inventory = folder / f"{name}.yaml"
    inventory.write_text(central_inventory(sites), encoding="utf-8")
    db = folder / f"{name}.db"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["FLEET_AGENT_MASTER_KEY"] = MASTER
    argv = [sys.executable, "-m", "fleet", "serve", "-i", str(inventory), "--db", str(db)]
    process = subprocess.Popen(
        [*argv, "--listen", f"127.0.0.1:{port}"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=(folder / f"{name}.log").open("wb"),
    )
    return process, f"http://127.0.0.1:{port}", db


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


if __name__ == "__main__":
    main()
