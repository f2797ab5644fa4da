"""`fleet serve` stores the pushes that arrive together in one transaction (issue 20): one
commit for a group rather than one a push, each push still all of it or nothing, answered
only once committed, its history and changes as if it had come alone. The real central on
loopback, its store read from the outside (the write-ahead log's commit frames)."""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bench.ingest import wal_commits
from fleet.lab.dns import LabDns
from fleet.results import SiteResult, SweepResult, Verdict
from fleet.store import Store

from .conftest import M365Lab
from .test_history import history_inventory
from .test_reports import fixed_sweep
from .test_serve import MASTER, CentralProcess, _sealed

SITES = 60


def one_site(template: SiteResult, n: int, day: int) -> SweepResult:
    """site-n's result on `day`, as its agent pushes it."""
    base = fixed_sweep()
    site = template.model_copy(update={"site": f"site-{n}", "client": f"Client {n % 2}"})
    info = base.sweep.model_copy(
        update={
            "id": f"20261129T01{day:02d}00Z-{n:06x}",
            "started_at": base.sweep.started_at + timedelta(days=day),
            "finished_at": base.sweep.started_at + timedelta(days=day, minutes=1),
            "sites_planned": 1,
            "filters": [],
        }
    )
    return SweepResult(sweep=info, sites=[site], changes=[], previous_sweep=None)


async def test_pushes_that_arrive_together_are_one_commit_and_each_stands_alone(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    many = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=SITES))
    sites = {site.verdict: site for site in fixed_sweep().sites}
    fine, critical = sites[Verdict.ok], sites[Verdict.critical]
    server = CentralProcess(many, tmp_path / "central.db", tmp_path / "central.log")
    await server.start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    client = httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120)
    reader = sqlite3.connect(server.db)
    try:
        # Given site-0's result of day 1, stored alone (fine)
        first = await client.post(
            "/api/v1/results", content=_sealed(one_site(fine, 0, 1), "site-0")
        )
        assert first.status_code == 201, first.text
        # and a reader holding the store as it is, so that the log keeps every commit after
        reader.execute("BEGIN")
        assert reader.execute("SELECT COUNT(*) FROM sweeps").fetchone() == (1,)
        before = wal_commits(server.db)

        # When every site's agent pushes day 2 at once (site-0 now critical), with among
        # them: each push twice (an agent's retry racing its first try), site-1 signed with
        # site-2's key, and a second, different result under site-3's sweep id
        good = [one_site(critical if n == 0 else fine, n, 2) for n in range(SITES)]
        bodies = [_sealed(result, f"site-{n}") for n, result in enumerate(good)]
        wrong_key = _sealed(one_site(critical, 1, 3), "site-2")
        clash = good[3].model_copy(
            update={"sites": [good[3].sites[0].model_copy(update={"verdict": Verdict.warn})]}
        )
        answers = await asyncio.gather(
            *(
                client.post("/api/v1/results", content=body)
                for body in [*bodies, *bodies, wrong_key, _sealed(clash, "site-3")]
            )
        )
        statuses = [a.status_code for a in answers]

        # Then every site's result is stored once: one push of each pair stored it (201),
        # its twin was told so (200), in whichever order they were taken
        for n in range(SITES):
            pair = sorted([statuses[n], statuses[SITES + n]])
            if n == 3:  # the clash may have been taken before either twin
                assert pair in ([200, 201], [422, 422]), (n, pair)
            else:
                assert pair == [200, 201], (n, pair, answers[n].text)
        # the push signed with another site's key was refused, the clash refused or stored
        # in the place of site-3's (never both)
        assert statuses[-2] == 403, answers[-2].text
        site3 = [statuses[3], statuses[SITES + 3], statuses[-1]]
        assert sorted(site3).count(201) == 1, site3
        after = wal_commits(server.db)
        reader.rollback()
        assert reader.execute("SELECT COUNT(*) FROM sweeps").fetchone() == (1 + SITES,)

        # And the pushes were stored in far fewer commits than pushes (they arrived
        # together); without the groups it is one commit a stored push
        stored = statuses.count(201)
        assert stored == SITES
        assert 1 <= after - before < stored // 2, (after - before, stored)

        # And history stays right: site-0's day 2 was measured against its day 1
        store = Store(str(server.db))
        try:
            info, changes, previous = store.info(good[0].sweep.id)
            assert previous == one_site(fine, 0, 1).sweep.id
            assert {c.site for c in changes} == {"site-0"}
            assert info.origin.startswith("push:")
            for n, result in enumerate(good):
                if n == 3 and statuses[-1] == 201:
                    continue
                assert [s.verdict for s in store.sites(result.sweep.id)] == [
                    result.sites[0].verdict
                ]
        finally:
            store.close()
    finally:
        reader.close()
        await client.aclose()
        await server.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="RLIMIT_FSIZE raised on a running process")
async def test_a_store_that_fills_up_answers_503_and_loses_nothing_answered_201(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    import resource

    many = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=SITES))
    template = fixed_sweep().sites[0]
    server = CentralProcess(many, tmp_path / "central.db", tmp_path / "central.log")
    limit = 128 * 1024  # no file of the central may grow past this: its WAL soon does

    def small_disk() -> None:
        # the soft limit only: it can be lifted later from outside (prlimit)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    server.preexec_fn = small_disk
    await server.start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    client = httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120)
    try:
        results = [one_site(template, n, 2) for n in range(SITES)]
        bodies = [_sealed(result, f"site-{n}") for n, result in enumerate(results)]
        # When one agent pushes, then all the others at once, to a central whose disk
        # fills up part-way (a group that does not fit is stored push by push)
        answers = [await client.post("/api/v1/results", content=bodies[0])]
        answers += await asyncio.gather(
            *(client.post("/api/v1/results", content=body) for body in bodies[1:])
        )
        statuses = [a.status_code for a in answers]
        # Then each push was stored (201) or told the store cannot be written (503), never
        # an internal error, and the disk did fill up
        assert set(statuses) <= {201, 503}, {a.text for a in answers}
        assert 201 in statuses[1:], "the limit left no room for the others: raise it"
        assert 503 in statuses, "the WAL never reached the limit: lower it"
        assert answers[statuses.index(503)].json()["reason"] == (
            "the store cannot be written; try again later"
        )
        # ... and what was answered 201 is in the store whole, and nothing else is
        with sqlite3.connect(server.db) as connection:
            rows = connection.execute(
                "SELECT s.id, COUNT(r.site) FROM sweeps s LEFT JOIN site_results r "
                "ON r.sweep_id = s.id GROUP BY s.id"
            ).fetchall()
        stored = {sweep_id for sweep_id, sites in rows if sites == 1}
        assert len(stored) == len(rows)  # no sweep without its site
        assert stored == {r.sweep.id for r, s in zip(results, statuses, strict=True) if s == 201}

        # When the disk has room again and the refused agents send again (their spool)
        assert server.process is not None
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
        again = [b for b, s in zip(bodies, statuses, strict=True) if s == 503]
        retried = await asyncio.gather(
            *(client.post("/api/v1/results", content=body) for body in again)
        )
        # Then every one lands, once, beside the ones stored before
        assert [a.status_code for a in retried] == [201] * len(again), {a.text for a in retried}
        assert server.sweeps() == SITES
    finally:
        await client.aclose()
        await server.stop()


async def test_a_push_the_store_refuses_is_answered_503_and_its_group_is_stored(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    many = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=SITES))
    template = fixed_sweep().sites[0]
    db = tmp_path / "central.db"
    # Given a store that refuses site-5's row (a trigger in the file: SQLite's own failure,
    # mid-way through that push's transaction, in whatever group it comes)
    Store(str(db)).close()
    with sqlite3.connect(db) as connection:
        connection.execute(
            "CREATE TRIGGER refuse_site_5 BEFORE INSERT ON site_results WHEN NEW.site = 'site-5' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
    server = CentralProcess(many, db, tmp_path / "central.log")
    await server.start()
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=0)
    try:
        results = [one_site(template, n, 2) for n in range(SITES)]
        bodies = [_sealed(result, f"site-{n}") for n, result in enumerate(results)]
        # When every agent pushes at once
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            answers = await asyncio.gather(
                *(client.post("/api/v1/results", content=body) for body in bodies)
            )
        # Then site-5's push is told the store cannot take it, and nothing of it is stored
        statuses = [a.status_code for a in answers]
        assert statuses[5] == 503, answers[5].text
        assert answers[5].json()["reason"] == "the store cannot be written; try again later"
        assert "disk is full" in server.log.read_text()
        # ... and every other push is stored whole, whatever group it shared with site-5's
        assert statuses[:5] + statuses[6:] == [201] * (SITES - 1), {a.text for a in answers}
        with sqlite3.connect(db) as connection:
            rows = connection.execute(
                "SELECT s.id, COUNT(r.site) FROM sweeps s LEFT JOIN site_results r "
                "ON r.sweep_id = s.id GROUP BY s.id"
            ).fetchall()
        assert sorted(rows) == sorted((r.sweep.id, 1) for n, r in enumerate(results) if n != 5)
    finally:
        await server.stop()


def test_a_bug_met_by_one_push_is_its_own_500_and_its_group_is_stored(
    lab_dns: LabDns,
    m365: M365Lab,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fault of fleet's own (no refusal, no store error) met while checking or storing one
    push answers that push 500 alone: it must not sink the pushes that share its group."""
    from fleet import serve
    from fleet.agent import SiteKeys
    from fleet.inventory import load_inventory

    inventory = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=4))
    template = fixed_sweep().sites[0]
    results = [one_site(template, n, 2) for n in range(4)]
    bodies = [_sealed(result, f"site-{n}") for n, result in enumerate(results)]
    checking, storing = bodies[1], results[2].sweep.id

    # Given a fault in fleet's reading of site-1's push and in storing site-2's
    real_read, real_insert = serve.read_agent_result, Store._insert_sites

    def read(text: str, *args: object) -> SweepResult:
        if text == checking.decode():
            raise RuntimeError("a bug in reading this push")
        return real_read(text, *args)  # type: ignore[arg-type]

    def insert(store: Store, sweep_id: str, *args: object) -> None:
        real_insert(store, sweep_id, *args)  # type: ignore[arg-type]
        if sweep_id == storing:
            raise RuntimeError("a bug after this push's rows were written")

    monkeypatch.setattr(serve, "read_agent_result", read)
    monkeypatch.setattr(Store, "_insert_sites", insert)
    db = tmp_path / "central.db"
    central = serve.Central(
        load_inventory(str(inventory)), str(db), SiteKeys(MASTER.encode()), max_body_bytes=1 << 20
    )
    central._open("writer")
    try:
        # When the four pushes arrive together (one group)
        outcomes = central._accept_group([(body, "127.0.0.1") for body in bodies])
    finally:
        central._close("writer")
        central._writer.shutdown()
        central._reader.shutdown()
    # Then the two faulty pushes are answered 500, nothing of them stored; the others 201
    assert [o.status for o in outcomes] == [201, 500, 500, 201]
    with sqlite3.connect(db) as connection:
        stored = {row[0] for row in connection.execute("SELECT id FROM sweeps")}
        sites = {row[0] for row in connection.execute("SELECT site FROM site_results")}
    assert stored == {results[0].sweep.id, results[3].sweep.id}
    assert sites == {"site-0", "site-3"}
