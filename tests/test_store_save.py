"""`Store.save`, what `fleet ingest` and `fleet serve` store an agent's result with: one
transaction a result (or one for a group of results), its changes from the digests it
stores, all or nothing (issue 20)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from fleet.errors import StoreError
from fleet.results import SweepResult, Verdict
from fleet.store import Store

from .test_reports import fixed_sweep


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(str(tmp_path / "fleet.db"))
    try:
        yield opened
    finally:
        opened.close()


def day(n: int, *, worse: str | None = None, sites: int | None = None) -> SweepResult:
    """fixed_sweep on day n (a sweep id of its own); `worse`: that site turned critical."""
    base = fixed_sweep()
    chosen = base.sites[:sites] if sites else base.sites
    shown = [
        site.model_copy(update={"verdict": Verdict.critical}) if site.site == worse else site
        for site in chosen
    ]
    sweep = base.sweep.model_copy(
        update={
            "id": f"day-{n}",
            "started_at": base.sweep.started_at + timedelta(days=n),
            "finished_at": base.sweep.started_at + timedelta(days=n, minutes=1),
            "sites_planned": len(shown),
        }
    )
    return base.model_copy(update={"sweep": sweep, "sites": shown})


def refuse_site(store: Store, sweep_id: str, site: str) -> None:
    """SQLite itself refuses that row mid-statement, as a full disk would (nothing patched)."""
    store.db.execute(
        f"CREATE TEMP TRIGGER refuse_{sweep_id.replace('-', '_')} BEFORE INSERT ON "
        f"main.site_results WHEN NEW.sweep_id = '{sweep_id}' AND NEW.site = '{site}' "
        "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )


def statements(store: Store) -> list[str]:
    said: list[str] = []
    store.db.set_trace_callback(said.append)
    return said


def test_a_results_changes_are_the_ones_its_stored_digests_give(store: Store) -> None:
    # Given a first result, then one where a site that was fine turned critical
    first = day(1)
    fine = next(s.site for s in first.sites if s.verdict is not Verdict.critical)
    assert store.save(first) == ([], None)
    changes, previous = store.save(day(2, worse=fine))
    # Then its changes are measured against the first, and are what the store reads back
    # from the digests it kept (the ones a local sweep's report and `fleet diff` read)
    assert previous == "day-1"
    assert any(c.site == fine for c in changes)
    assert (changes, previous) == store.stored_changes("day-2", day(2).sweep.started_at)
    info, stored_changes, stored_previous = store.info("day-2")
    assert (stored_changes, stored_previous) == (changes, previous)
    assert info.complete
    assert info.finished_at == day(2).sweep.finished_at
    assert [s.site for s in store.sites("day-2")] == [s.site for s in first.sites]


def test_a_result_is_one_transaction_and_its_sites_one_statement(store: Store) -> None:
    said = statements(store)
    store.save(day(1))
    commits = [s for s in said if s.startswith(("BEGIN", "COMMIT", "SAVEPOINT"))]
    assert commits == ["BEGIN IMMEDIATE", "COMMIT"]
    # executemany: the trace shows the statement once a row, never a commit between them
    writes = [s for s in said if "INTO site_results" in s]
    assert len(writes) == len(day(1).sites)


def test_a_site_twice_is_refused_and_nothing_of_the_result_is_stored(store: Store) -> None:
    store.save(day(1))
    twice = day(2)
    twice = twice.model_copy(update={"sites": [*twice.sites, twice.sites[0]]})
    with pytest.raises(StoreError, match=f"site '{twice.sites[0].site}' is in it twice"):
        store.save(twice)
    assert not store.has("day-2")
    assert store.db.execute(
        "SELECT COUNT(*) FROM site_results WHERE sweep_id = 'day-2'"
    ).fetchone() == (0,)
    assert len(list(store.sites("day-1"))) == len(day(1).sites)


def test_a_result_already_stored_is_refused_and_the_stored_one_kept(store: Store) -> None:
    store.save(day(1, sites=2))
    with pytest.raises(StoreError, match="already in the store"):
        store.save(day(1))  # same id, more sites
    assert len(list(store.sites("day-1"))) == 2


def test_a_group_is_one_commit_and_a_failing_result_in_it_is_undone_alone(
    store: Store, tmp_path: Path
) -> None:
    store.save(day(1))
    refused = day(3)
    refuse_site(store, "day-3", refused.sites[2].site)
    said = statements(store)
    reader = sqlite3.connect(tmp_path / "fleet.db")
    try:
        with store.group():
            store.save(day(2))
            with pytest.raises(StoreError, match="disk is full"):
                store.save(refused)
            assert store.in_group  # SQLite undid the failed result, not the group
            changes, previous = store.save(day(4))
            # Nothing of the group is visible to another connection before its one commit
            assert reader.execute("SELECT COUNT(*) FROM sweeps").fetchone() == (1,)
        assert not store.in_group
        assert reader.execute("SELECT id FROM sweeps ORDER BY id").fetchall() == [
            ("day-1",),
            ("day-2",),
            ("day-4",),
        ]
    finally:
        reader.close()
    assert store.db.execute(
        "SELECT COUNT(*) FROM site_results WHERE sweep_id = 'day-3'"
    ).fetchone() == (0,)
    # The group's later result was measured against the earlier one of the same group
    assert previous == "day-2"
    assert (changes, previous) == store.stored_changes("day-4", day(4).sweep.started_at)
    assert [s for s in said if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"]


def test_a_group_that_raises_stores_none_of_its_results(store: Store) -> None:
    store.save(day(1))

    def stopped_mid_group() -> None:
        with store.group():
            store.save(day(2))
            raise RuntimeError("the writer stopped")

    with pytest.raises(RuntimeError, match="the writer stopped"):
        stopped_mid_group()
    assert not store.has("day-2")
    assert store.has("day-1")


def test_a_commit_sqlite_refuses_is_rolled_back_and_the_next_save_is_committed(
    store: Store, tmp_path: Path
) -> None:
    """A refused COMMIT (here a deferred constraint; a busy store is another) leaves SQLite's
    transaction open: were it not rolled back, the next save would join it, be called
    stored, and never be committed."""
    store.db.execute("PRAGMA foreign_keys = ON")
    store.db.execute("CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)")
    store.db.execute(
        "CREATE TEMP TABLE child (id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)"
    )
    with pytest.raises((StoreError, sqlite3.Error)), store.group():  # noqa: PT012 - the group raises at its end
        store.save(day(1))
        store.db.execute("INSERT INTO temp.child VALUES (7)")  # refused only at COMMIT
    assert not store.db.in_transaction
    store.save(day(2))
    other = sqlite3.connect(tmp_path / "fleet.db")
    try:
        stored = [row[0] for row in other.execute("SELECT id FROM sweeps ORDER BY id")]
    finally:
        other.close()
    assert stored == ["day-2"]


class _SavepointStuck:
    """The store's connection, except that undoing a savepoint fails (as SQLite may when the
    disk is gone): a fault no real loopback store can be made to show on demand."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, *args: object) -> sqlite3.Cursor:
        if sql.startswith("ROLLBACK TO"):
            raise sqlite3.OperationalError("disk I/O error")
        return self._db.execute(sql, *args)

    def __getattr__(self, name: str) -> object:
        return getattr(self._db, name)


def test_a_save_whose_savepoint_cannot_be_undone_undoes_the_whole_group(store: Store) -> None:
    """Its rows must not stay in the group to be committed with the others (a sweep without
    its sites, answered "already stored" when its agent sends it again)."""
    refuse_site(store, "day-2", fixed_sweep().sites[1].site)
    real = store.db
    store.db = _SavepointStuck(real)  # type: ignore[assignment]
    try:
        with pytest.raises(StoreError), store.group():  # noqa: PT012 - nothing left to commit: it says so
            store.save(day(1))
            with pytest.raises((StoreError, sqlite3.Error)):
                store.save(day(2))
            assert not store.in_group  # the group is gone: serve stores its pushes alone
    finally:
        store.db = real
    assert not store.has("day-2")
    assert not store.has("day-1")
