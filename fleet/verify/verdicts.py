"""The receiver's verdict on a test message, read from its Authentication-Results header
(RFC 8601) and, for SPF, Received-SPF (RFC 7208 section 9.1)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.message import Message

METHODS = ("spf", "dkim", "dmarc", "compauth")

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"(?:^|[;\s])(spf|dkim|dmarc|compauth)\s*=\s*([A-Za-z]+)", re.I)
_COMPAUTH_REASON = re.compile(r"compauth\s*=\s*[A-Za-z]+\s+reason\s*=\s*(\w+)", re.I)
_RECEIVED_SPF = re.compile(r"^\s*([A-Za-z]+)")


@dataclass(frozen=True)
class Verdicts:
    spf: str | None = None
    dkim: str | None = None
    dmarc: str | None = None
    compauth: str | None = None
    compauth_reason: str | None = None
    header: str | None = None  # every Authentication-Results header, newest first


def read_verdicts(message: Message) -> Verdicts:
    """The first result per method (the newest header comes first: the receiver's own)."""
    headers = [_unfold(str(h)) for h in message.get_all("Authentication-Results") or []]
    found: dict[str, str] = {}
    reason = None
    for header in headers:
        plain = _COMMENT.sub(" ", header)
        for method, result in _RESULT.findall(plain):
            found.setdefault(method.lower(), result.lower())
        match = _COMPAUTH_REASON.search(plain)
        if match and reason is None:
            reason = match[1]
    received_spf = message.get("Received-SPF")
    if "spf" not in found and received_spf is not None:
        match = _RECEIVED_SPF.match(str(received_spf))
        if match:
            found["spf"] = match[1].lower()
    return Verdicts(
        spf=found.get("spf"),
        dkim=found.get("dkim"),
        dmarc=found.get("dmarc"),
        compauth=found.get("compauth"),
        compauth_reason=reason,
        header="\n".join(headers)
        or (f"Received-SPF: {_unfold(str(received_spf))}" if received_spf else None),
    )


def _unfold(value: str) -> str:
    return " ".join(value.split())
