"""The agent's way home: the spool, and delivering it to the central server.

A result is written to the spool first and removed only once the central answered 2xx
with its receipt for that result ({"status": "stored"|"already_stored", "sweep": its id}),
so neither a central that is down, nor an agent killed mid-push, nor a web site that is not
the central loses it. Delivery goes oldest first and stops at the first sign that the
central is unwell (no connection, a timeout, a 5xx, 408 or 429): what is left waits for the
next run. A refusal (another 4xx, or a 2xx without the receipt) is reported and the file
kept, for a person to look at; the files after it are still delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import re
import ssl
import threading
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
PUSH_TIMEOUT_S = 60.0  # for each connect, send and read
PUSH_DEADLINE_S = 300.0  # for one result's whole push, the answer included
ANSWER_LIMIT = 64 * 1024  # the central's answer is a line of JSON
RECEIPTS = ("stored", "already_stored")  # what `fleet serve` answers a result it holds
TEMPORARY = (408, 429)  # like a 5xx: the central is unwell or busy, the next run retries
NOT_A_RECEIPT = (
    "the answer is not the central's receipt for this result (another web site or a proxy "
    "answered?); give the central's base URL"
)
# Results waiting this long (the central unreachable night after night) need a person.
STUCK_AFTER_S = 48 * 3600.0
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
    base = base.rstrip("/")
    if base.endswith(RESULTS_PATH):  # the endpoint itself, as README's table names it
        base = base[: -len(RESULTS_PATH)]
    return base + RESULTS_PATH


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
        # Refused in this run: not sent again by its later push (`sweep --push` delivers
        # before the sweep and after it), still waiting for a person.
        self.held: set[Path] = set()
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise PushError(f"cannot use the spool folder {folder}: {exc}") from None
        self._drop_abandoned_writes()

    def _drop_abandoned_writes(self) -> None:
        """Remove what killed agents left half-written (never a sealed result: those are
        `*.json`, and only the central's receipt removes one)."""
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
    # The central could not be reached for a reason that does not pass by itself (its
    # certificate is not trusted: a TLS-inspecting firewall, an expired or renamed one).
    lasting: bool = False
    oldest_waiting_s: float = 0.0  # how long the oldest file left has waited
    skipped: str | None = None  # why this run's result was not spooled (nothing swept)

    @property
    def needs_a_person(self) -> bool:
        """A refusal, an untrusted certificate, or results waiting for days: retrying
        every night will not fix it."""
        return bool(self.refused) or self.lasting or self.oldest_waiting_s > STUCK_AFTER_S


# The headers that vouch for a push of a site's result at a time (fleet.agent's proof of
# the site's key), or none.
Vouch = Callable[[str, float], dict[str, str]]


def deliver(
    spool: Spool,
    url: str,
    *,
    timeout_s: float = PUSH_TIMEOUT_S,
    deadline_s: float = PUSH_DEADLINE_S,
    vouch: Vouch | None = None,
) -> Delivery:
    """Push every spooled result to `url`, oldest first; remove each only once the central
    answered with its receipt for that very result."""
    # A loop of our own in a thread of its own: the same from a command or from inside
    # the sweep's loop, and asyncio.timeout gives each push a deadline httpx cannot. A
    # daemon thread: Ctrl-C ends the agent at once (a file goes only on its receipt).
    outcome: list[Delivery] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(asyncio.run(_deliver(spool, url, timeout_s, deadline_s, vouch)))
        except BaseException as exc:  # handed to the caller's thread, raised there
            failure.append(exc)

    worker = threading.Thread(target=run, name="fleet-push", daemon=True)
    worker.start()
    worker.join()
    if failure:
        raise failure[0]
    return outcome[0]


async def _deliver(
    spool: Spool, url: str, timeout_s: float, deadline_s: float, vouch: Vouch | None
) -> Delivery:
    outcome = Delivery()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": f"fleet/{__version__}",
        "Accept-Encoding": "identity",  # the answer is read raw, at most ANSWER_LIMIT
    }
    async with httpx.AsyncClient(
        timeout=timeout_s, headers=headers, follow_redirects=False
    ) as client:
        for path in spool.pending():
            if path in spool.held:
                continue
            try:
                body = path.read_bytes()
            except FileNotFoundError:
                continue  # delivered by a push running alongside this one
            sweep_id, site_id = _identity(body)
            extra = vouch(site_id, time.time()) if vouch and site_id is not None else {}
            try:
                async with asyncio.timeout(deadline_s):
                    status, phrase, answer = await _post(client, url, body, extra)
            except TimeoutError:
                outcome.unreachable = f"{_origin(url)} did not answer within {deadline_s:.0f} s"
                break
            except httpx.HTTPError as exc:
                outcome.unreachable = f"cannot reach {_origin(url)}: {_describe(exc)}"
                outcome.lasting = _untrusted_certificate(exc)
                break
            if 200 <= status < 300 and _is_receipt(answer, sweep_id):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                outcome.delivered.append((path, status))
            elif 200 <= status < 300:
                outcome.refused.append((path, status, NOT_A_RECEIPT))
                spool.held.add(path)
            elif status >= 500 or status in TEMPORARY:
                outcome.unreachable = f"{_origin(url)} answered {status}: {_reason(answer, phrase)}"
                break
            else:
                outcome.refused.append((path, status, _reason(answer, phrase)))
                spool.held.add(path)
    left = spool.pending()
    outcome.waiting = len(left)
    outcome.oldest_waiting_s = _age(left[0]) if left else 0.0
    return outcome


async def _post(
    client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]
) -> tuple[int, str, bytes]:
    """POST the body (with `headers`); the status, its phrase and at most ANSWER_LIMIT
    bytes of the answer (a central or proxy gone wrong may send gigabytes)."""
    async with client.stream("POST", url, content=body, headers=headers) as response:
        answer = bytearray()
        async for chunk in response.aiter_raw():
            answer += chunk
            if len(answer) >= ANSWER_LIMIT:
                break
        return response.status_code, response.reason_phrase, bytes(answer[:ANSWER_LIMIT])


def _identity(body: bytes) -> tuple[str | None, str | None]:
    """A spooled result's sweep id (the central's receipt must name it) and its first
    site (whose key the push header proves)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None, None
    sweep = document.get("sweep") if isinstance(document, dict) else None
    sites = document.get("sites") if isinstance(document, dict) else None
    sweep_id = sweep.get("id") if isinstance(sweep, dict) else None
    first = sites[0] if isinstance(sites, list) and sites else None
    site = first.get("site") if isinstance(first, dict) else None
    return (
        sweep_id if isinstance(sweep_id, str) else None,
        site if isinstance(site, str) else None,
    )


def _is_receipt(answer: bytes, sweep_id: str | None) -> bool:
    """Whether the answer is what `fleet serve` answers a result it holds: anything else
    (a catch-all web site behind a mistyped path, a captive portal) did not store it."""
    try:
        receipt = json.loads(answer)
    except (ValueError, UnicodeDecodeError):
        return False
    return (
        isinstance(receipt, dict)
        and receipt.get("status") in RECEIPTS
        and sweep_id is not None
        and receipt.get("sweep") == sweep_id
    )


def _untrusted_certificate(exc: BaseException) -> bool:
    """Whether an ssl.SSLCertVerificationError is among the causes of `exc`."""
    seen: BaseException | None = exc
    for _ in range(10):  # the chain is short; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _age(path: Path) -> float:
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except OSError:
        return 0.0


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _reason(answer: bytes, phrase: str) -> str:
    """The central's reason, as one short printable line."""
    try:
        reason = str(json.loads(answer).get("reason", ""))
    except (ValueError, AttributeError, UnicodeDecodeError):
        reason = ""
    reason = reason or phrase or "no reason given"
    return "".join(ch if ch.isprintable() else " " for ch in reason)[:500]
