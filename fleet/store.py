"""The history of sweeps in SQLite (stdlib sqlite3, WAL, versioned schema).

A sweep is written as it goes: its row first (incomplete), then its finished sites in
group commits (a site waits at most GROUP_WINDOW_S, 0.1 s, for the others that finish
meanwhile), then the row is marked complete. An interrupted sweep (Ctrl-C, SIGTERM, an
error) keeps every finished site; a killed one (SIGKILL) every site but those of the
last open window; both stay marked incomplete, and no crash leaves half a site. A lock (fleet.store_lock) keeps two sweeps from using one store at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar

import msgspec

from fleet.changes import SiteDigest, compare_digests
from fleet.errors import LockHeld, StoreError
from fleet.results import (
    Change,
    SiteResult,
    SweepInfo,
    SweepReading,
    SweepResult,
    SweepView,
    Verdict,
)
from fleet.store_lock import StoreLock

if TYPE_CHECKING:  # asyncio only for the sweep's timer: `fleet history` need not import it
    import asyncio

DB_ENV = "FLEET_DB"

log = logging.getLogger("fleet.store")

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.decode

# Each migration takes the schema from version N to N+1; never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sweeps (
        id TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        complete INTEGER NOT NULL DEFAULT 0,
        origin TEXT NOT NULL DEFAULT 'local',
        info TEXT NOT NULL,
        changes TEXT,
        previous TEXT
    );
    CREATE INDEX sweeps_started ON sweeps (started_at);
    CREATE TABLE site_results (
        sweep_id TEXT NOT NULL REFERENCES sweeps (id) ON DELETE CASCADE,
        site TEXT NOT NULL,
        client TEXT NOT NULL,
        verdict TEXT NOT NULL,
        egress_ip TEXT,
        finished_at TEXT NOT NULL,
        position INTEGER NOT NULL DEFAULT 0,
        digest TEXT NOT NULL,
        result TEXT NOT NULL,
        PRIMARY KEY (sweep_id, site)
    );
    CREATE INDEX site_results_site ON site_results (site, finished_at);
    """,
)


P = ParamSpec("P")
R = TypeVar("R")

# SQLite's words for a file that is not (or no longer) a sound database.
_DAMAGED = ("malformed", "not a database", "corrupt")


def _damaged(exc: BaseException) -> bool:
    """Whether SQLite said its file is not a sound database."""
    return isinstance(exc, sqlite3.Error) and any(word in str(exc) for word in _DAMAGED)


def _store_error(path: str, exc: sqlite3.Error) -> StoreError:
    """What a failed SQLite call means for the user of the store."""
    said = str(exc)
    if _damaged(exc):
        return StoreError(
            f"the store {path} is damaged ({said}): move it aside (keep it for a backup or "
            "`sqlite3 .recover`), and fleet starts a new one"
        )
    return StoreError(f"cannot use the store {path}: {said}")


def _guarded(method: Callable[P, R]) -> Callable[P, R]:
    """A Store method whose SQLite errors (a damaged file, a full disk) are StoreErrors."""

    @functools.wraps(method)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except sqlite3.Error as exc:
            store: Any = args[0]
            raise _store_error(str(store.path), exc) from None

    return call


def default_db_path() -> str:
    if os.environ.get(DB_ENV):
        return os.environ[DB_ENV]
    # Loaded only here: platformdirs brings tempfile, shutil and the compressors (some 5 ms
    # of start-up), and a sweep given --db or $FLEET_DB never needs it.
    import platformdirs

    return str(Path(platformdirs.user_data_dir("fleet")) / "fleet.db")


def _one_site_run(origin: str, info: str) -> bool:
    """A sweep of one site chosen by id on this machine: `fleet scan` or `sweep --site X`
    (an agent's result, pushed or ingested, is the sweeps of its site: never passed over)."""
    if origin != "local":
        return False
    filters = json.loads(info).get("filters") or []
    return len(filters) == 1 and str(filters[0]).startswith("site=")


class SweepRow(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    id: str
    started_at: str
    finished_at: str | None
    complete: bool
    origin: str
    sites: int
    verdicts: dict[str, int]
    interrupted: str | None


class SiteHistoryRow(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    sweep_id: str
    started_at: str
    complete: bool
    verdict: str
    egress_ip: str | None
    flags: list[str]
    listed: list[str]


class Store:
    def __init__(self, path: str) -> None:
        self.path = path
        folder = Path(path).resolve().parent
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            created = not Path(path).exists()
            self.db = sqlite3.connect(path, isolation_level=None, timeout=30)
            if created:
                os.chmod(path, 0o600)  # client names, IPs and findings: not for other users
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the store {path}: {exc}") from None
        self._lock = StoreLock(path)

    def close(self) -> None:
        self.unlock()
        self.db.close()

    # -- schema -------------------------------------------------------------------------

    def _migrate(self) -> None:
        version = int(self.db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"the store {self.path} has schema version {version}, newer than this fleet knows "
                f"({len(MIGRATIONS)}): upgrade fleet"
            )
        for number in range(version, len(MIGRATIONS)):
            with self._transaction():
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.db.execute(statement)
                self.db.execute(f"PRAGMA user_version = {number + 1}")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        # Nested use joins the outer transaction, so a group() of saves is one commit while
        # begin_sweep/add_sites/finish_sweep each stay atomic on their own.
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            # inside: a COMMIT SQLite refuses (busy) leaves the transaction open, and what
            # joined it next would be answered stored and never committed
            self.db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):  # a full disk may refuse this too
                self.db.execute("ROLLBACK")
            raise

    # -- the lock -----------------------------------------------------------------------

    def lock(self, what: str) -> None:
        """Take the store's sweep lock, or raise StoreError naming who holds it."""
        try:
            self._lock.acquire(what)
        except LockHeld as exc:
            raise StoreError(
                f"another sweep is already using the store {self.path} ({exc}); "
                "two sweeps on one store never overlap: try again when it has finished"
            ) from None
        except (sqlite3.Error, OSError) as exc:
            said = str(exc)
            if _damaged(exc):
                # The lock's database is never flushed (fleet.store_lock): an operating
                # system crash while it was held can leave it so. It holds only a note.
                raise StoreError(
                    f"the store's lock file {self._lock.path} is damaged ({said}): delete it "
                    "and its -wal and -shm files (they only record who holds the lock; the "
                    "store is not in them) and try again"
                ) from None
            raise StoreError(f"cannot lock the store {self.path}: {said}") from None

    def unlock(self) -> None:
        self._lock.release()

    # -- writing ------------------------------------------------------------------------

    @_guarded
    def begin_sweep(self, info: SweepInfo) -> None:
        with self._transaction():
            self._insert_sweep(info)

    def _insert_sweep(
        self, info: SweepInfo, ended: tuple[list[Change], str | None] | None = None
    ) -> None:
        """The sweep's row: begun (incomplete, no end), or, with `ended` (its changes and
        the sweep they were measured against), already finished as `info` says."""
        changes, previous = ended if ended is not None else (None, None)
        try:
            self.db.execute(
                "INSERT INTO sweeps (id, started_at, finished_at, complete, origin, info, "
                "changes, previous) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    info.id,
                    _ts(info.started_at),
                    _ts(info.finished_at) if ended is not None and info.finished_at else None,
                    int(info.complete) if ended is not None else 0,
                    info.origin or "local",
                    info.model_dump_json(),
                    _changes_json(changes) if changes is not None else None,
                    previous,
                ),
            )
        except sqlite3.IntegrityError:
            raise StoreError(f"sweep {info.id} is already in the store") from None

    @_guarded
    def add_site(self, sweep_id: str, site: SiteResult, position: int = 0) -> None:
        """One site, in one transaction: it is in the store whole, or not at all.
        `position` is the site's place in the plan, so reports keep the inventory's order."""
        self.add_sites(sweep_id, [(position, site)])

    @_guarded
    def add_sites(self, sweep_id: str, sites: list[tuple[int, SiteResult]]) -> list[SiteDigest]:
        """Sites (each with its place in the plan), in one transaction: all of them are in
        the store whole, or none (a sweep's group commit: SQLite's commit costs far more
        than a row, about 150 us a site at one transaction each). Returns the digests
        stored beside them, in the same order."""
        digests = [SiteDigest.of(site) for _, site in sites]
        with self._transaction():
            self._insert_sites(sweep_id, sites, digests)
        return digests

    def _insert_sites(
        self, sweep_id: str, sites: list[tuple[int, SiteResult]], digests: list[SiteDigest]
    ) -> None:
        # msgspec's encoder: the same JSON as json.dumps(..., separators=(",", ":")) but for
        # non-ASCII text, written as UTF-8 rather than escaped (read back alike), 20x faster
        rows = [
            (
                sweep_id,
                site.site,
                site.client,
                site.verdict.value,
                site.egress_ip,
                _ts(site.finished_at),
                position,
                _encode(digest.to_json()).decode(),
                site.stored_json(),
            )
            for (position, site), digest in zip(sites, digests, strict=True)
        ]
        self.db.executemany(
            "INSERT OR REPLACE INTO site_results "
            "(sweep_id, site, client, verdict, egress_ip, finished_at, position, digest, result) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )

    @_guarded
    def finish_sweep(self, info: SweepInfo, changes: list[Change], previous: str | None) -> None:
        payload = _changes_json(changes)
        with self._transaction():
            self.db.execute(
                "UPDATE sweeps SET finished_at = ?, complete = ?, info = ?, changes = ?, previous = ? "
                "WHERE id = ?",
                (
                    _ts(info.finished_at) if info.finished_at else None,
                    int(info.complete),
                    info.model_dump_json(),
                    payload,
                    previous,
                    info.id,
                ),
            )

    @_guarded
    def save(self, result: SweepResult) -> tuple[list[Change], str | None]:
        """Store a whole sweep at once (an ingested or pushed agent result): all of it or
        nothing. Its sites go in one statement, its row already finished, its changes
        measured from the digests it stores (as a local sweep's are, not read back); they
        are returned. A site twice is refused (which of its results is true?), and a
        failure part-way (a full disk) leaves nothing of the sweep behind. Inside a
        `group()` it is one savepoint of the group's transaction: a failing save is undone
        alone, and the group's other saves stand."""
        seen: set[str] = set()
        for site in result.sites:
            if site.site in seen:
                raise StoreError(
                    f"sweep {result.sweep.id}: site {site.site!r} is in it twice; "
                    "nothing of the sweep is stored"
                )
            seen.add(site.site)
        sweep = result.sweep
        digests = [SiteDigest.of(site) for site in result.sites]
        with self._atomic():
            ended = self.stored_changes(sweep.id, sweep.started_at, {d.site: d for d in digests})
            self._insert_sweep(sweep, ended)  # first: the sites' rows refer to it
            self._insert_sites(sweep.id, list(enumerate(result.sites)), digests)
        return ended

    @contextmanager
    def group(self) -> Iterator[None]:
        """Several writes in one transaction, one commit (`fleet serve` stores the pushes
        that arrived together so): all are in the store once it returns, or, when it
        raises, none. SQLite's commit costs more than a small sweep's rows."""
        try:
            with self._transaction():
                yield
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    @property
    def in_group(self) -> bool:
        """Whether a group()'s transaction is open. SQLite rolls a whole transaction back
        on some failures (a full disk, an I/O error): a group whose save failed so is gone."""
        return self.db.in_transaction

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """A transaction of its own, or, inside one already open, a savepoint of it."""
        if not self.db.in_transaction:
            with self._transaction():
                yield
            return
        self.db.execute("SAVEPOINT fleet_save")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:  # else SQLite already rolled the whole group back
                try:
                    self.db.execute("ROLLBACK TO fleet_save")
                    self.db.execute("RELEASE fleet_save")
                except sqlite3.Error:
                    # the save's rows could not be undone alone: undo the whole group
                    # (`in_group` turns false, and serve stores its pushes one by one)
                    with contextlib.suppress(sqlite3.Error):
                        self.db.execute("ROLLBACK")
            raise
        self.db.execute("RELEASE fleet_save")

    # -- reading ------------------------------------------------------------------------

    @_guarded
    def previous(
        self, sites: list[str], before: datetime, exclude: str
    ) -> tuple[dict[str, SiteDigest], str | None]:
        """Each site's state in the latest complete sweep before `before` (and the newest
        such sweep's id). The newest complete sweep is every site's latest one that it
        holds, so its digests are read in one query; only the sites it lacks are looked up
        one by one (a sweep of 1,000 sites: one query instead of 1,000)."""
        until = _ts(before)
        newest = self.db.execute(
            "SELECT id, started_at FROM sweeps WHERE complete = 1 AND started_at < ? AND id != ? "
            "ORDER BY started_at DESC LIMIT 1",
            (until, exclude),
        ).fetchone()
        if newest is None:  # no complete sweep before this one: nothing to compare with
            return {}, None
        # Only the asked sites' rows are read (`fleet scan SITE` at a 10,000-site store
        # reads one); json_each takes the list whole, with no limit on parameters.
        found: dict[str, SiteDigest] = {
            site: SiteDigest.from_json(_decode(digest))
            for site, digest in self.db.execute(
                "SELECT site, digest FROM site_results WHERE sweep_id = ? "
                "AND site IN (SELECT value FROM json_each(?))",
                (newest[0], json.dumps(sites)),
            )
        }
        latest: tuple[str, str] | None = (newest[0], newest[1]) if found else None
        query = (
            "SELECT r.digest, s.id, s.started_at FROM site_results r JOIN sweeps s "
            "ON s.id = r.sweep_id WHERE r.site = ? AND s.complete = 1 AND s.started_at < ? "
            "AND s.id != ? ORDER BY s.started_at DESC LIMIT 1"
        )
        for site in sites:
            if site in found:
                continue
            row = self.db.execute(query, (site, until, exclude)).fetchone()
            if row is None:
                continue
            found[site] = SiteDigest.from_json(_decode(row[0]))
            if latest is None or row[2] > latest[1]:
                latest = (row[1], row[2])
        ordered = {site: found[site] for site in sites if site in found}
        return ordered, latest[0] if latest else None

    @_guarded
    def stored_changes(
        self, sweep_id: str, started_at: datetime, now: dict[str, SiteDigest] | None = None
    ) -> tuple[list[Change], str | None]:
        """What changed in a stored sweep since the previous complete sweep of its sites,
        from the digests kept beside each site (no full result is read). `now`: the sweep's
        own digests in plan order, as they were stored, when the caller holds them (a
        sweep's recorder): not read back."""
        if now is None:
            now = self.digests(sweep_id)
        before, previous_id = self.previous(list(now), started_at, sweep_id)
        return compare_digests(before, now), previous_id

    @_guarded
    def digests(self, sweep_id: str) -> dict[str, SiteDigest]:
        """Each site's state in a stored sweep, in plan order (what changes are made of)."""
        rows = self.db.execute(
            "SELECT site, digest FROM site_results WHERE sweep_id = ? ORDER BY position, rowid",
            (sweep_id,),
        ).fetchall()
        return {site: SiteDigest.from_json(_decode(digest)) for site, digest in rows}

    def view(self, sweep_id: str, *, light: bool = True) -> SweepView:
        """A stored sweep for the reports: counts from the index, sites read one at a time
        when a report reads them (the store must stay open until then)."""
        info, changes, previous = self.info(sweep_id)
        counts = {Verdict(v): n for v, n in self._verdict_counts(sweep_id).items()}

        def sites() -> Iterator[SiteResult]:
            for site in self.sites(sweep_id):
                yield site.without_transcripts() if light else site

        return SweepView(info, changes, previous, counts, sites)

    @_guarded
    def _verdict_counts(self, sweep_id: str) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT verdict, COUNT(*) FROM site_results WHERE sweep_id = ? GROUP BY verdict",
            (sweep_id,),
        )
        return {str(verdict): int(n) for verdict, n in rows}

    @_guarded
    def last_id(self) -> str | None:
        """The last sweep (`--last`, the default `diff`): the most recent one, passing over
        newer one-site runs made here (`fleet scan`, `fleet sweep --site X`) when an older
        sweep is not one, so that a rescan does not stand for the night's sweep. A warning
        names the runs passed over (`--sweep ID` shows one)."""
        passed: list[str] = []
        rows = self.db.execute("SELECT id, origin, info FROM sweeps ORDER BY started_at DESC")
        for sweep_id, origin, info in rows:
            if not _one_site_run(origin, info):
                if passed:
                    log.warning(
                        "the last sweep is %s: passed over %d newer one-site run(s) (fleet "
                        "scan, fleet sweep --site): %s; `--sweep ID` shows one",
                        sweep_id,
                        len(passed),
                        ", ".join(passed),
                    )
                return str(sweep_id)
            passed.append(str(sweep_id))
        return passed[0] if passed else None

    @_guarded
    def has(self, sweep_id: str) -> bool:
        return (
            self.db.execute("SELECT 1 FROM sweeps WHERE id = ?", (sweep_id,)).fetchone() is not None
        )

    @_guarded
    def info(self, sweep_id: str) -> tuple[SweepInfo, list[Change], str | None]:
        """A stored sweep's info, its changes, and the sweep they were computed against."""
        row = self.db.execute(
            "SELECT info, changes, previous, finished_at FROM sweeps WHERE id = ?", (sweep_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"no sweep {sweep_id} in the store {self.path}")
        changes = [Change.model_validate(c) for c in json.loads(row[1])] if row[1] else []
        info = SweepInfo.model_validate_json(row[0])
        if row[3] is None:  # never finished: still running, or killed with its process
            info = self._unfinished(info)
        return info, changes, row[2]

    def _unfinished(self, info: SweepInfo) -> SweepInfo:
        """A sweep that never finished, as far as the store knows: its planned sites (begun
        with every one of them missing) less the ones stored since."""
        stored = {
            site
            for (site,) in self.db.execute(
                "SELECT site FROM site_results WHERE sweep_id = ?", (info.id,)
            )
        }
        missing = [site for site in info.sites_missing if site not in stored]
        return info.model_copy(
            update={
                "complete": False,
                "sites_missing": missing,
                "interrupted": info.interrupted
                or "the sweep never finished: it was killed, crashed, or is still running",
            }
        )

    def sites(self, sweep_id: str) -> Iterator[SiteResult]:
        """A stored sweep's sites in the inventory's order, one at a time."""
        try:
            rows = self.db.execute(
                "SELECT result FROM site_results WHERE sweep_id = ? ORDER BY position, rowid",
                (sweep_id,),
            )
            for (result,) in rows:
                yield SiteResult.from_json(result)
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    @_guarded
    def latest_site(self, site: str) -> SiteResult | None:
        """A site's most recent stored result, from whichever sweep (the central's page)."""
        row = self.db.execute(
            "SELECT result FROM site_results WHERE site = ? ORDER BY finished_at DESC LIMIT 1",
            (site,),
        ).fetchone()
        return SiteResult.from_json(row[0]) if row else None

    @_guarded
    def latest_site_sweep(self, site: str) -> str | None:
        """The sweep that holds `latest_site(site)`."""
        row = self.db.execute(
            "SELECT sweep_id FROM site_results WHERE site = ? ORDER BY finished_at DESC LIMIT 1",
            (site,),
        ).fetchone()
        return str(row[0]) if row else None

    @_guarded
    def sweeps(self, limit: int = 50) -> list[SweepRow]:
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, complete, origin, info FROM sweeps ORDER BY started_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
        out = []
        for sweep_id, started, finished, complete, origin, info in rows:
            verdicts = self._verdict_counts(sweep_id)
            parsed = SweepInfo.model_validate_json(info)
            out.append(
                SweepRow(
                    id=sweep_id,
                    started_at=started,
                    finished_at=finished,
                    complete=bool(complete),
                    origin=origin,
                    sites=sum(verdicts.values()),
                    verdicts=verdicts,
                    interrupted=parsed.interrupted if not complete else None,
                )
            )
        return out

    @_guarded
    def site_history(
        self, site: str, limit: int = 100, *, until: datetime | None = None
    ) -> list[SiteHistoryRow]:
        """The site's results, newest first; `until`: only sweeps that started by then."""
        rows = self.db.execute(
            "SELECT s.id, s.started_at, s.complete, r.verdict, r.egress_ip, r.digest "
            "FROM site_results r JOIN sweeps s ON s.id = r.sweep_id "
            "WHERE r.site = ? AND s.started_at <= ? "
            "ORDER BY s.started_at DESC LIMIT ?",
            (site, _ts(until) if until else "9999", limit),
        ).fetchall()
        out = []
        for sweep_id, started, complete, verdict, egress_ip, digest in rows:
            parsed = SiteDigest.from_json(_decode(digest))
            out.append(
                SiteHistoryRow(
                    sweep_id=sweep_id,
                    started_at=started,
                    complete=bool(complete),
                    verdict=verdict,
                    egress_ip=egress_ip,
                    flags=sorted(parsed.flags),
                    listed=[
                        f"{ip} on {zone} ({lists})"
                        for (ip, zone), lists in sorted(parsed.listed.items())
                    ],
                )
            )
        return out

    @_guarded
    def prune(self, keep_days: int) -> int:
        """Delete sweeps that started more than keep_days ago; returns how many. The caller
        holds the store's lock: a running sweep's own row is never pulled from under it."""
        cutoff = _ts(datetime.now(UTC) - timedelta(days=keep_days))
        with self._transaction():
            cursor = self.db.execute("DELETE FROM sweeps WHERE started_at < ?", (cutoff,))
        return int(cursor.rowcount)

    @_guarded
    def integrity(self) -> str:
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])


def _changes_json(changes: list[Change]) -> str:
    return json.dumps([c.model_dump(mode="json") for c in changes])


def _ts(moment: datetime) -> str:
    """Sortable UTC timestamps with microseconds, e.g. "1999-12-31T23:59:59.000001Z"."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    # isoformat, not strftime (twice a site): "+00:00" swapped for the "Z" the store keeps
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


# A finished site waits at most this long, or for this many others, before its group is
# committed (issue 20: a transaction per site cost 50-150 us of CPU a site). A process killed
# outright (SIGKILL, a power cut) loses at most the sites of the open window.
GROUP_WINDOW_S = 0.1
GROUP_MAX_SITES = 100


class SweepRecorder:
    """Writes one sweep into the store as it goes. A store that fails part-way (a full disk,
    an I/O error, a damaged file) is not written again and never stops the sweep: the sites
    it could not take stay in memory, and `finish` gives the whole sweep either way, with
    `failure` saying why the store could not be written.

    Finished sites are committed in groups: a site waits at most GROUP_WINDOW_S (a timer on
    the running loop), or until GROUP_MAX_SITES have finished, and `flush` (called by
    `finish`, and by the pipeline on every way out) commits what is waiting.

    `light`: the reports read the sites without their transcripts (table, CSV). Each stored
    site is then also kept in memory without them, so that the report reads what the sweep
    made rather than decoding every site's JSON back from the store (issue 20: about a
    tenth of a millisecond a site). Without `light` (JSON, HTML, an agent's push: every
    transcript) the sites are read back from the store one at a time, as before."""

    def __init__(
        self,
        store: Store,
        planned: list[str],
        *,
        light: bool = False,
        window_s: float = GROUP_WINDOW_S,
        max_sites: int = GROUP_MAX_SITES,
    ) -> None:
        self.store = store
        self.planned = planned
        self.positions = {site: n for n, site in enumerate(planned)}
        self.failure: str | None = None
        self.begun = False
        self.sweep_id = ""
        self.light = light
        self.kept: dict[int, SiteResult] = {}  # by plan position: the light sites stored
        self.window_s = window_s
        self.max_sites = max_sites
        self.waiting: list[tuple[int, SiteResult]] = []  # finished, not yet committed
        self.unstored: list[SiteResult] = []  # queued, then refused by the store
        # by plan position: the digests stored, for the sweep's changes without reading
        # them back (about 5 ms at 1,000 sites)
        self.digests: dict[int, SiteDigest] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._error: Exception | None = None  # a bug met by the timer's flush, raised later

    def _write(self, action: Callable[[], object]) -> bool:
        if self.failure is not None:
            return False
        try:
            action()
        except StoreError as exc:
            self.failure = str(exc)
            return False
        return True

    def begin(self, info: SweepInfo) -> None:
        """The sweep's row, begun with every planned site missing: a sweep killed part-way
        then says how many sites it never swept."""
        self.sweep_id = info.id
        pending = info.model_copy(update={"sites_missing": list(self.planned)})
        self.begun = self._write(lambda: self.store.begin_sweep(pending))

    def keep(self, site: SiteResult) -> SiteResult | None:
        """Queue a finished site for the store's next group commit; what the store cannot
        take is kept (returned, or in `unstored` when it fails later)."""
        self._raise_error()
        if not self.begun or self.failure is not None:
            return site
        self.waiting.append((self.positions[site.site], site))
        if len(self.waiting) >= self.max_sites:
            self.flush()
        elif self._timer is None:
            import asyncio

            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wake us: no window either
                self.flush()
            else:
                self._timer = loop.call_later(self.window_s, self._flush_on_time)
        return None

    def _flush_on_time(self) -> None:
        self._timer = None
        try:
            self.flush()
        except Exception as exc:  # not a StoreError: a bug, raised where the sweep sees it
            self._error = exc

    def _raise_error(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def flush(self) -> None:
        """Commit the sites waiting, in one transaction. When the store refuses the group,
        each site is tried alone (a full disk may still take a small one), and the ones it
        does not take stay in memory."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        group, self.waiting = self.waiting, []
        if not group:
            return
        try:
            written = self._write(lambda: self._add(group))
        except Exception:
            self.unstored.extend(site for _, site in group)  # a bug: the sites stay in memory
            raise
        if written:
            self._kept(group)
        elif len(group) == 1:
            self.unstored.extend(site for _, site in group)
        else:
            self.failure = None  # the group failed: try its sites one by one
            for one in group:
                self._commit([one])

    def _add(self, group: list[tuple[int, SiteResult]]) -> None:
        digests = self.store.add_sites(self.sweep_id, group)
        for (position, _), digest in zip(group, digests, strict=True):
            self.digests[position] = digest

    def _commit(self, group: list[tuple[int, SiteResult]]) -> None:
        if self._write(lambda: self._add(group)):
            self._kept(group)
        else:
            self.unstored.extend(site for _, site in group)

    def _kept(self, group: list[tuple[int, SiteResult]]) -> None:
        if self.light:
            for position, site in group:
                self.kept[position] = site.without_transcripts()

    def finish(self, result: SweepResult) -> SweepReading:
        """Mark the sweep finished and give it for the reports: as stored, or, when the store
        failed, its stored sites read back with the ones kept in memory."""
        self.flush()
        self._raise_error()
        if self.failure is None and self.begun:
            try:
                in_order = {d.site: d for _, d in sorted(self.digests.items())}
                changes, previous = self.store.stored_changes(
                    result.sweep.id, result.sweep.started_at, in_order
                )
                self.store.finish_sweep(result.sweep, changes, previous)
                view = self.store.view(result.sweep.id, light=self.light)
                if self.light:
                    return dataclasses.replace(view, site_source=self._kept_sites)
                return view
            except StoreError as exc:
                self.failure = str(exc)
        stored: list[SiteResult] = []
        if self.begun:
            with contextlib.suppress(StoreError):  # a damaged store may not even read back
                stored = list(self.store.sites(result.sweep.id))
        by_site = {site.site: site for site in [*stored, *self.unstored, *result.sites]}
        sites = sorted(by_site.values(), key=lambda s: self.positions.get(s.site, 0))
        lost = [
            site
            for site in self.planned
            if site not in by_site and site not in result.sweep.sites_missing
        ]
        sweep = result.sweep
        if lost:  # swept, but neither in the store nor in memory: never claim them
            sweep = sweep.model_copy(
                update={
                    "complete": False,
                    "sites_missing": [*sweep.sites_missing, *lost],
                    "interrupted": "the store failed and lost finished sites",
                }
            )
        return result.model_copy(update={"sweep": sweep, "sites": sites})

    def _kept_sites(self) -> Iterator[SiteResult]:
        """The stored sites as kept in memory, in the store's order (the plan's)."""
        return iter([self.kept[position] for position in sorted(self.kept)])
