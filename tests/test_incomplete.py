"""A sweep that did not sweep every planned site says so in every output, the CSV for
account managers included (what was not swept cannot be called fine)."""

from __future__ import annotations

import asyncio
import csv
import io
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import Tenant, m365_mx
from fleet.report.csv_report import DEVICE_COLUMNS, SITE_COLUMNS
from fleet.results import SweepResult

from .conftest import eventually, fleet_env, publish_spf, run_fleet_async
from .test_history import ONE_AT_A_TIME, ZONE, _count, history_inventory


def rows(text: str) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


@pytest.mark.slow  # several seconds
async def test_the_csv_of_a_killed_sweep_has_a_row_for_each_site_not_swept(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    # Given: a slow MX, and six sites swept one at a time
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.15)
    await slow.start()
    db = tmp_path / "fleet.db"
    try:
        inventory = write_inventory(
            history_inventory(lab_dns, slow.port, str(certs.ca_file), 6, concurrency=ONE_AT_A_TIME)
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleet",
            "sweep",
            "-i",
            str(inventory),
            "--db",
            str(db),
            "-q",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=fleet_env(),
        )
        # When the sweep is killed (kill -9, or a service's stop timeout) after two sites
        await eventually(
            lambda: db.exists() and _count(db, "SELECT COUNT(*) FROM site_results") >= 2
        )
        process.send_signal(signal.SIGKILL)
        await process.wait()
    finally:
        await slow.stop()
    stored = _count(db, "SELECT COUNT(*) FROM site_results")
    assert 2 <= stored < 6

    # ... and the morning's CSVs are rendered from the store
    by_device = await run_fleet_async("report", "--db", str(db), "--last", "--format", "csv")
    by_site = await run_fleet_async(
        "report", "--db", str(db), "--last", "--format", "csv", "--per-site"
    )

    # Then each has its usual columns, a row per site swept, and a row per site not swept
    # that says so, with the reason, as `unknown`
    for run, columns in ((by_device, DEVICE_COLUMNS), (by_site, SITE_COLUMNS)):
        assert run.code == 3, run.stderr
        header, found = rows(run.stdout)
        assert header == columns
        assert [r["site"] for r in found] == [f"site-{n}" for n in range(6)]
        missing = found[stored:]
        assert {r["verdict"] for r in missing} == {"unknown"}
        for row in missing:
            assert row["finding"].startswith("not swept: the sweep never finished"), row
            assert row["client"] == ""  # not known to the sweep's record
        assert all(
            r["finding"] and not r["finding"].startswith("not swept") for r in found[:stored]
        )


@pytest.mark.slow  # several seconds
async def test_ctrl_c_after_every_site_started_is_recorded_with_the_complete_sweep(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    # Given: four sites swept at once against a slow MX
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.3)
    await slow.start()
    db = tmp_path / "fleet.db"
    try:
        inventory = write_inventory(history_inventory(lab_dns, slow.port, str(certs.ca_file), 4))
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleet",
            "sweep",
            "-i",
            str(inventory),
            "--db",
            str(db),
            "-q",
            "--format",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=fleet_env(),
        )
        # When Ctrl-C comes once every site has started
        await eventually(lambda: len(set(slow.stats.peers)) >= 4)
        process.send_signal(signal.SIGINT)
        out, err = await asyncio.wait_for(process.communicate(), 30)
    finally:
        await slow.stop()

    # Then every site finished whole: the sweep is complete, and says the signal came
    assert b"SIGINT: finishing running sites" in err
    result = SweepResult.model_validate_json(out)
    assert len(result.sites) == 4
    assert result.sweep.complete is True
    assert result.sweep.sites_missing == []
    assert result.sweep.interrupted == "interrupted by SIGINT"
    assert process.returncode == 0, err  # every site ok: nothing unknown, nothing missing
    # ... and so does the table re-rendered from the store
    table = await run_fleet_async("report", "--db", str(db), "--last")
    headline = table.stdout.splitlines()[0]
    assert "interrupted by SIGINT" in headline
    assert "INCOMPLETE" not in headline
