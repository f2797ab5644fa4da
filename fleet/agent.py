"""Agent mode: a sweep run at a site (by the MSP's RMM) produces a self-contained JSON
result that the central machine ingests as if it had swept the site itself.

The result carries a SHA-256 digest of its content, so a damaged or hand-edited file is
refused. Each site has its own key, derived on the central machine from a master key
(`fleet agent-key SITE_ID` prints it); the agent signs the digest with it (FLEET_AGENT_KEY
at the site), and the central checks every site of a file against that site's key. So an
agent can sign only for its own site, and the central needs to keep one secret, not one
per site.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import quote, unquote

from fleet.credentials import AGENT_KEY_ENV, AGENT_MASTER_KEY_ENV, warn_if_exposed
from fleet.errors import AgentKeyError, IngestError, Refusal
from fleet.report.sanitize import for_terminal
from fleet.results import ResultError, SiteResult, SweepInfo, SweepReading, SweepResult

if TYPE_CHECKING:  # annotations only: a scan from the inventory cache imports no pydantic
    from fleet.inventory import Inventory

KEY_ENV = AGENT_KEY_ENV
MASTER_KEY_ENV = AGENT_MASTER_KEY_ENV
# Versioned, so the derivation can change without an old site key passing for a new one.
_DERIVATION_LABEL = b"fleet agent key v1\0"
_MASTER_KEY_MIN_CHARS = 16


def derive_site_key(master: bytes, site_id: str) -> str:
    """The key the agent at `site_id` signs with: HMAC-SHA256 of the site's id under the
    master key, in hex (what `fleet agent-key` prints and FLEET_AGENT_KEY holds)."""
    return hmac.new(master, _DERIVATION_LABEL + site_id.encode("utf-8"), hashlib.sha256).hexdigest()


def load_master_key(key_file: str | None) -> bytes | None:
    """The central's master key: from `key_file` when given, else FLEET_AGENT_MASTER_KEY;
    None when neither is set."""
    if key_file is not None:
        try:
            with open(key_file, encoding="utf-8") as handle:
                warn_if_exposed(key_file, handle.fileno())
                value = handle.read().strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise AgentKeyError(f"cannot read the master key file {key_file}: {exc}") from None
        source = key_file
    else:
        value = os.environ.get(MASTER_KEY_ENV, "").strip()
        source = MASTER_KEY_ENV
        if not value:
            return None
    if len(value) < _MASTER_KEY_MIN_CHARS:
        raise AgentKeyError(
            f"the master key in {source} is too short ({len(value)} characters; at least "
            f"{_MASTER_KEY_MIN_CHARS}, e.g. `openssl rand -hex 32`)"
        )
    return value.encode("utf-8")


class SiteKeys:
    """The central's keys: every site's, derived from the master key on demand. Without a
    master key (`master` None) nothing can be verified and signatures are not checked."""

    def __init__(self, master: bytes | None) -> None:
        self.master = master
        self._cache: dict[str, bytes] = {}

    @property
    def checks(self) -> bool:
        return self.master is not None

    def key(self, site_id: str) -> bytes:
        if self.master is None:
            raise AgentKeyError("no master key: site keys cannot be derived")
        cached = self._cache.get(site_id)
        if cached is None:
            cached = derive_site_key(self.master, site_id).encode("ascii")
            self._cache[site_id] = cached
        return cached

    def signs(self, site_id: str, digest: str, signature: str) -> bool:
        expected = hmac.new(self.key(site_id), digest.encode(), hashlib.sha256).hexdigest()
        # As bytes: compare_digest raises on a str with non-ASCII letters (a forged file)
        return hmac.compare_digest(signature.encode(), expected.encode())

    def vouches(self, header: str, now: float) -> bool:
        """Whether a push's PUSH_HEADER proves a site's key, at about this time."""
        if self.master is None or len(header) > 600:
            return False
        parts = header.split(" ")
        if len(parts) != 3 or not parts[1].isdigit():
            return False
        site_id, when, mac = unquote(parts[0]), int(parts[1]), parts[2]
        if abs(now - when) > PUSH_HEADER_WINDOW_S:
            return False
        # Not self.key(): a stranger's made-up site ids must not fill the cache.
        key = derive_site_key(self.master, site_id).encode("ascii")
        return hmac.compare_digest(mac.encode(), _push_mac(key, site_id, when).encode())

    def check(self, result: SweepResult, name: str, inventory: Inventory) -> None:
        """Raise IngestError unless every site of `result` is signed with its own key."""
        if self.master is None:
            return
        digest, signature = result.sweep.digest, result.sweep.signature
        assert digest is not None  # noqa: S101 - read_agent_result checked it first
        if signature is None:
            raise IngestError(
                f"{name}: the result is not signed; this central takes only results signed "
                f"with their site's key (at the site, set {KEY_ENV} to what "
                "`fleet agent-key SITE_ID` prints here)",
                Refusal.unsigned,
            )
        for site in result.sites:
            if self.signs(site.site, digest, signature):
                continue
            label = for_terminal(site.site, 100)  # not yet known to be an inventory site
            signer = next(
                (s.id for s in inventory.sites if self.signs(s.id, digest, signature)), None
            )
            if signer is not None:
                raise IngestError(
                    f"{name}: signed with the key of site '{signer}', not of site '{label}' "
                    "that it holds results for: an agent may only send its own site's results",
                    Refusal.wrong_site,
                )
            raise IngestError(
                f"{name}: the signature does not match the key of site '{label}': not "
                f"produced by that site's agent, or its {KEY_ENV} is not the key "
                "`fleet agent-key` prints for it",
                Refusal.bad_signature,
            )


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_digest(info: SweepInfo, sites: Iterable[SiteResult]) -> str:
    """SHA-256 of the canonical JSON of {"sites": [...], "sweep": {...}}: every site and the
    whole sweep header (complete, missing sites...) but the digest, signature and origin.
    Computed site by site, so a sweep streamed from the store is never in memory at once."""
    digest = hashlib.sha256()
    digest.update(b'{"sites":[')
    for index, site in enumerate(sites):
        if index:
            digest.update(b",")
        digest.update(_canonical(site.model_dump(mode="json")).encode("utf-8"))
    header = info.model_dump(mode="json", exclude={"digest", "signature", "origin"})
    digest.update(f'],"sweep":{_canonical(header)}}}'.encode())
    return digest.hexdigest()


def _key() -> bytes | None:
    # A key pasted into an RMM's variable often carries a trailing newline: it is hex, so
    # white space is never part of it.
    key = os.environ.get(KEY_ENV, "").strip()
    if not key:
        return None
    return key.encode("utf-8")


# A push carries, besides its signed body, a header that proves the site's key before the
# body is read: the central reads bodies so vouched for in slots that connections without
# a key (which may send nothing) cannot hold. "<site, %-quoted> <unix time> <HMAC>".
PUSH_HEADER = "X-Fleet-Agent"
PUSH_HEADER_WINDOW_S = 900  # the agent's clock may be off; an old header is not reused


def push_headers(site_id: str, now: float) -> dict[str, str]:
    """The header for a push of `site_id`'s result (none without FLEET_AGENT_KEY)."""
    key = _key()
    if key is None:
        return {}
    when = int(now)
    return {PUSH_HEADER: f"{quote(site_id, safe='')} {when} {_push_mac(key, site_id, when)}"}


def _push_mac(key: bytes, site_id: str, when: int) -> str:
    message = f"fleet-push\n{site_id}\n{when}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def seal_info(info: SweepInfo, sites: Iterable[SiteResult]) -> SweepInfo:
    """The sweep's info with its digest (and signature, when FLEET_AGENT_KEY is set)."""
    return _signed(info, content_digest(info, sites))


def _signed(info: SweepInfo, digest: str) -> SweepInfo:
    key = _key()
    signature = hmac.new(key, digest.encode(), hashlib.sha256).hexdigest() if key else None
    return info.model_copy(update={"digest": digest, "signature": signature})


class _LastDigest(NamedTuple):
    reading: SweepReading  # held (and frozen), so that its id is never another reading's
    digest: str


_last_digest: list[_LastDigest] = []  # at most one: the last reading sealed


def seal_reading(reading: SweepReading) -> SweepInfo:
    """seal_info of a sweep as the reports read it, its digest computed once per reading: an
    agent asked for `--format json` seals the same sweep for its report and for its spool,
    and the digest reads every site and transcript (from the store, for a stored sweep).
    The signature follows FLEET_AGENT_KEY as it is now."""
    last = _last_digest[0] if _last_digest else None
    if last is not None and last.reading is reading:
        return _signed(reading.sweep, last.digest)
    digest = content_digest(reading.sweep, reading.sites)
    _last_digest[:] = [_LastDigest(reading, digest)]
    return _signed(reading.sweep, digest)


def seal(result: SweepResult) -> SweepResult:
    """The result with its digest (and signature, when FLEET_AGENT_KEY is set)."""
    return result.model_copy(update={"sweep": seal_info(result.sweep, result.sites)})


# An agent's clock may be off a little; a result dated further ahead would own `report
# --last`, `notify --last` and `diff` for good, and survive every prune.
CLOCK_SKEW = timedelta(hours=1)
# Nothing fleet stored was swept before this (and 0001-01-01 is no sweep either).
EARLIEST = datetime(2020, 1, 1, tzinfo=UTC)
# What an agent file may weigh by default (`fleet ingest --max-size`): a site's result with
# every transcript is some kilobytes; a file far larger is not one, and is not read whole.
MAX_FILE_MB = 16


def check_sane(result: SweepResult, name: str, now: datetime | None = None) -> None:
    """Raise IngestError for a result no sweep could have produced: times in the future
    (past the allowed clock skew) or before fleet existed, a sweep that finished before it
    started, a site twice."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    latest = now + CLOCK_SKEW
    sweep = result.sweep

    def aware(moment: datetime) -> datetime:
        """A time without a zone is read as UTC (comparing it with one raises)."""
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def said(moment: datetime) -> str:
        """The time in UTC, as the message claims; as written (with its offset) where UTC
        would be past year 9999."""
        try:
            return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
        except OverflowError:
            return f"{moment:%Y-%m-%d %H:%M %z}"

    def sane(moment: datetime | None, what: str) -> None:
        if moment is None:
            return
        when = aware(moment)
        if when > latest:
            raise IngestError(
                f"{name}: {what} is {said(when)}, in the future (this machine's "
                f"clock says {now:%Y-%m-%d %H:%M} UTC, and allows {CLOCK_SKEW} of skew): "
                "check the agent's clock"
            )
        if when < EARLIEST:
            raise IngestError(f"{name}: {what} is {when:%Y-%m-%d}: not a time a sweep ran")

    sane(sweep.started_at, "the sweep's start")
    sane(sweep.finished_at, "the sweep's end")
    if sweep.finished_at is not None and aware(sweep.finished_at) < aware(sweep.started_at):
        raise IngestError(f"{name}: the sweep finished before it started")
    seen: set[str] = set()
    for site in result.sites:
        label = for_terminal(site.site, 100)
        if site.site in seen:
            raise IngestError(
                f"{name}: site '{label}' is in the file twice: which of its results is true "
                "cannot be told, so none is stored"
            )
        seen.add(site.site)
        sane(site.started_at, f"site '{label}' start")
        sane(site.finished_at, f"site '{label}' end")


def read_agent_result(text: str, name: str, inventory: Inventory, keys: SiteKeys) -> SweepResult:
    """Parse and check an agent's result file (digest, sites, each site's signature when
    the central has a master key); raise IngestError saying what is wrong."""
    try:
        result = SweepResult.model_validate_json(text)
    except ResultError as exc:  # malformed JSON, or a key or value the result has not
        raise IngestError(
            f"{name}: not a fleet sweep result ({for_terminal(str(exc), 300)})"
        ) from None
    if result.sweep.digest is None:
        raise IngestError(
            f"{name}: the result has no digest (produce it with `fleet sweep --format json`)"
        )
    actual = content_digest(result.sweep, result.sites)
    if not hmac.compare_digest(result.sweep.digest.encode(), actual.encode()):
        raise IngestError(
            f"{name}: the content does not match its digest: the file was changed or damaged"
        )
    check_sane(result, name)
    if not result.sites:
        raise IngestError(f"{name}: the result holds no site")
    # The signature first: whoever has no site's key learns nothing of the inventory (which
    # sites it has, their clients) from the reason a push is refused.
    keys.check(result, name, inventory)
    clients = inventory.site_clients
    for site in result.sites:  # what the file says is printed: without its escapes
        client = clients.get(site.site)
        if client is None:
            raise IngestError(
                f"{name}: site '{for_terminal(site.site, 100)}' is not in the inventory",
                Refusal.unknown_site,
            )
        if client != site.client:
            raise IngestError(
                f"{name}: site '{site.site}' belongs to '{client}' in the inventory, "
                f"not '{for_terminal(site.client, 100)}'",
                Refusal.unknown_site,
            )
    return result
