"""The store's sweep lock, held through SQLite's own file locking.

SQLite locks with fcntl on POSIX and LockFileEx on Windows, and the operating system drops
either lock when its process dies, so a killed sweep never leaves the store locked. The lock
lives in a small database beside the store (``fleet.db-lock``, in WAL mode so that a process
refused the lock can still read who holds it): holding it is holding that database's write
transaction open.
"""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime

from fleet.errors import LockHeld


class StoreLock:
    def __init__(self, store_path: str) -> None:
        self.path = f"{store_path}-lock"
        self._db: sqlite3.Connection | None = None

    @property
    def held(self) -> bool:
        return self._db is not None

    def acquire(self, what: str) -> None:
        """Take the lock at once or raise LockHeld; never waits."""
        if self._db is not None:
            return
        # Created 0600 before SQLite opens it (its -wal and -shm files copy the mode).
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        # timeout=0: a held lock is an immediate "busy", not a wait.
        db = sqlite3.connect(self.path, isolation_level=None, timeout=0, check_same_thread=False)
        mine = f"pid {os.getpid()}, {what}, since {datetime.now(UTC):%H:%M:%S} UTC"
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # Who holds the lock is a note for a process refused it, not data: nothing to
            # flush to the disk (a crash frees the lock and the note with it). It saves a
            # scan four fdatasync calls.
            db.execute("PRAGMA synchronous=OFF")
            # The holder's name must be committed to be readable by others, and committing
            # lets go of the lock for an instant: take it again and check the name is still
            # ours (another process may have slipped in between).
            for _ in range(3):
                db.execute("BEGIN IMMEDIATE")
                db.execute("CREATE TABLE IF NOT EXISTS holder (id INTEGER PRIMARY KEY, name TEXT)")
                db.execute("INSERT OR REPLACE INTO holder VALUES (1, ?)", (mine,))
                db.execute("COMMIT")
                db.execute("BEGIN IMMEDIATE")
                if _holder(db) == mine:
                    self._db = db
                    return
                db.execute("ROLLBACK")
            raise LockHeld(_holder(db) or "another process")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorname not in ("SQLITE_BUSY", "SQLITE_LOCKED"):
                db.close()
                raise
            holder = _holder(db) or "another process"
            db.close()
            raise LockHeld(holder) from None
        except BaseException:
            db.close()
            raise

    def release(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            db.close()  # closing ends the open transaction: the lock is free


def _holder(db: sqlite3.Connection) -> str | None:
    try:
        row = db.execute("SELECT name FROM holder WHERE id = 1").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None
