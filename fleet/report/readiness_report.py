"""The Basic AUTH cut-off readiness view as table, CSV and JSON (see fleet.readiness)."""

from __future__ import annotations

import csv
import io
import json

from tabulate import tabulate

from fleet.readiness import Readiness
from fleet.report.sanitize import for_spreadsheet, for_terminal


def render_readiness_table(result: Readiness) -> str:
    lines = [result.headline, ""]
    if result.copiers:
        lines.append(
            tabulate(
                [
                    [
                        for_terminal(r.client, 30),
                        for_terminal(r.site),
                        for_terminal(r.device),
                        for_terminal(r.mailbox or "?"),
                        for_terminal(r.host),
                        "proven" if r.proven else "not proven",
                        for_terminal(r.way_forward or "-", 80),
                        "already off" if r.already_refused else "-",
                    ]
                    for r in result.copiers
                ],
                headers=[
                    "client",
                    "site",
                    "device",
                    "mailbox",
                    "host",
                    "way forward",
                    "how",
                    "basic auth",
                ],
                # names are text: "0042" stays "0042", "1,000" keeps its place (as table.py)
                disable_numparse=True,
            )
        )
    else:
        lines.append("No copier logs in to Microsoft 365 with a password.")
    return "\n".join(lines) + "\n"


def render_readiness_csv(result: Readiness) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    # already_refused came later: added at the end, so scripts reading by position still work
    header = ["client", "site", "device", "mailbox", "host", "proven", "way_forward"]
    writer.writerow([*header, "already_refused"])
    for r in result.copiers:
        writer.writerow(
            [
                for_spreadsheet(r.client),
                for_spreadsheet(r.site),
                for_spreadsheet(r.device),
                for_spreadsheet(r.mailbox or ""),
                for_spreadsheet(r.host),
                "yes" if r.proven else "no",
                for_spreadsheet(r.way_forward or ""),
                "yes" if r.already_refused else "no",
            ]
        )
    return out.getvalue()


def render_readiness_json(result: Readiness) -> str:
    body = result.model_dump(mode="json")
    body["headline"] = result.headline
    return json.dumps(body, indent=2) + "\n"
