"""The sweep JSON's `rule` (#16): each device names the rule that decided its category, so a
reader of the JSON can tell a reading by a phrase from a status code's or the learned
reader's. Additive: a result stored before the key existed reads back with `rule` null."""

from __future__ import annotations

import json

from fleet.report.json_report import read_json, render_json
from fleet.results import Category

from .test_reports import fixed_sweep


def test_each_device_in_the_json_names_the_rule_that_decided_its_category() -> None:
    # Given the fixed sweep (its conversations decided by Microsoft 365's rules, or ok)
    sweep = fixed_sweep()

    # When it is written as JSON
    devices = {
        d["device"]: d for s in json.loads(render_json(sweep))["sites"] for d in s["devices"]
    }

    # Then every device carries `rule`, right after its category, and it is the rule of the
    # conversation it had: none for a device that sent fine
    assert all(list(d)[list(d).index("category") + 1] == "rule" for d in devices.values())
    assert devices["mfp-frontdesk"]["rule"] == "m365.banned_sending_ip"
    assert devices["mfp-backoffice"]["rule"] == "m365.banned_sending_ip"
    assert devices["konica-2f"]["rule"] == "m365.smtp_auth_disabled_tenant"
    assert all(d["rule"] is None for d in devices.values() if d["category"] == Category.ok.value)


def test_a_device_without_the_key_reads_back_with_no_rule() -> None:
    # Given the JSON of a sweep written before devices carried `rule`
    data = json.loads(render_json(fixed_sweep()))
    for site in data["sites"]:
        for device in site["devices"]:
            del device["rule"]

    # When it is read back
    sweep = read_json(json.dumps(data))

    # Then it loads, every device with no rule, and is otherwise the same sweep
    assert all(d.rule is None for s in sweep.sites for d in s.devices)
    assert [d.device for s in sweep.sites for d in s.devices] == [
        d.device for s in fixed_sweep().sites for d in s.devices
    ]
