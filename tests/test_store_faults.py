"""The store under stress (issue 17, items 9-12): a prune during a sweep, a disk that fills
up mid-sweep (RLIMIT_FSIZE on the child), a sweep killed with SIGKILL, and a damaged
database file. Each through the real command line, in a child process."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Tenant, m365_mx

from .conftest import eventually, fleet_env, publish_spf, run_fleet_async
from .test_history import ONE_AT_A_TIME, ZONE, history_inventory


@pytest.fixture
async def slow_mx(certs: LabCertificates) -> AsyncIterator[LabSmtpServer]:
    """An MX that waits before every reply: a sweep of a few sites one at a time lasts."""
    server = m365_mx(
        Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.15
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def slow_inventory(
    lab_dns: LabDns,
    mx: LabSmtpServer,
    certs: LabCertificates,
    write: Callable[..., Path],
    sites: int,
) -> Path:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    text = history_inventory(
        lab_dns, mx.port, str(certs.ca_file), sites=sites, concurrency=ONE_AT_A_TIME
    )
    return write(text)


def count(db: Path, query: str) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return int(connection.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


async def start_fleet(*args: str, **popen: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleet",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=fleet_env(PYTHONDONTWRITEBYTECODE="1"),
        **popen,  # type: ignore[arg-type]
    )


@pytest.mark.slow
async def test_prune_during_a_sweep_waits_its_turn_and_the_sweep_is_kept(
    lab_dns: LabDns,
    certs: LabCertificates,
    slow_mx: LabSmtpServer,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    inventory = slow_inventory(lab_dns, slow_mx, certs, write_inventory, sites=3)
    db = tmp_path / "fleet.db"
    out = tmp_path / "out.csv"
    # Given a sweep under way
    sweep = await start_fleet(
        "sweep", "-i", str(inventory), "--db", str(db), "-q", "--format", "csv", "-o", str(out)
    )
    await eventually(lambda: db.exists() and count(db, "SELECT COUNT(*) FROM sweeps") == 1)
    # When prune --keep-days 0 runs in the middle of it
    prune = await run_fleet_async("prune", "--keep-days", "0", "--db", str(db))
    _, err = await sweep.communicate()
    # Then prune was refused, saying why, and the sweep went on to the end and is kept
    assert prune.code == 3, prune.stderr
    assert "another sweep is already using the store" in prune.stderr
    assert sweep.returncode == 0, err.decode()
    assert count(db, "SELECT COUNT(*) FROM sweeps WHERE complete = 1") == 1
    assert count(db, "SELECT COUNT(*) FROM site_results") == 3
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert len(rows) == 3
    # ... and once the sweep is over, prune does its work
    again = await run_fleet_async("prune", "--keep-days", "0", "--db", str(db))
    assert again.code == 0, again.stderr
    assert "removed 1 sweep" in again.stdout


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE is POSIX")
async def test_a_store_that_fills_up_mid_sweep_does_not_stop_the_sweep(
    lab_dns: LabDns,
    certs: LabCertificates,
    m365: object,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    import resource

    from .conftest import M365Lab

    assert isinstance(m365, M365Lab)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    sites = 8
    text = history_inventory(
        lab_dns, m365.mx.port, m365.ca_file, sites=sites, concurrency=ONE_AT_A_TIME
    )
    inventory = write_inventory(text)
    db = tmp_path / "store" / "fleet.db"
    out = tmp_path / "out.csv"
    # No file of the child may grow past this: the store's WAL soon does (96 KiB before the
    # group commits, which write fewer WAL pages than a transaction a site: 8 sites fit it)
    limit = 64 * 1024

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    # When a sweep runs on a disk that fills up part-way
    sweep = await start_fleet(
        "sweep",
        "-i",
        str(inventory),
        "--db",
        str(db),
        "-q",
        "--format",
        "csv",
        "-o",
        str(out),
        preexec_fn=small_disk,
    )
    _, err_bytes = await asyncio.wait_for(sweep.communicate(), 120)
    err = err_bytes.decode()
    # Then every site was swept and is in the report, and the message says the store failed
    assert sweep.returncode == 3, err
    assert "internal error" not in err
    assert "the store could not be written" in err
    assert "disk" in err or "full" in err or "I/O" in err
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8-sig"))))
    assert sorted(r["site"] for r in rows) == [f"site-{n}" for n in range(sites)]
    # ... and the store holds some of them (it filled up part-way), never half a site
    stored = count(db, "SELECT COUNT(*) FROM site_results")
    assert 0 < stored < sites, err


@pytest.mark.slow
async def test_a_killed_sweep_reports_the_sites_it_never_swept(
    lab_dns: LabDns,
    certs: LabCertificates,
    slow_mx: LabSmtpServer,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    sites = 6
    inventory = slow_inventory(lab_dns, slow_mx, certs, write_inventory, sites=sites)
    db = tmp_path / "fleet.db"
    sweep = await start_fleet("sweep", "-i", str(inventory), "--db", str(db), "-q")
    # Given a sweep killed (kill -9) once two sites are stored
    await eventually(lambda: db.exists() and count(db, "SELECT COUNT(*) FROM site_results") >= 2)
    sweep.send_signal(signal.SIGKILL)
    await sweep.wait()
    stored = count(db, "SELECT COUNT(*) FROM site_results")
    assert 2 <= stored < sites
    # When its report is read back
    report = await run_fleet_async("report", "--last", "--db", str(db), "--format", "json")
    table = await run_fleet_async("report", "--last", "--db", str(db))
    # Then it says how many planned sites were never swept, and which
    assert report.code == 3, report.stderr
    import json

    sweep_info = json.loads(report.stdout)["sweep"]
    assert sweep_info["complete"] is False
    assert len(sweep_info["sites_missing"]) == sites - stored
    assert sweep_info["interrupted"]
    assert f"{sites - stored} sites not swept" in table.stdout + table.stderr
    assert "(; " not in table.stdout + table.stderr


async def test_a_damaged_store_is_a_clear_error_not_an_internal_one(
    lab_dns: LabDns,
    m365: object,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from .conftest import M365Lab

    assert isinstance(m365, M365Lab)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    inventory = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=3))
    db = tmp_path / "fleet.db"
    first = await run_fleet_async("sweep", "-i", str(inventory), "--db", str(db), "-q")
    assert first.code == 0, first.stderr
    # Given a store file damaged on disk (pages past the first overwritten)
    with sqlite3.connect(db) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(db.read_bytes())
    assert len(data) > 8192
    data[4096:] = b"\xa5" * (len(data) - 4096)
    db.write_bytes(bytes(data))
    # When the commands that read or write it run
    runs = {
        args[0]: await run_fleet_async(*args, "--db", str(db))
        for args in (
            ("report", "--last"),
            ("history",),
            ("diff",),
            ("prune", "--keep-days", "30"),
            ("sweep", "-i", str(inventory), "-q"),
        )
    }
    # Then each says the store is damaged, with exit 3, and none is an internal error
    for command, run in runs.items():
        assert run.code == 3, (command, run.stderr)
        assert "internal error" not in run.stderr, (command, run.stderr)
        assert "damaged" in run.stderr or "malformed" in run.stderr, (command, run.stderr)


def _stored_sites(db: Path) -> set[str]:
    """The sites committed so far, as another connection (another process) sees them."""
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return {site for (site,) in connection.execute("SELECT site FROM site_results")}
    except sqlite3.Error:
        return set()


async def test_a_finished_site_is_committed_within_the_window_while_the_sweep_runs(
    lab_dns: LabDns,
    certs: LabCertificates,
    slow_mx: LabSmtpServer,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from fleet.inventory import load_inventory
    from fleet.pipeline import opened_store, plan_for, sweep
    from fleet.store import GROUP_WINDOW_S

    # Given a sweep of three sites one at a time against a slow MX (each takes about a
    # second), so that nothing but the window's timer can commit a site before the next ends
    inventory = slow_inventory(lab_dns, slow_mx, certs, write_inventory, sites=3)
    plan = plan_for(load_inventory(str(inventory)))
    db = tmp_path / "fleet.db"
    loop = asyncio.get_running_loop()
    finished: dict[str, float] = {}
    committed: dict[str, tuple[float, set[str]]] = {}  # when seen, and what had finished then

    async def watch() -> None:
        while True:
            now = loop.time()
            done = set(finished)
            for site in _stored_sites(db) - set(committed):
                committed[site] = (now, done)
            await asyncio.sleep(0.01)

    # When it runs while another connection reads the store
    watcher = asyncio.create_task(watch())
    try:
        with opened_store(str(db), lock="test") as store:
            swept = await sweep(
                plan, store, on_site=lambda site: finished.setdefault(site.site, loop.time())
            )
    finally:
        watcher.cancel()
    # Then each of the first two sites was in the store before the next site finished,
    # within the window of its finishing (slack for a busy 2-core machine's loop)
    assert swept.unstored is None
    assert swept.result.sweep.complete
    for site, following in (("site-0", "site-1"), ("site-1", "site-2")):
        seen_at, done_then = committed[site]
        assert following not in done_then, (site, committed)
        assert seen_at - finished[site] <= GROUP_WINDOW_S + 0.5, (site, seen_at, finished)
    assert _stored_sites(db) == {"site-0", "site-1", "site-2"}


async def test_a_failing_callback_stops_the_sweep_and_the_finished_sites_are_committed(
    lab_dns: LabDns,
    certs: LabCertificates,
    m365: object,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    from fleet.inventory import load_inventory
    from fleet.pipeline import opened_store, plan_for, sweep

    from .conftest import M365Lab

    assert isinstance(m365, M365Lab)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    text = history_inventory(
        lab_dns, m365.mx.port, m365.ca_file, sites=4, concurrency=ONE_AT_A_TIME
    )
    plan = plan_for(load_inventory(str(write_inventory(text))))
    db = tmp_path / "fleet.db"
    seen: list[str] = []

    def on_site(site: object) -> None:
        seen.append(getattr(site, "site", ""))
        if len(seen) == 3:
            raise RuntimeError("the progress bar broke")

    # Given a sweep whose callback fails at the third site, well within the window of the
    # first two (a fast MX, one site at a time)
    with opened_store(str(db), lock="test") as store:
        with pytest.raises(RuntimeError, match="progress bar"):
            await sweep(plan, store, on_site=on_site)
    # Then the two sites it finished before are committed (the group was flushed on the
    # way out), and the sweep stays marked incomplete
    assert _stored_sites(db) == {"site-0", "site-1"}
    assert count(db, "SELECT COUNT(*) FROM sweeps WHERE complete = 0") == 1


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_a_stopped_sweep_commits_every_site_it_reports(
    sig: signal.Signals,
    lab_dns: LabDns,
    certs: LabCertificates,
    slow_mx: LabSmtpServer,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    import json

    sites = 6
    inventory = slow_inventory(lab_dns, slow_mx, certs, write_inventory, sites=sites)
    db = tmp_path / "fleet.db"
    sweep = await start_fleet(
        "sweep", "-i", str(inventory), "--db", str(db), "--format", "json", "-q"
    )
    # Given a sweep stopped (Ctrl-C, SIGTERM) once a site has finished: the site that was
    # running finishes after the signal, inside the open window of the group commit
    await eventually(lambda: len(slow_mx.stats.peers) >= 2)
    sweep.send_signal(sig)
    out, err = await asyncio.wait_for(sweep.communicate(), 30)
    # Then every site it reports as finished is in the store
    assert sweep.returncode == 3, err.decode()
    reported = json.loads(out)
    assert reported["sweep"]["complete"] is False
    finished = {site["site"] for site in reported["sites"]}
    assert 1 <= len(finished) < sites
    assert _stored_sites(db) == finished


async def test_a_bug_met_by_the_windows_commit_stops_the_sweep_at_its_next_site(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fleet.results import SweepResult
    from fleet.store import Store, SweepRecorder

    golden = Path(__file__).parent / "golden" / "sweep.json"
    sweep = SweepResult.model_validate_json(golden.read_text(encoding="utf-8"))
    first, second = sweep.sites[0], sweep.sites[1]
    store = Store(str(tmp_path / "fleet.db"))
    recorder = SweepRecorder(store, [s.site for s in sweep.sites], window_s=0.01)
    recorder.begin(sweep.sweep)
    called = asyncio.Event()

    def broken(sweep_id: str, sites: object) -> None:
        called.set()
        raise RuntimeError("a bug in the store's writing")

    # Given a site queued, and a bug (not a StoreError) when its group is committed by the
    # window's timer, on the loop where nothing can catch it
    monkeypatch.setattr(store, "add_sites", broken)
    assert recorder.keep(first) is None
    await asyncio.wait_for(called.wait(), 10)
    # Then the sweep meets the bug at its next site, as it met a failing add_site before,
    # and the site the commit lost is still in memory
    with pytest.raises(RuntimeError, match="a bug"):
        recorder.keep(second)
    assert recorder.unstored == [first]
    store.close()


async def test_a_full_group_is_committed_at_once_without_waiting_for_the_window(
    tmp_path: Path,
) -> None:
    from fleet.results import SweepResult
    from fleet.store import Store, SweepRecorder

    golden = Path(__file__).parent / "golden" / "sweep.json"
    sweep = SweepResult.model_validate_json(golden.read_text(encoding="utf-8"))
    first, second = sweep.sites[0], sweep.sites[1]
    db = tmp_path / "fleet.db"
    store = Store(str(db))
    # Given a recorder whose groups hold two sites, with a window far longer than the test
    recorder = SweepRecorder(store, [s.site for s in sweep.sites], window_s=60, max_sites=2)
    recorder.begin(sweep.sweep)
    # When one site finishes, it waits for the window; when the second does, the group is full
    assert recorder.keep(first) is None
    assert _stored_sites(db) == set()
    assert recorder.keep(second) is None
    # Then both are committed at once and no timer is left waiting
    assert _stored_sites(db) == {first.site, second.site}
    assert recorder.waiting == []
    assert recorder._timer is None
    store.close()


def test_the_recorders_changes_are_the_ones_the_stored_digests_give(tmp_path: Path) -> None:
    # The recorder measures a sweep's changes from the digests it stored (not read back):
    # they must be the changes the store's own digests give, in the plan's order, whatever
    # the order the sites finished in.
    from datetime import timedelta

    from fleet.results import SweepResult, Verdict
    from fleet.store import Store, SweepRecorder

    golden = Path(__file__).parent / "golden" / "sweep.json"
    first = SweepResult.model_validate_json(golden.read_text(encoding="utf-8"))
    planned = [s.site for s in first.sites]
    changed = {"contoso-hq": Verdict.ok, "fabrikam": Verdict.critical}
    second = first.model_copy(
        update={
            "sweep": first.sweep.model_copy(
                update={
                    "id": first.sweep.id + "-2",
                    "started_at": first.sweep.started_at + timedelta(days=1),
                }
            ),
            "sites": [
                s.model_copy(update={"verdict": changed[s.site]}) if s.site in changed else s
                for s in first.sites
            ],
        }
    )
    store = Store(str(tmp_path / "fleet.db"))
    try:
        readings = []
        for sweep in (first, second):
            recorder = SweepRecorder(store, planned, light=True)
            recorder.begin(sweep.sweep)
            for site in reversed(sweep.sites):  # finished in another order than planned
                assert recorder.keep(site) is None
            readings.append(recorder.finish(sweep))
        assert readings[0].changes == []
        read_back, previous = store.stored_changes(second.sweep.id, second.sweep.started_at)
        assert previous == first.sweep.id
        assert readings[1].previous_sweep == first.sweep.id
        assert [c.site for c in read_back if c.kind.value == "verdict"] == [
            "contoso-hq",
            "fabrikam",
        ]
        assert readings[1].changes == read_back
    finally:
        store.close()
