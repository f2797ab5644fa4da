"""The expiry date ssl's getpeercert() gives a certificate ("Nov  9 12:00:00 2027 GMT"),
read without `time.strptime`: its first use imports `_strptime` and compiles the locale's
date patterns, about 1 ms of a one-site scan (`ssl.cert_time_to_seconds` uses it).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# OpenSSL's ASN1_TIME_print form, which ssl's decoded certificate always has: the day padded
# with a space, whole seconds, GMT. Anything else is refused, as ssl.cert_time_to_seconds
# refuses what its strptime format does not match.
_CERT_TIME = re.compile(
    r"(?P<month>[A-Z][a-z]{2}) (?P<day>[ 1-3]\d) (?P<hour>\d\d):(?P<minute>\d\d):"
    r"(?P<second>\d\d) (?P<year>\d{4}) GMT"
)


def cert_time(text: str) -> datetime:
    """The moment, in UTC, that ssl.cert_time_to_seconds reads from the same text. Raises
    ValueError for a text not in OpenSSL's form (or a date that does not exist)."""
    match = _CERT_TIME.fullmatch(text)
    if match is None or match["month"] not in _MONTHS:
        raise ValueError(f"not a certificate time: {text!r}")
    try:
        return datetime(
            int(match["year"]),
            _MONTHS.index(match["month"]) + 1,
            int(match["day"]),
            int(match["hour"]),
            int(match["minute"]),
            int(match["second"]),
            tzinfo=UTC,
        )
    except ValueError as exc:  # "Nov 31", "24:00:00"
        raise ValueError(f"not a certificate time: {text!r} ({exc})") from None
