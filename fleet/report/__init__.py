"""Renderers: pure functions from a sweep result to text for people and machines.

Each renderer's module loads when it is first used: the command line reads FORMATS to
build its options, and `fleet validate` renders nothing (issue 20: start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleet.report.csv_report import render_csv
    from fleet.report.html import History, render_email_html, render_html
    from fleet.report.json_report import render_json
    from fleet.report.table import render_table
    from fleet.results import SweepReading

FORMATS = ("table", "csv", "json", "html")

_LAZY = {
    "render_csv": "fleet.report.csv_report",
    "render_email_html": "fleet.report.html",
    "render_html": "fleet.report.html",
    "render_json": "fleet.report.json_report",
    "render_table": "fleet.report.table",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def render(
    result_format: str,
    result: SweepReading,
    *,
    detail: bool = False,
    per_site: bool = False,
    colour: bool = False,
    history: History | None = None,
) -> str:
    """Render a sweep in one of FORMATS (`history`: the trend strips of the HTML page)."""
    if result_format == "csv":
        from fleet.report.csv_report import render_csv

        return render_csv(result, per_site=per_site)
    if result_format == "json":
        from fleet.report.json_report import render_json

        return render_json(result)
    if result_format == "html":
        from fleet.report.html import render_html

        return render_html(result, history=history)
    from fleet.report.table import render_table

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
