"""JSON for machines: the whole typed sweep result, with every transcript."""

from __future__ import annotations

from fleet.results import SweepResult


def render_json(result: SweepResult) -> str:
    return result.model_dump_json(indent=2) + "\n"


def read_json(text: str) -> SweepResult:
    """A sweep result back from its JSON (raises pydantic.ValidationError if malformed)."""
    return SweepResult.model_validate_json(text)
