"""Renderers: pure functions from a sweep result to text for people and machines."""

from __future__ import annotations

from fleet.report.csv_report import render_csv
from fleet.report.html import History, render_email_html, render_html
from fleet.report.json_report import render_json
from fleet.report.table import render_table
from fleet.results import SweepResult, SweepView

FORMATS = ("table", "csv", "json", "html")


def render(
    result_format: str,
    result: SweepResult | SweepView,
    *,
    detail: bool = False,
    per_site: bool = False,
    colour: bool = False,
    history: History | None = None,
) -> str:
    """Render a sweep in one of FORMATS (`history`: the trend strips of the HTML page)."""
    if result_format == "csv":
        return render_csv(result, per_site=per_site)
    if result_format == "json":
        if isinstance(result, SweepView):
            raise TypeError("a streamed sweep is written with report.json_report.write_json")
        return render_json(result)
    if result_format == "html":
        return render_html(result, history=history)
    return render_table(result, detail=detail, colour=colour)


__all__ = [
    "FORMATS",
    "render",
    "render_csv",
    "render_email_html",
    "render_html",
    "render_json",
    "render_table",
]
