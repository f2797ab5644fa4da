"""What a remediation text may mention about the device and the site."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fleet import m365
from fleet.judgement.evidence import blocklist_named, listed_domain
from fleet.results import Mode


@dataclass(frozen=True)
class Context:
    """What the remediation text may mention about the device and the site."""

    mode: Mode
    host: str
    port: int
    authenticated: bool
    ip: str | None = None
    username: str | None = None
    sender: str | None = None
    tls_max: str | None = None
    provider: str = "other"  # microsoft | google | other
    ehlo_name: str | None = None  # the name the probe gave in EHLO, as the copier would

    def fields(self, reply_text: str) -> dict[str, str]:
        listed_by = blocklist_named(reply_text)
        domain = listed_domain(reply_text)
        if domain is None:
            text = reply_text.lower()
            if re.search(r"\b(?:helo|ehlo)\b", text) and self.ehlo_name:
                domain = self.ehlo_name
            elif re.search(r"mail ?from|sender|envelope", text) and self.sender:
                domain = self.sender.rpartition("@")[2]
        return {
            "listed_domain": domain
            or "a domain of this mail (the sender's, the EHLO name or a link)",
            "ehlo_name": repr(self.ehlo_name) if self.ehlo_name else "the copier's EHLO name",
            "ip": self.ip or "the site's public IP",
            "host": self.host,
            "port": str(self.port),
            "endpoint": f"{self.host}:{self.port}",
            "mailbox": self.username or "the copier's mailbox",
            "sender": self.sender or "the sender address",
            "submission": SUBMISSION_BY_PROVIDER.get(
                self.provider, SUBMISSION_BY_PROVIDER["other"]
            ),
            "list": listed_by or "a blocklist",
            "tls_max": self.tls_max or "its newest",
        }


SUBMISSION_BY_PROVIDER = {
    "microsoft": "smtp.office365.com:587",
    "google": "smtp.gmail.com:587 (or smtp-relay.gmail.com)",
    "other": "the provider's submission service on port 587",
}


def provider_of(host: str, texts: list[str]) -> str:
    """Whose mail service this is, from the host name or the server's own words."""
    if m365.is_microsoft(host, texts):
        return "microsoft"
    host = host.lower()
    joined = "\n".join(texts)
    if host.endswith(("gmail.com", "google.com", "googlemail.com")) or "gsmtp" in joined:
        return "google"
    return "other"
