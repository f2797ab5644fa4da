"""The cut-off readiness view counts a copier Microsoft 365 already refuses as Basic AUTH
off (5.7.139): the cut-off reached its mailbox early, so it needs a way forward first."""

from __future__ import annotations

import csv
import io
import json

from fleet.readiness import readiness
from fleet.report.readiness_report import (
    render_readiness_csv,
    render_readiness_json,
    render_readiness_table,
)
from fleet.results import Category

from .test_oauth import SCANNER, _device, _site


def test_a_copier_already_refused_as_basic_auth_off_is_at_risk_and_said_so() -> None:
    # Given a retiring password copier, one refused 5.7.139 (Basic AUTH off, so the matrix
    # does not call it retiring), an oauth2 device proving the second one's mailbox, and a
    # 5.7.139-like refusal from a server that is not Microsoft's (not this cut-off)
    sites = [
        _site(
            "hq",
            [
                _device("mfp-a", "smtp.office365.com", SCANNER, "password", Category.ok),
                _device(
                    "mfp-b",
                    "smtp.office365.com",
                    "scan@fabrikam.test",
                    "password",
                    Category.auth_disabled,
                ),
                _device(
                    "mfp-c", "mail.example.net", "c@example.net", "password", Category.auth_disabled
                ),
            ],
            ["mfp-a"],
        ),
        _site(
            "pilot",
            [_device("try", "smtp.office365.com", "scan@fabrikam.test", "oauth2", Category.ok)],
            [],
        ),
    ]

    result = readiness(iter(sites))

    assert (result.at_risk, result.proven, result.already_refused) == (2, 1, 1)
    rows = {r.device: r for r in result.copiers}
    assert set(rows) == {"mfp-a", "mfp-b"}
    assert rows["mfp-b"].already_refused
    assert rows["mfp-b"].proven
    assert not rows["mfp-a"].already_refused
    headline = (
        "Basic AUTH cut-off: 2 copiers at risk (1 already refused), 1 with a proven way forward"
    )
    assert result.headline == headline
    assert headline in render_readiness_table(result)
    assert "already off" in render_readiness_table(result)
    body = json.loads(render_readiness_json(result))
    assert body["already_refused"] == 1
    assert {r["device"]: r["already_refused"] for r in body["copiers"]} == {
        "mfp-a": False,
        "mfp-b": True,
    }
    table = list(csv.DictReader(io.StringIO(render_readiness_csv(result))))
    assert {r["device"]: r["already_refused"] for r in table} == {"mfp-a": "no", "mfp-b": "yes"}


def test_without_refusals_the_headline_is_as_before() -> None:
    sites = [
        _site(
            "hq",
            [_device("mfp-a", "smtp.office365.com", SCANNER, "password", Category.ok)],
            ["mfp-a"],
        )
    ]
    result = readiness(iter(sites))
    assert result.headline == "Basic AUTH cut-off: 1 copiers at risk, 0 with a proven way forward"


def test_the_html_report_marks_a_copier_already_refused() -> None:
    from datetime import UTC, datetime

    from fleet.report.html import render_html
    from fleet.results import SweepInfo, SweepResult

    site = _site(
        "hq",
        [_device("mfp-b", "smtp.office365.com", SCANNER, "password", Category.auth_disabled)],
        [],
    )
    info = SweepInfo(
        id="20261129T000000Z-abcdef",
        started_at=datetime(2026, 11, 29, tzinfo=UTC),
        inventory="i.yaml",
        complete=True,
        tool_version="0",
        sites_planned=1,
    )
    page = render_html(SweepResult(sweep=info, sites=[site]))
    assert "Basic AUTH already off" in page


def test_the_table_shows_names_as_written_even_when_they_look_like_numbers() -> None:
    # A site named "0042" or "3.10", a device "1e5": text, not numbers to reformat
    sites = [
        _site(
            name,
            [_device(device, "smtp.office365.com", SCANNER, "password", Category.ok)],
            [device],
        )
        for name, device in (("0042", "1e5"), ("3.10", "1,000"))
    ]
    table = render_readiness_table(readiness(iter(sites)))
    rows = [line.split() for line in table.splitlines()[4:]]
    assert [row[1:3] for row in rows] == [["0042", "1e5"], ["3.10", "1,000"]]
