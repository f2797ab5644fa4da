"""The store's sweep lock (SQLite's own locking, no fcntl): one holder at a time, the
holder named to whoever is refused, and the lock gone when its process dies."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.errors import LockHeld, StoreError
from fleet.store import Store
from fleet.store_lock import StoreLock

HOLD = """
import sys
for m in ("fcntl", "termios", "pwd", "grp", "resource", "uvloop"):
    sys.modules[m] = None  # as on Windows: the lock must not need them
from fleet.store_lock import StoreLock
lock = StoreLock(sys.argv[1])
lock.acquire("fleet sweep")
print("held", flush=True)
sys.stdin.read()
"""


def hold_in_child(store: Path) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    assert child.stdout.readline() == "held\n"
    return child


def test_a_second_process_is_refused_and_told_who_holds_it(tmp_path: Path) -> None:
    store = tmp_path / "fleet.db"
    child = hold_in_child(store)
    try:
        with pytest.raises(
            LockHeld, match=rf"^pid {child.pid}, fleet sweep, since \d\d:\d\d:\d\d UTC$"
        ):
            StoreLock(str(store)).acquire("fleet sweep")
    finally:
        child.communicate("")
    # released when the holder exits
    lock = StoreLock(str(store))
    lock.acquire("fleet sweep")
    assert lock.held
    lock.release()


def test_the_lock_dies_with_its_process(tmp_path: Path) -> None:
    store = tmp_path / "fleet.db"
    child = hold_in_child(store)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    lock = StoreLock(str(store))
    lock.acquire("fleet sweep")
    assert lock.held
    lock.release()


def test_two_holders_in_one_process_never_overlap(tmp_path: Path) -> None:
    first, second = StoreLock(str(tmp_path / "fleet.db")), StoreLock(str(tmp_path / "fleet.db"))
    first.acquire("fleet sweep")
    with pytest.raises(LockHeld, match=rf"pid {os.getpid()}, fleet sweep"):
        second.acquire("fleet prune")
    first.release()
    second.acquire("fleet prune")
    assert second.held
    assert not first.held
    second.release()


def test_store_lock_error_names_the_store_and_the_holder(tmp_path: Path) -> None:
    path = str(tmp_path / "fleet.db")
    first, second = Store(path), Store(path)
    try:
        first.lock("fleet sweep")
        with pytest.raises(StoreError, match=r"another sweep is already using the store .*\(pid "):
            second.lock("fleet sweep")
        first.close()
        second.lock("fleet sweep")
    finally:
        second.close()


@pytest.mark.skipif(sys.platform == "win32", reason="Windows relies on the folder's ACL")
def test_lock_file_is_private(tmp_path: Path) -> None:
    lock = StoreLock(str(tmp_path / "fleet.db"))
    lock.acquire("fleet sweep")
    for name in ("fleet.db-lock", "fleet.db-lock-wal", "fleet.db-lock-shm"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    lock.release()


def test_the_lock_note_is_never_flushed_to_the_disk(tmp_path: Path) -> None:
    # Who holds the lock is a note for whoever is refused it, and a crash frees the lock with
    # it: the lock's database skips the fdatasync calls (four per scan) that data would need.
    lock = StoreLock(str(tmp_path / "fleet.db"))
    lock.acquire("fleet scan")
    try:
        assert lock._db is not None
        assert lock._db.execute("PRAGMA synchronous").fetchone() == (0,)
    finally:
        lock.release()
    refused = StoreLock(str(tmp_path / "fleet.db"))
    refused.acquire("again")  # released: free to take
    refused.release()


def test_a_damaged_lock_file_is_reported_with_its_remedy(tmp_path: Path) -> None:
    # The lock's database is never flushed (synchronous=OFF): an operating-system crash or
    # a power cut while a sweep holds it can leave it damaged, and then no sweep can take
    # the lock until the file is deleted. The error says which file and that it may go.
    path = tmp_path / "fleet.db"
    (tmp_path / "fleet.db-lock").write_bytes(b"SQLite format 3\0" + b"\xff" * 4080)
    store = Store(str(path))
    try:
        with pytest.raises(StoreError) as raised:
            store.lock("fleet sweep")
    finally:
        store.close()
    said = str(raised.value)
    assert f"{path}-lock" in said
    assert "damaged" in said
    assert "delete it" in said
