"""What `pip install fleet` brings is enough for every command but the demo: the `lab`
extra's libraries are imported only by the demo lab (fleet/lab), never by what a sweep,
a report, an alert or `fleet serve` runs (without the extra, `--format html` once ended in
"internal error: ModuleNotFoundError: jinja2")."""

from __future__ import annotations

import ast
import re
import tomllib

from .conftest import ROOT


def _module(requirement: str) -> str:
    name = re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0]
    return name.lower().replace("-", "_")


def test_only_the_demo_lab_imports_the_lab_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lab_only = {_module(r) for r in project["optional-dependencies"]["lab"]}
    runtime = {_module(r) for r in project["dependencies"]}
    assert "jinja2" in runtime
    assert lab_only, "the lab extra lists nothing"
    offenders = []
    for path in sorted((ROOT / "fleet").rglob("*.py")):
        if (ROOT / "fleet" / "lab") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"
                for name in names
                if name.split(".")[0] in lab_only
            ]
    assert offenders == []
