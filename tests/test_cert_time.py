"""fleet.cert_time reads a certificate's expiry as ssl.cert_time_to_seconds does."""

from __future__ import annotations

import calendar
import random
import ssl
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from fleet.cert_time import cert_time


def ssl_reading(text: str) -> datetime:
    return datetime.fromtimestamp(ssl.cert_time_to_seconds(text), UTC)


def test_every_form_openssl_prints_reads_as_ssl_reads_it() -> None:
    pick = random.Random(20)  # noqa: S311 - test data, not a secret
    moments = [datetime(1970, 1, 1, tzinfo=UTC), datetime(2049, 12, 31, 23, 59, 59, tzinfo=UTC)]
    start = datetime(1970, 1, 1, tzinfo=UTC)
    moments += [start + timedelta(seconds=pick.randrange(130 * 365 * 86400)) for _ in range(5000)]
    for moment in moments:
        # OpenSSL's ASN1_TIME_print: the day padded with a space ("Nov  9")
        text = f"{calendar.month_abbr[moment.month]} {moment.day:2d} {moment:%H:%M:%S} {moment.year} GMT"
        assert cert_time(text) == ssl_reading(text), text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Nov 29 12:00:00 2027",  # no zone
        "Nov 29 12:00:00 2027 UTC",
        "Nov 29 12:00:00.5 2027 GMT",  # fractional seconds
        "Foo 29 12:00:00 2027 GMT",
        "Nov 31 12:00:00 2027 GMT",  # no such day
        "Nov 00 12:00:00 2027 GMT",
        "Nov 29 24:00:00 2027 GMT",
        "Nov 29 12:00:00 2027 GMT trailing",
    ],
)
def test_what_is_not_openssls_form_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a certificate time"):
        cert_time(text)


def test_reading_loads_no_strptime() -> None:
    # what the module is for: the scan's start-up does not import _strptime for it
    code = (
        "import sys; from fleet.cert_time import cert_time; "
        "cert_time('Nov  9 12:00:00 2027 GMT'); print('_strptime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
