"""Check that fleet installs on Windows from wheels alone, and build the offline wheelhouse.

For each CPython the Windows support covers (3.11, 3.12, 3.13):

1. resolve fleet's runtime dependencies as Windows sees them (`uv pip compile
   --python-platform windows`: `uvloop; sys_platform != 'win32'` drops out, click's and
   tqdm's `colorama; platform_system == "Windows"` comes in). pip cannot do this step:
   with `--platform` it still evaluates markers for the machine it runs on;
2. `pip download --only-binary=:all: --platform win_amd64` every pinned requirement, so a
   dependency without a Windows wheel for that Python (one that would need a compiler on
   the technician's laptop) fails the check, naming it.

The wheels land in one folder with fleet's own wheel: copied to a Windows machine,
`py -m pip install --no-index --find-links <folder> fleet` installs with no network.
Needs the network (PyPI). Usage: python tools/windows_wheels.py [--wheelhouse DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHONS = ("3.11", "3.12", "3.13")


def run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603 (our own fixed commands)
    if done.returncode != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{done.stdout}{done.stderr}")
    return done.stdout


def windows_requirements(python: str) -> list[str]:
    """fleet's runtime dependencies, pinned, as CPython `python` on Windows x64 needs them."""
    env_uv = str(Path(sys.executable).with_name("uv"))
    out = run(
        env_uv if os.access(env_uv, os.X_OK) else "uv",
        "pip",
        "compile",
        str(ROOT / "pyproject.toml"),
        "--python-platform",
        "x86_64-pc-windows-msvc",
        "--python-version",
        python,
        "--only-binary",
        ":all:",
        "--no-python-downloads",
        "--no-header",
        "--no-annotate",
        "--quiet",
    )
    return [line.strip() for line in out.splitlines() if line.strip() and "==" in line]


def download(requirements: list[str], python: str, wheelhouse: Path) -> list[str]:
    """Download a win_amd64 (or pure Python) wheel of each; the names of the files."""
    tag = "cp" + python.replace(".", "")
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as listing:
        listing.write("\n".join(requirements) + "\n")
    try:
        before = set(os.listdir(wheelhouse))
        run(
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",  # resolved above, with Windows' markers
            "--only-binary=:all:",
            "--platform",
            "win_amd64",
            "--python-version",
            python,
            "--implementation",
            "cp",
            *("--abi", tag, "--abi", "abi3", "--abi", "none"),
            "--dest",
            str(wheelhouse),
            "--requirement",
            listing.name,
        )
    finally:
        os.unlink(listing.name)
    return sorted(set(os.listdir(wheelhouse)) - before)


def wheels_for(requirements: list[str], wheelhouse: Path, python: str) -> dict[str, str | None]:
    """For each requirement, the wheel in the folder that CPython `python` on win_amd64
    installs (None: there is none)."""
    from packaging.tags import Tag
    from packaging.utils import canonicalize_name, parse_wheel_filename

    tag = "cp" + python.replace(".", "")
    usable = {
        Tag(interpreter, abi, platform)
        for interpreter in (tag, "py3")
        for abi in (tag, "none")
        for platform in ("win_amd64", "any")
    }
    by_release: dict[tuple[str, str], str] = {}
    for wheel in wheelhouse.glob("*.whl"):
        name, version, _build, tags = parse_wheel_filename(wheel.name)
        # abi3: built once for the oldest CPython it supports, good for every later one
        stable = any(
            t.abi == "abi3"
            and t.platform == "win_amd64"
            and t.interpreter.startswith("cp")
            and int(t.interpreter[2:]) <= int(tag[2:])
            for t in tags
        )
        if tags & usable or stable:
            by_release[(name, str(version))] = wheel.name
    found: dict[str, str | None] = {}
    for requirement in requirements:
        wanted, _, pinned = requirement.partition("==")
        found[requirement] = by_release.get((canonicalize_name(wanted), pinned))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--wheelhouse", type=Path, help="keep the wheels here (default: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        wheelhouse: Path = args.wheelhouse or Path(scratch)
        wheelhouse.mkdir(parents=True, exist_ok=True)
        failed = False
        for python in PYTHONS:
            requirements = windows_requirements(python)
            download(requirements, python, wheelhouse)
            found = wheels_for(requirements, wheelhouse, python)
            built = sorted(
                str(wheel).split("-")[0]
                for wheel in found.values()
                if wheel and "win_amd64" in wheel
            )
            print(
                f"CPython {python} win_amd64: {len(requirements)} dependencies, "
                f"{sum(1 for w in found.values() if w)} with a wheel "
                f"({len(built)} built for Windows: {', '.join(built)})"
            )
            for requirement, wheel in found.items():
                if wheel is None:
                    print(f"  no win_amd64 wheel for CPython {python}: {requirement}")
                    failed = True
        if args.wheelhouse:
            run(
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--quiet",
                "--no-deps",
                "-w",
                str(wheelhouse),
                str(ROOT),
            )
            count = len(list(wheelhouse.glob("*.whl")))
            print(f"wheelhouse: {wheelhouse} ({count} wheels, fleet's own included)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
