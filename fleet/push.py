"""The agent's way home: the spool, and delivering it to the central server.

A result is written to the spool first and removed only once the central answered 2xx,
so neither a central that is down, nor an agent killed mid-push, loses it. Delivery goes
oldest first and stops at the first sign that the central is unwell (no connection, a
timeout, a 5xx or 429): what is left waits for the next run. A refusal (4xx) is reported
and the file kept, for a person to look at; the files after it are still delivered.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx
import platformdirs

from fleet import __version__
from fleet.atomic_file import replacing_text
from fleet.errors import PushError

RESULTS_PATH = "/api/v1/results"
PUSH_TIMEOUT_S = 60.0
# A result is written in milliseconds: a half-written file older than this was left by an
# agent that was killed mid-write, and nobody will finish it.
STALE_WRITE_S = 3600.0
_UNSAFE_NAME = re.compile(r"[^0-9A-Za-z._-]")


def default_spool_dir() -> Path:
    """The spool in the data folder of the account the agent runs as (beside fleet.db)."""
    return platformdirs.user_data_path("fleet") / "spool"


def results_url(base: str) -> str:
    """The central's results endpoint from its base URL; plain http only to loopback."""
    parts = urlsplit(base)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise PushError(f"--push {base!r}: expected the central's https:// URL")
    if parts.username or parts.password:
        raise PushError("--push: put no login in the URL; agents authenticate by their key")
    if parts.query or parts.fragment:
        raise PushError("--push: give the central's base URL, without a query or fragment")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise PushError(
            f"--push {base!r}: plain http:// is refused except to a loopback address; "
            "use https:// (results name clients, sites and their IPs)"
        )
    return base.rstrip("/") + RESULTS_PATH


def _is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Spool:
    """A folder of sealed results waiting for delivery, one file per sweep."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise PushError(f"cannot use the spool folder {folder}: {exc}") from None
        self._drop_abandoned_writes()

    def _drop_abandoned_writes(self) -> None:
        """Remove what killed agents left half-written (never a sealed result: those are
        `*.json`, and only a 2xx from the central removes one)."""
        cutoff = time.time() - STALE_WRITE_S
        for temp in self.folder.glob(".incoming-*.tmp"):
            with contextlib.suppress(OSError):
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()

    def add(self, sweep_id: str, write: Callable[[TextIO], object]) -> Path:
        """Write one result atomically (a crash never leaves half a file to deliver).
        Named by its sweep id, which starts with its UTC start time: names sort oldest
        first."""
        target = self.folder / f"{_UNSAFE_NAME.sub('_', sweep_id)}.json"
        try:
            # `.incoming-*.tmp`: what _drop_abandoned_writes looks for
            with replacing_text(target, prefix=".incoming-", durable=True) as handle:
                write(handle)
        except OSError as exc:
            raise PushError(f"cannot write to the spool folder {self.folder}: {exc}") from None
        return target

    def pending(self) -> list[Path]:
        """The results waiting, oldest first."""
        return sorted(self.folder.glob("*.json"))


@dataclass
class Delivery:
    """What became of the spool in one push."""

    delivered: list[tuple[Path, int]] = field(default_factory=list)
    refused: list[tuple[Path, int, str]] = field(default_factory=list)
    unreachable: str | None = None  # why delivery stopped early, when it did
    waiting: int = 0  # files left in the spool


def deliver(spool: Spool, url: str, *, timeout_s: float = PUSH_TIMEOUT_S) -> Delivery:
    """Push every spooled result to `url`, oldest first; remove each only after a 2xx."""
    outcome = Delivery()
    headers = {"Content-Type": "application/json", "User-Agent": f"fleet/{__version__}"}
    with httpx.Client(timeout=timeout_s, headers=headers, follow_redirects=False) as client:
        for path in spool.pending():
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue  # delivered by a push running alongside this one
            try:
                response = client.post(url, content=body)
            except httpx.HTTPError as exc:
                outcome.unreachable = f"cannot reach {_origin(url)}: {_describe(exc)}"
                break
            if response.is_success:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                outcome.delivered.append((path, response.status_code))
            elif response.status_code >= 500 or response.status_code == 429:
                outcome.unreachable = (
                    f"{_origin(url)} answered {response.status_code}: {_reason(response)}"
                )
                break
            else:
                outcome.refused.append((path, response.status_code, _reason(response)))
    outcome.waiting = len(spool.pending())
    return outcome


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _reason(response: httpx.Response) -> str:
    """The central's reason, as one short printable line."""
    try:
        reason = str(response.json().get("reason", ""))
    except (ValueError, AttributeError):
        reason = ""
    reason = reason or response.reason_phrase or "no reason given"
    return "".join(ch if ch.isprintable() else " " for ch in reason)[:500]
