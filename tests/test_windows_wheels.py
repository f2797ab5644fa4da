"""The wheel check's own judgement (tools/windows_wheels.py), offline: which wheel a CPython
on win_amd64 would install, and that a dependency without one is named. (The check itself
runs against PyPI in .ci/run: `make windows-wheels-check`.)"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from .conftest import ROOT


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "windows_wheels", ROOT / "tools/windows_wheels.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


WHEELS = [
    "click-8.5.1-py3-none-any.whl",  # pure Python: any platform
    "cryptography-50.0.2-cp311-abi3-win_amd64.whl",  # stable ABI: 3.11 and later
    "pydantic_core-2.50.5-cp312-cp312-win_amd64.whl",  # built for 3.12 only
    "pydantic_core-2.50.5-cp313-cp313-win_amd64.whl",
    "uvloop-0.22.1-cp312-cp312-manylinux_2_17_x86_64.whl",  # not Windows
    "pycares-5.2.1-cp312-cp312-win32.whl",  # 32-bit Windows
]
REQUIREMENTS = [
    "click==8.5.1",
    "cryptography==50.0.2",
    "pydantic-core==2.50.5",
    "uvloop==0.22.1",
    "pycares==5.2.1",
]


@pytest.mark.parametrize(
    ("python", "missing"),
    [
        ("3.11", {"pydantic-core==2.50.5", "uvloop==0.22.1", "pycares==5.2.1"}),
        ("3.12", {"uvloop==0.22.1", "pycares==5.2.1"}),
        ("3.13", {"uvloop==0.22.1", "pycares==5.2.1"}),
    ],
)
def test_a_dependency_without_a_win_amd64_wheel_is_named(
    tool: ModuleType, tmp_path: Path, python: str, missing: set[str]
) -> None:
    for name in WHEELS:
        (tmp_path / name).touch()
    found = tool.wheels_for(REQUIREMENTS, tmp_path, python)
    assert {requirement for requirement, wheel in found.items() if wheel is None} == missing
    assert found["cryptography==50.0.2"] == "cryptography-50.0.2-cp311-abi3-win_amd64.whl"
    assert found["click==8.5.1"] == "click-8.5.1-py3-none-any.whl"
