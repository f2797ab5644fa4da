"""What ingesting pushed results costs the central: N site results stored the way `fleet
serve` stores them, through its HTTP endpoint on loopback and through the store call alone.

    python -m bench.ingest [--sites 1000,10000] [--concurrency 50] [--no-http] [--no-store]

`store` (in this process, a fresh store each): `Store.save` of N one-site results, one call
each, after the `has` check, as `fleet serve`'s writer thread makes them (an agent pushes
its own site: one site a push); the same N results saved inside one outer transaction (the
floor that grouping pushes into one commit could reach); and one result of N sites, one
call (a multi-site file given to `fleet ingest`). CPU (process time) and wall, per site.

`http`: `fleet serve` in a child process with an N-site inventory and a master key; N
signed one-site pushes with C in flight, each on its own connection as separate agents.
The central's CPU is read from /proc/PID/stat over the pushes only (its start-up left out).
`--count-commits` also counts the transactions the pushes were committed in, from the
store's write-ahead log (a reader held open keeps every commit in it: the checkpoints do
not run, so that run's CPU is not the figure to quote).

The results are real: the offline demo lab is swept once (five sites, every transcript),
and each of the N sites gets one of them under its own id (bench/serve.py's builders).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from bench.serve import (
    bodies,
    demo_sites,
    one_site_results,
    push_all,
    start_central,
)
from bench.serve import wait_healthy as _wait_healthy
from fleet import __version__
from fleet.results import SiteResult, SweepInfo, SweepResult
from fleet.store import Store

TICKS = os.sysconf("SC_CLK_TCK")


def many_site_result(templates: list[SiteResult], sites: int) -> SweepResult:
    """One result of N sites (a whole sweep's file, ingested at once)."""
    now = datetime.now(UTC)
    info = SweepInfo(
        id=f"{now:%Y%m%dT%H%M%SZ}-whole",
        started_at=now,
        finished_at=now,
        complete=True,
        tool_version=__version__,
        sites_planned=sites,
    )
    rows = [
        templates[n % len(templates)].model_copy(
            update={"site": f"site-{n}", "client": f"Client {n // 10}"}
        )
        for n in range(sites)
    ]
    return SweepResult(sweep=info, sites=rows, changes=[], previous_sweep=None)


def timed(action: Callable[[], object]) -> tuple[float, float]:
    """(CPU s, wall s) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    action()
    return time.process_time() - cpu, time.perf_counter() - wall


def store_scenarios(templates: list[SiteResult], sites: int, folder: Path) -> None:
    pushes = one_site_results(templates, sites)
    whole = many_site_result(templates, sites)

    def each(store: Store) -> None:
        for result in pushes:
            if not store.has(result.sweep.id):
                store.save(result)

    def grouped(store: Store) -> None:
        group = getattr(store, "group", None) or store._transaction  # before group() was
        with group():
            each(store)

    def at_once(store: Store) -> None:
        store.save(whole)

    print(f"store: {sites:,} sites (Store.save, in this process)")
    for name, action in (
        ("one push a call, one site each", each),
        ("the same pushes in one outer transaction", grouped),
        ("one result of all the sites, one call", at_once),
    ):
        path = folder / f"store-{sites}-{action.__name__}.db"
        store = Store(str(path))
        try:
            cpu, wall = timed(lambda s=store, a=action: a(s))  # type: ignore[misc]
            stored = store.db.execute("SELECT COUNT(*) FROM site_results").fetchone()[0]
        finally:
            store.close()
        assert stored == sites, (name, stored)
        print(
            f"  {name:<42} CPU {cpu:6.2f} s ({cpu / sites * 1e6:5.0f} us a site), "
            f"wall {wall:6.2f} s ({wall / sites * 1e6:5.0f} us a site)"
        )


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def wal_commits(db: Path) -> int:
    """Transactions committed in the store's write-ahead log as it stands: frames whose
    header gives the database's size after a commit, of the log's current generation."""
    data = db.with_name(db.name + "-wal").read_bytes()
    if len(data) < 32:
        return 0
    page_size = int.from_bytes(data[8:12], "big")
    salts = data[16:24]
    commits, offset = 0, 32
    while offset + 24 + page_size <= len(data):
        frame = data[offset : offset + 24]
        if frame[8:16] != salts:  # a frame left from an earlier generation of the log
            break
        commits += int.from_bytes(frame[4:8], "big") != 0
        offset += 24 + page_size
    return commits


def http_scenario(
    templates: list[SiteResult],
    sites: int,
    concurrency: int,
    folder: Path,
    *,
    count_commits: bool = False,
) -> None:
    payloads = bodies(templates, sites)
    process, url, db = start_central(folder, sites, f"central-{sites}")
    reader = sqlite3.connect(db, isolation_level=None)
    try:
        _wait_healthy(url, process)
        if count_commits:  # a read snapshot: the WAL is never reset, every commit stays in it
            reader.execute("BEGIN")
            reader.execute("SELECT COUNT(*) FROM sweeps").fetchone()
            commits = wal_commits(db)
        central_cpu = _cpu_s(process.pid)
        started, own_cpu = time.perf_counter(), time.process_time()
        latencies = asyncio.run(push_all(f"{url}/api/v1/results", payloads, concurrency))
        wall, own_cpu = time.perf_counter() - started, time.process_time() - own_cpu
        central_cpu = _cpu_s(process.pid) - central_cpu
        if count_commits:
            commits = wal_commits(db) - commits
            reader.execute("ROLLBACK")
    finally:
        reader.close()
        process.terminate()
        process.wait()
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT COUNT(*) FROM sweeps").fetchone()[0]
    latencies.sort()
    print(f"http: {sites:,} one-site pushes to `fleet serve`, {concurrency} in flight, loopback")
    print(f"  stored {stored:,} of {sites:,}")
    print(
        f"  central CPU over the pushes {central_cpu:6.2f} s ({central_cpu / sites * 1e3:.2f} ms "
        f"a push); wall {wall:6.2f} s ({sites / wall:.0f} pushes/s); "
        f"latency p50 {latencies[len(latencies) // 2] * 1e3:.0f} ms, "
        f"p99 {latencies[int(len(latencies) * 0.99)] * 1e3:.0f} ms"
    )
    print(f"  load generator CPU (httpx, this process) {own_cpu:.2f} s")
    if count_commits:
        print(f"  commits of the pushes (the WAL's commit frames): {commits:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", default="1000,10000", help="comma-separated N")
    parser.add_argument("--concurrency", type=int, default=50, help="pushes in flight (http)")
    parser.add_argument("--no-http", action="store_true", help="skip the fleet serve scenario")
    parser.add_argument("--no-store", action="store_true", help="skip the store-alone scenario")
    parser.add_argument(
        "--count-commits",
        action="store_true",
        help="count the central's commits (holds a reader open: no checkpoint, so not for CPU)",
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.sites.split(",")]
    logging.getLogger("mail.log").setLevel(logging.ERROR)  # the demo lab's own chatter
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the start")
    with tempfile.TemporaryDirectory(prefix="fleet-bench-ingest-") as temp:
        folder = Path(temp)
        templates = asyncio.run(demo_sites(folder / "demo"))
        for sites in sizes:
            if not args.no_store:
                store_scenarios(templates, sites, folder)
            if not args.no_http:
                http_scenario(
                    templates, sites, args.concurrency, folder, count_commits=args.count_commits
                )
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
