"""`fleet sweep --dry-run --format json`: the plan as JSON for scripts (it was the text)."""

from __future__ import annotations

import json

from .conftest import ROOT, run_fleet


def test_dry_run_as_json_is_the_deduplicated_plan() -> None:
    run = run_fleet(
        "sweep", "-i", str(ROOT / "inventory.example.yaml"), "--dry-run", "--format", "json"
    )
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)
    assert plan["dry_run"] is True
    assert plan["counts"] == {
        "sites": 4,
        "devices": 7,
        "conversations": 6,
        "zones": 2,
        "declared_ips": 2,
        "lookups": 4,
        "self_tests": 4,
    }
    sites = {s["site"]: s for s in plan["sites"]}
    branch = sites["contoso-branch"]
    assert branch["client"] == "Contoso Dental"
    assert branch["via"] == "socks5://10.20.0.5:1080"
    assert branch["expected_ip"] == "198.51.100.23"
    assert sites["northwind-office"]["bind"] == "192.0.2.10"
    shared = [c for c in sites["contoso-hq"]["conversations"] if len(c["devices"]) == 2]
    assert shared[0]["devices"] == ["mfp-frontdesk", "mfp-backoffice"]
    assert {"mode", "host", "port", "security", "mail_from", "rcpt_to"} <= shared[0].keys()
    assert plan["send_test"] is False
    assert len(plan["blocklists"]) == 2


def test_dry_run_as_json_honours_filters_and_send_test() -> None:
    run = run_fleet(
        "sweep",
        "-i",
        str(ROOT / "inventory.example.yaml"),
        "--dry-run",
        "--format",
        "json",
        "--client",
        "contoso dental",
        "--send-test",
    )
    assert run.code == 0, run.stderr
    plan = json.loads(run.stdout)
    assert [s["client"] for s in plan["sites"]] == ["Contoso Dental", "Contoso Dental"]
    assert plan["send_test"] is True
