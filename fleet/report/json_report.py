"""JSON for machines: the whole typed sweep result, with every transcript."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from typing import TextIO

from fleet.results import Change, SiteResult, SweepInfo, SweepReading, SweepResult


def render_json(result: SweepReading) -> str:
    """The whole sweep as one JSON document (what `write_json` streams)."""
    out = io.StringIO()
    write_json(out, result.sweep, result.sites, result.changes, result.previous_sweep)
    return out.getvalue()


def write_json(
    out: TextIO,
    info: SweepInfo,
    sites: Iterable[SiteResult],
    changes: list[Change],
    previous: str | None,
) -> None:
    """The sweep's JSON document, written site by site (a big sweep is streamed from the
    store instead of being held in memory): the one JSON writer, byte for byte what
    `SweepResult.model_dump_json(indent=2)` gives."""

    def indented(text: str) -> str:
        return text.replace("\n", "\n    ")

    out.write('{\n  "sweep": ')
    out.write(info.model_dump_json(indent=2).replace("\n", "\n  "))
    out.write(',\n  "sites": [')
    wrote = False
    for site in sites:
        out.write(",\n    " if wrote else "\n    ")
        out.write(indented(site.model_dump_json(indent=2)))
        wrote = True
    out.write("\n  ]" if wrote else "]")
    out.write(',\n  "changes": [')
    for index, change in enumerate(changes):
        out.write(",\n    " if index else "\n    ")
        out.write(indented(change.model_dump_json(indent=2)))
    out.write("\n  ]" if changes else "]")
    out.write(f',\n  "previous_sweep": {json.dumps(previous)}\n}}\n')


def read_json(text: str) -> SweepResult:
    """A sweep result back from its JSON (raises fleet.results.ResultError if malformed)."""
    return SweepResult.model_validate_json(text)
