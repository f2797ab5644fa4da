"""Starting the lab's daemons in the background and stopping them again by PID.

Every PID the lab starts is written to a file in the run folder, so `make lab-down` (a
new process) stops what `make lab-up` started. A PID is signalled only while its command
line still names the program the lab started, so a reused PID is never killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Tracked:
    """One process the lab started: its name, PID, the program it runs, and whether it
    leads a session of children (Postfix's master and its daemons)."""

    name: str
    pid: int
    program: str
    session: bool = False


def start_background(name: str, command: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start a long-running program in its own session, its output in `log`."""
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def is_running(pid: int, program: str | None = None) -> bool:
    """Alive (zombies are not) and, if given, still running `program`."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    if state.rsplit(")", 1)[1].split()[0] == "Z":
        return False
    return program is None or program.encode() in cmdline


def session_members(sid: int) -> list[int]:
    """Live processes in session `sid` (a Postfix master's daemons)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # fields: state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) == sid:
            members.append(int(entry.name))
    return members


def alive(process: Tracked) -> list[int]:
    """The PIDs of `process` (and, for a session leader, its children) still running."""
    pids = [process.pid] if is_running(process.pid, process.program) else []
    # Children outlive a killed leader for a moment; but if the PID now belongs to another
    # program, the session is someone else's.
    if process.session and (pids or not is_running(process.pid)):
        pids += [p for p in session_members(process.pid) if p != process.pid]
    return pids


def survivors(started: list[Tracked]) -> list[str]:
    """Which of `started` (and their children) still run: none, after the lab stopped."""
    return [f"{p.name} (pid {pid})" for p in started for pid in alive(p)]


def stop(
    process: Tracked, reap: subprocess.Popen[bytes] | None = None, timeout_s: float = 5
) -> None:
    """SIGTERM, then SIGKILL after `timeout_s`; for a session leader, the whole session."""
    if is_running(process.pid, process.program):
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while alive(process) and time.monotonic() < deadline:
        if reap is not None:
            reap.poll()
        time.sleep(0.01)
    for pid in alive(process):
        _signal(pid, signal.SIGKILL)
    if reap is not None:
        reap.wait(timeout_s)
    deadline = time.monotonic() + timeout_s
    while alive(process) and time.monotonic() < deadline:
        time.sleep(0.01)


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None
