"""Ingest's own checks of agent files (issue 17, items 6-8 and 13), through the command
line: forged and broken files whose digest is right (a file rewritten and sealed again,
as anyone can without the site's key on a central that has none)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fleet.agent import content_digest
from fleet.results import SweepResult

from .conftest import run_fleet_async
from .test_history import inventory  # noqa: F401 - the fixture


def count(db: Path, query: str) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute(query).fetchone()[0])


def sealed(document: dict[str, Any]) -> str:
    """The document with its digest made right again."""
    result = SweepResult.model_validate(document)
    document["sweep"]["digest"] = content_digest(result.sweep, result.sites)
    return json.dumps(document)


@pytest.fixture
async def agent_file(inventory: Path, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    """A real one-site agent result (site-1), as JSON."""
    path = tmp_path / "agent.json"
    run = await run_fleet_async(
        "sweep", "-i", str(inventory), "--site", "site-1", "--no-store",
        "--format", "json", "--output", str(path), "-q",
    )  # fmt: skip
    assert run.code == 0, run.stderr
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def variant(document: dict[str, Any], sweep_id: str, **sweep: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(document))
    copy["sweep"].update(id=sweep_id, **sweep)
    return copy


async def ingest(inventory: Path, db: Path, *files: Path, extra: tuple[str, ...] = ()) -> Any:  # noqa: F811
    return await run_fleet_async(
        "ingest", "-i", str(inventory), "--db", str(db), *extra, *map(str, files)
    )


async def test_a_sweep_dated_in_the_future_is_refused(
    inventory: Path,  # noqa: F811
    agent_file: dict[str, Any],
    tmp_path: Path,
) -> None:
    db = tmp_path / "central.db"
    real = tmp_path / "real.json"
    real.write_text(sealed(variant(agent_file, "20261129T000000Z-aaaaaa")))
    future = tmp_path / "future.json"
    forged = variant(
        agent_file,
        "20991231T000000Z-bbbbbb",
        started_at="2099-12-31T00:00:00Z",
        finished_at="2099-12-31T00:01:00Z",
    )
    future.write_text(sealed(forged))
    # When both are ingested
    run = await ingest(inventory, db, real, future)
    # Then the future one is refused, saying why, and the real one stays the last sweep
    assert run.code == 3, run.stderr
    assert "future.json: the sweep's start is 2099-12-31 00:00 UTC, in the future" in run.stderr
    assert count(db, "SELECT COUNT(*) FROM sweeps") == 1
    last = await run_fleet_async("report", "--last", "--db", str(db), "--format", "json")
    assert json.loads(last.stdout)["sweep"]["id"] == "20261129T000000Z-aaaaaa"
    # ... as is a site dated in the future inside a sweep dated today
    site_ahead = variant(agent_file, "20261129T000000Z-cccccc")
    site_ahead["sites"][0]["finished_at"] = "2099-01-01T00:00:00Z"
    ahead = tmp_path / "site-ahead.json"
    ahead.write_text(sealed(site_ahead))
    run = await ingest(inventory, db, ahead)
    assert run.code == 3
    assert "site 'site-1' end is 2099-01-01" in run.stderr


async def test_one_bad_file_does_not_stop_the_batch(
    inventory: Path,  # noqa: F811
    agent_file: dict[str, Any],
    tmp_path: Path,
) -> None:
    db = tmp_path / "central.db"
    files = []
    for n, started in enumerate(
        ("2026-11-28T01:00:00Z", "9999-12-31T23:59:59-05:00", "2026-11-28T02:00:00Z")
    ):
        path = tmp_path / f"batch-{n}.json"
        path.write_text(
            sealed(variant(agent_file, f"20261128T0{n}0000Z-00000{n}", started_at=started))
        )
        files.append(path)
    # When a batch holds a file whose start is in year 9999 between two good ones
    run = await ingest(inventory, db, *files)
    # Then that one is refused with a clear message, and the files after it are ingested
    assert run.code == 3, run.stderr
    assert "internal error" not in run.stderr
    assert "batch-1.json: the sweep's start is 9999-12-31" in run.stderr
    assert "batch-2.json: stored sweep" in run.stdout
    assert "1 of 3 file(s) refused" in run.stderr
    assert count(db, "SELECT COUNT(*) FROM sweeps") == 2


async def test_a_site_twice_in_one_file_is_refused(
    inventory: Path,  # noqa: F811
    agent_file: dict[str, Any],
    tmp_path: Path,
) -> None:
    db = tmp_path / "central.db"
    doubled = variant(agent_file, "20261129T000000Z-dddddd")
    critical = json.loads(json.dumps(doubled["sites"][0]))
    critical["verdict"] = "critical"
    doubled["sites"] = [critical, doubled["sites"][0]]  # the ok copy would win
    path = tmp_path / "twice.json"
    path.write_text(sealed(doubled))
    run = await ingest(inventory, db, path)
    assert run.code == 3, run.stdout
    assert "site 'site-1' is in the file twice" in run.stderr
    assert count(db, "SELECT COUNT(*) FROM site_results") == 0


async def test_ingest_refuses_a_file_above_its_size_cap(
    inventory: Path,  # noqa: F811
    agent_file: dict[str, Any],
    tmp_path: Path,
) -> None:
    db = tmp_path / "central.db"
    # A sound result, padded with 2 MB of white space after the JSON
    path = tmp_path / "padded.json"
    path.write_text(sealed(variant(agent_file, "20261129T000000Z-eeeeee")) + " " * (2 << 20))
    run = await ingest(inventory, db, path, extra=("--max-size", "1"))
    assert run.code == 3
    assert "padded.json: larger than 1 MB" in run.stderr
    assert count(db, "SELECT COUNT(*) FROM sweeps") == 0
    # ... and the cap can be raised
    run = await ingest(inventory, db, path, extra=("--max-size", "4"))
    assert run.code == 0, run.stderr
    assert count(db, "SELECT COUNT(*) FROM sweeps") == 1


def test_a_future_time_with_an_offset_is_reported_in_utc() -> None:
    """A time written with an offset is said in UTC, as the message claims (it printed the
    offset's local clock followed by "UTC")."""
    from datetime import UTC, datetime

    from fleet.agent import check_sane
    from fleet.errors import IngestError
    from fleet.results import SweepInfo

    info = SweepInfo.model_validate(
        {
            "id": "x",
            "started_at": "2099-12-31T23:30:00-05:00",
            "inventory": "i.yaml",
            "complete": True,
            "tool_version": "0",
            "sites_planned": 0,
        }
    )
    result = SweepResult(sweep=info, sites=[])
    now = datetime(2026, 11, 29, 13, 0, tzinfo=UTC)
    with pytest.raises(IngestError) as raised:
        check_sane(result, "ahead.json", now=now)
    assert "the sweep's start is 2100-01-01 04:30 UTC, in the future" in str(raised.value)
    assert "clock says 2026-11-29 13:00 UTC" in str(raised.value)
