"""Run the fleet command line as Windows would, on Linux: what Windows lacks is taken away
before fleet is imported.

- `fcntl`, `termios`, `pwd`, `grp`, `resource` and `uvloop` cannot be imported;
- the event loop's `add_signal_handler` raises NotImplementedError, as on Windows' loops,
  and so do `add_reader`/`add_writer`, as on its default (proactor) loop;
- stdout is in cp1252 with errors="strict" and stderr in cp1252 with "backslashreplace",
  as Windows gives them to a process whose output an RMM agent or a file captures, without
  PYTHONIOENCODING.

The child is `python -c SHIM ARGS...`, so nothing of this reaches other tests.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from .conftest import Run, fleet_env

SHIM = """\
import asyncio.unix_events
import sys

for name in ("fcntl", "termios", "pwd", "grp", "resource", "uvloop"):
    sys.modules[name] = None  # import fails with ModuleNotFoundError, as on Windows


def _not_on_windows(self, *args):
    raise NotImplementedError  # what Windows' loops do (the proactor: no fd watching either)


asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = _not_on_windows
asyncio.unix_events._UnixSelectorEventLoop.remove_signal_handler = _not_on_windows
# Windows' default (proactor) loop cannot watch file descriptors either: a library that
# needs to (aiodns without c-ares' own thread) must fail here as it would there.
asyncio.unix_events._UnixSelectorEventLoop.add_reader = _not_on_windows
asyncio.unix_events._UnixSelectorEventLoop.add_writer = _not_on_windows
sys.stdout.reconfigure(encoding="cp1252", errors="strict")
sys.stderr.reconfigure(encoding="cp1252", errors="backslashreplace")

from fleet.cli import main

main()
"""


def windows_env(**extra: str) -> dict[str, str]:
    env = fleet_env(**extra)
    env.pop("PYTHONIOENCODING", None)
    env.pop("PYTHONUTF8", None)
    return env


async def start_windows_like(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SHIM,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or windows_env(),
        cwd=cwd,
    )


async def run_windows_like(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, limit_s: float = 120
) -> Run:
    """Run fleet Windows-like to the end; stdout and stderr decoded as cp1252 (strictly:
    bytes that are not cp1252 fail the test)."""
    process = await start_windows_like(*args, env=env, cwd=cwd)
    try:
        out, err = await asyncio.wait_for(process.communicate(), limit_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Run(process.returncode, out.decode("cp1252"), err.decode("cp1252"))


def no_traceback(run: Run) -> None:
    """Nothing a Windows user would see as a crash."""
    for sign in ("Traceback", "UnicodeEncodeError", "ModuleNotFoundError", "internal error"):
        assert sign not in run.stderr, run.stderr
