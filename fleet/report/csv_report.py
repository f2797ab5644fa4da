"""CSV for account managers: one row per device (or per site), safe to open in Excel."""

from __future__ import annotations

import csv
import io
from typing import TextIO

from fleet.report.sanitize import for_spreadsheet
from fleet.report.summary import blocklist_summary, check_results, top
from fleet.results import SweepReading

DEVICE_COLUMNS = [
    "sweep_time",
    "client",
    "site",
    "device",
    "model",
    "location",
    "mode",
    "verdict",
    "finding",
    "recommended_action",
    "failed_stage",
    "reply_code",
    "reply_enhanced",
    "reply_text",
    "egress_ip",
    "blocklists",
    "flags",
    "mx_check",
    "spf_check",
]

SITE_COLUMNS = [
    "sweep_time",
    "client",
    "site",
    "site_name",
    "verdict",
    "top_flag",
    "finding",
    "recommended_action",
    "egress_ip",
    "blocklists",
    "devices",
    "devices_failing",
    "flags",
    "mx_check",
    "spf_check",
]


def _or_not_checked(text: str) -> str:
    # The table's "-" would need neutralising in a spreadsheet (it starts like a formula).
    return "not checked" if text == "-" else text


def render_csv(sweep: SweepReading, *, per_site: bool = False) -> str:
    """UTF-8 text with a header row and ISO times; write it with a BOM for Excel."""
    buffer = io.StringIO()
    write_csv(buffer, sweep, per_site=per_site)
    return buffer.getvalue()


def not_swept(result: SweepReading) -> str:
    """The finding of a planned site an incomplete sweep never swept."""
    reason = result.sweep.interrupted
    return f"not swept: {reason}" if reason else "not swept"


def write_csv(out: TextIO, result: SweepReading, *, per_site: bool = False) -> None:
    """The CSV, written row by row as the sites are read, then a row per planned site the
    sweep never swept (`unknown`: a spreadsheet has no headline to say it was incomplete;
    its client is not in the sweep's record)."""
    writer = csv.writer(out, lineterminator="\r\n")
    when = result.sweep.started_at.isoformat(timespec="seconds")
    missing = [] if result.sweep.complete else result.sweep.sites_missing
    again = "Sweep it again (fleet sweep --site {})."
    if per_site:
        writer.writerow(SITE_COLUMNS)
        for site in result.sites:
            first = top(site)
            failing = [d.device for d in site.devices if d.verdict.value in ("critical", "unknown")]
            row = [
                when,
                site.client,
                site.site,
                site.name,
                site.verdict.value,
                first.code if first else "",
                first.evidence if first else "no problem found",
                first.remediation if first else "",
                site.egress_ip,
                _or_not_checked(blocklist_summary(site)),
                len(site.devices),
                len(failing),
                " ".join(f.code for f in site.flags),
                _or_not_checked(check_results(site, "mx")),
                _or_not_checked(check_results(site, "spf")),
            ]
            writer.writerow([for_spreadsheet(v) for v in row])
        for site_id in missing:
            row = [when, "", site_id, "", "unknown", "", not_swept(result), again.format(site_id)]
            row += ["", "not checked", "", "", "", "not checked", "not checked"]
            writer.writerow([for_spreadsheet(v) for v in row])
        return
    writer.writerow(DEVICE_COLUMNS)
    for site in result.sites:
        for device in site.devices:
            reply = device.reply
            codes = " ".join(f.code for f in site.flags if device.device in f.devices)
            row = [
                when,
                site.client,
                site.site,
                device.device,
                device.model,
                device.location,
                device.mode.value,
                device.verdict.value,
                device.finding,
                device.remediation or "",
                device.failed_stage.value if device.failed_stage else "",
                reply.code if reply else "",
                reply.enhanced if reply else "",
                reply.text if reply else "",
                site.egress_ip,
                _or_not_checked(blocklist_summary(site)),
                codes,
                _or_not_checked(check_results(site, "mx", device.device)),
                _or_not_checked(check_results(site, "spf", device.device)),
            ]
            writer.writerow([for_spreadsheet(v) for v in row])
    for site_id in missing:
        row = [when, "", site_id, "", "", "", "", "unknown", not_swept(result)]
        row += [again.format(site_id), "", "", "", "", "", "not checked", ""]
        row += ["not checked", "not checked"]
        writer.writerow([for_spreadsheet(v) for v in row])
