"""Writing a report: the format, the file or stdout, and the views a report can take
(shared by the commands that sweep and the ones that read the history)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import click

from fleet.cli.app import Failure, colour_wanted, write_output, write_stream
from fleet.console import html_escapes_on_stdout, json_escapes_on_stdout

if TYPE_CHECKING:
    # Loaded when a report is written (start-up of `fleet validate` stays light).
    from fleet.results import SweepReading
    from fleet.store import SiteHistoryRow, Store


readiness_option = click.option(
    "--readiness",
    "readiness_view",
    is_flag=True,
    help="The Basic AUTH cut-off view instead: per copier that logs in to Microsoft 365 with a "
    "password, whether a way forward (OAuth, High Volume Email) is proven (table, csv, json).",
)


def trends(store: Store, until: datetime) -> Callable[[str], list[SiteHistoryRow]]:
    """Each site's past results for its trend strip, read from the store when drawn."""
    from fleet.report.html import TREND_LENGTH

    return lambda site: store.site_history(site, TREND_LENGTH, until=until)


def emit(
    result: SweepReading,
    result_format: str,
    output: str | None,
    *,
    detail: bool,
    per_site: bool,
    store: Store | None = None,
    readiness_view: bool = False,
) -> None:
    """Write the report. A stored sweep's sites are read from the store as they are written:
    JSON (every transcript) and CSV one site at a time. JSON is sealed with its digest for
    agent mode. HTML draws each site's trend from the store's history, when there is one.
    `readiness_view`: the Basic AUTH cut-off view (fleet.readiness) instead of the matrix.
    Each format loads its own modules: `fleet scan`'s table needs no JSON, CSV or seal."""
    from fleet.report import render

    if readiness_view:
        from fleet.readiness import readiness
        from fleet.report.readiness_report import (
            render_readiness_csv,
            render_readiness_json,
            render_readiness_table,
        )

        cutoff = readiness(result.sites)
        if result_format == "html":
            raise Failure("--readiness is shown as table, csv or json (the HTML report has it)")
        renderer = {
            "csv": render_readiness_csv,
            "json": render_readiness_json,
        }.get(result_format, render_readiness_table)
        write_output(renderer(cutoff), output, bom=result_format == "csv")
        return
    if result_format == "json":
        from fleet.agent import seal_reading
        from fleet.report.json_report import write_json

        with json_escapes_on_stdout():
            info = seal_reading(result)  # an agent's push reuses its digest
            write_stream(
                lambda out: write_json(
                    out, info, result.sites, result.changes, result.previous_sweep
                ),
                output,
            )
        return
    if result_format == "csv":
        from fleet.report.csv_report import write_csv

        write_stream(lambda out: write_csv(out, result, per_site=per_site), output, bom=True)
        return
    if result_format == "html":
        history = trends(store, result.sweep.started_at) if store is not None else None
        with html_escapes_on_stdout():
            write_output(render("html", result, history=history), output)
        return
    text = render(result_format, result, detail=detail, colour=colour_wanted(output))
    write_output(text, output)
