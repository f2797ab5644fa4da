"""`--last` and the default `fleet diff` mean the last sweep of the inventory: a one-site
`fleet scan` (or `fleet sweep --site X`) run since does not take its place, and is still
reached by its id."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path

from fleet.lab.dns import LabDns

from .conftest import M365Lab, publish_spf, run_fleet_async
from .test_history import ZONE, history_inventory, sweep_json


def sites_of(csv_text: str) -> list[str]:
    return [row["site"] for row in csv.DictReader(io.StringIO(csv_text, newline=""))]


async def test_a_one_site_scan_does_not_become_the_last_sweep(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    inventory = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, 3))
    db = tmp_path / "fleet.db"

    # Given: a store whose only run is a one-site scan: that is the last sweep there is
    scan = await run_fleet_async("scan", "site-2", "-i", str(inventory), "--db", str(db), "-q")
    assert scan.code == 0, scan.stderr
    only = await run_fleet_async("report", "--db", str(db), "--last", "--format", "csv")
    assert sites_of(only.stdout) == ["site-2"]

    # ... then the nightly sweep of every site, then a one-site scan and a one-site sweep
    _, nightly = await sweep_json(inventory, db)
    runs = [
        await run_fleet_async("scan", "site-1", "-i", str(inventory), "--db", str(db), "-q"),
        await run_fleet_async(
            "sweep", "--site", "site-0", "-i", str(inventory), "--db", str(db), "-q"
        ),
    ]
    assert [r.code for r in runs] == [0, 0], runs[0].stderr
    history = await run_fleet_async("history", "--db", str(db))
    stored = [line.split()[0] for line in history.stdout.splitlines()[2:]]
    assert len(stored) == 4, history.stdout
    assert stored[2] == nightly.sweep.id
    scan_id = stored[1]

    # When the morning's report and diff are asked for the last sweep
    report = await run_fleet_async("report", "--db", str(db), "--last", "--format", "csv")
    default = await run_fleet_async("report", "--db", str(db), "--format", "json")
    diff = await run_fleet_async("diff", "--db", str(db), "--format", "json")
    by_id = await run_fleet_async("report", "--db", str(db), "--sweep", scan_id, "--format", "csv")

    # Then they are the nightly sweep's, and say which newer runs they passed over
    assert report.code == 0, report.stderr
    assert sites_of(report.stdout) == ["site-0", "site-1", "site-2"]
    assert json.loads(default.stdout)["sweep"]["id"] == nightly.sweep.id
    assert json.loads(diff.stdout)["to"] == nightly.sweep.id
    for run in (report, default, diff):
        assert "newer one-site run" in run.stderr, run.stderr
        assert stored[0] in run.stderr
        assert scan_id in run.stderr
    # ... while the scan is still there by its id
    assert sites_of(by_id.stdout) == ["site-1"]
    assert by_id.stderr == ""
