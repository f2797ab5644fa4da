"""Microsoft 365 facts the matrix depends on, kept in one place so they can change when
Microsoft changes them again (the Basic AUTH date has moved three times)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

# Microsoft disables Basic (password) authentication for SMTP AUTH client submission by
# default for existing tenants at the end of December 2026 (message center MC786329,
# version of 2026-01-29); admins can re-enable it until a final removal date announced
# for the second half of 2027.
BASIC_AUTH_SMTP_OFF = date(2026, 12, 31)
BASIC_AUTH_SOURCE = "Microsoft message center MC786329"

ALTERNATIVES = (
    "OAuth (XOAUTH2) where the copier supports it, a connector relay from a clean static IP, "
    "Microsoft 365 High Volume Email (smtp-hve.office365.com), or an SMTP relay service"
)


# Microsoft's own host names, and what its servers say about themselves: the one place that
# decides whether a server is Microsoft's (Exchange Online, EOP, Outlook.com).
_HOST_SUFFIXES = (
    "outlook.com",
    "office365.com",
    "office365.us",
    ".mx.microsoft",
    "outlook.cn",
)
_OWN_WORDS = ("Microsoft ESMTP", "protection.outlook.com")


def is_microsoft(host: str, texts: Iterable[str] = ()) -> bool:
    """Is this Microsoft's mail service, by its host name or by what it said?"""
    name = host.lower().rstrip(".")
    return name.endswith(_HOST_SUFFIXES) or any(w in t for t in texts for w in _OWN_WORDS)


# High Volume Email keeps Basic AUTH until September 2028 (internal recipients only): a
# password there is not retiring with client submission, and it is a way forward.
HVE_HOSTS = ("smtp-hve.office365.com", "smtp.hve.mx.microsoft")


def is_hve(host: str) -> bool:
    return host.lower().rstrip(".") in HVE_HOSTS


def basic_auth_notice(today: date) -> str:
    """The sentence about the Basic AUTH cut-off, right for the day it is read."""
    when = BASIC_AUTH_SMTP_OFF.strftime("%d %B %Y").lstrip("0")
    if today <= BASIC_AUTH_SMTP_OFF:
        days = (BASIC_AUTH_SMTP_OFF - today).days
        return (
            f"Microsoft turns Basic (password) AUTH for SMTP off by default on {when} "
            f"({days} days from now; {BASIC_AUTH_SOURCE})"
        )
    return (
        f"Microsoft turned Basic (password) AUTH for SMTP off by default on {when}; admins can "
        f"re-enable it only until the final removal ({BASIC_AUTH_SOURCE})"
    )
