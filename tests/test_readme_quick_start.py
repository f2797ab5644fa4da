"""The README's quick start works as written: after `make demo`, the next commands call
`fleet`, which `make` installed in .venv (not on PATH): the README must say so."""

from __future__ import annotations

from .conftest import ROOT


def test_the_quick_start_says_how_to_reach_fleet_after_make_demo() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Quick start")
    after_demo = readme[readme.index("Then, on your own inventory", start) :]
    before_commands = after_demo[: after_demo.index("fleet validate")]
    assert ".venv/bin/activate" in before_commands
    assert ".venv/bin/fleet" in before_commands
