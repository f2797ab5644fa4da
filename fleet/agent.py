"""Agent mode: a sweep run at a site (by the MSP's RMM) produces a self-contained JSON
result that the central machine ingests as if it had swept the site itself.

The result carries a SHA-256 digest of its content, so a damaged or hand-edited file is
refused. With FLEET_AGENT_KEY set on both machines the digest is also signed (HMAC),
so a file not produced by a holder of the key is refused too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from fleet.credentials import remember
from fleet.inventory import Inventory
from fleet.report.sanitize import for_terminal
from fleet.results import SiteResult, SweepInfo, SweepResult

KEY_ENV = "FLEET_AGENT_KEY"


class IngestError(Exception):
    """An agent result that must not be stored, with the reason."""


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
    key = os.environ.get(KEY_ENV)
    if not key:
        return None
    remember(key)
    return key.encode("utf-8")


def seal_info(info: SweepInfo, sites: Iterable[SiteResult]) -> SweepInfo:
    """The sweep's info with its digest (and signature, when FLEET_AGENT_KEY is set)."""
    digest = content_digest(info, sites)
    key = _key()
    signature = hmac.new(key, digest.encode(), hashlib.sha256).hexdigest() if key else None
    return info.model_copy(update={"digest": digest, "signature": signature})


def seal(result: SweepResult) -> SweepResult:
    """The result with its digest (and signature, when FLEET_AGENT_KEY is set)."""
    return result.model_copy(update={"sweep": seal_info(result.sweep, result.sites)})


def read_agent_result(text: str, name: str, inventory: Inventory) -> SweepResult:
    """Parse and check an agent's result file; raise IngestError saying what is wrong."""
    try:
        result = SweepResult.model_validate_json(text)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = for_terminal(".".join(str(p) for p in first["loc"]), 200) or "the document"
        raise IngestError(
            f"{name}: not a fleet sweep result ({exc.error_count()} problems; first: {where}: "
            f"{for_terminal(first['msg'], 300)})"
        ) from None
    if result.sweep.digest is None:
        raise IngestError(
            f"{name}: the result has no digest (produce it with `fleet sweep --format json`)"
        )
    if not hmac.compare_digest(result.sweep.digest, content_digest(result.sweep, result.sites)):
        raise IngestError(
            f"{name}: the content does not match its digest: the file was changed or damaged"
        )
    key = _key()
    if key is not None:
        expected = hmac.new(key, result.sweep.digest.encode(), hashlib.sha256).hexdigest()
        if result.sweep.signature is None or not hmac.compare_digest(
            result.sweep.signature, expected
        ):
            raise IngestError(
                f"{name}: the signature does not match {KEY_ENV}: not produced by a trusted agent"
            )
    known = {site.id: site for site in inventory.sites}
    for site in result.sites:  # what the file says is printed: without its escapes
        if site.site not in known:
            raise IngestError(
                f"{name}: site '{for_terminal(site.site, 100)}' is not in the inventory"
            )
        if known[site.site].client != site.client:
            raise IngestError(
                f"{name}: site '{site.site}' belongs to '{known[site.site].client}' in the inventory, "
                f"not '{for_terminal(site.client, 100)}'"
            )
    if not result.sites:
        raise IngestError(f"{name}: the result holds no site")
    return result
