"""The one system file the lab touches: /etc/postfix/main.cf.

As root, `postfix -c DIR` refuses a configuration directory that the default main.cf does
not list in `alternate_config_directories`. While a lab runs, this module appends a marked
block to that file naming the lab's directory; when the lab stops, it takes the directory
out again, and with the last one the block (and the file itself, if the lab created it), so
the file is restored byte for byte. The block names every running lab's directory, so two
labs (two test sessions) can run at once; a lock serialises the edits.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAIN_CF = Path("/etc/postfix/main.cf")

_BEGIN = "# >>> fleet lab"
_END = "# <<< fleet lab\n"
_BLOCK = re.compile(
    r"# >>> fleet lab created=(?P<created>yes|no) newline=(?P<newline>yes|no)[^\n]*\n"
    r"# lab directories: (?P<dirs>[^\n]*)\n"
    r"[^\n]*\n"
    r"# <<< fleet lab\n"
)
_PARAMETER = re.compile(r"^alternate_config_directories\s*=(?P<value>.*(?:\n[ \t].*)*)", re.M)


@dataclass(frozen=True)
class Original:
    """main.cf as it was before any lab touched it (None: there was no file)."""

    text: str | None
    lab_directories: tuple[str, ...]


def read_original(main_cf: Path = MAIN_CF) -> Original:
    """The file without the lab's block, and the lab directories the block names."""
    return original_of(snapshot(main_cf))


def original_of(content: bytes | None) -> Original:
    """What main.cf with this content was before any lab touched it."""
    if content is None:
        return Original(None, ())
    text = content.decode("utf-8")
    match = _BLOCK.search(text)
    if match is None:
        return Original(text, ())
    start = match.start() - (1 if match["newline"] == "yes" else 0)
    original = text[:start] + text[match.end() :]
    directories = tuple(match["dirs"].split())
    if match["created"] == "yes" and not original:
        return Original(None, directories)
    return Original(original, directories)


def allow_config_directory(directory: Path, main_cf: Path = MAIN_CF) -> None:
    """List `directory` in main.cf's alternate_config_directories (idempotent)."""
    with _locked(main_cf):
        original = read_original(main_cf)
        wanted = [d for d in original.lab_directories if Path(d).exists()]
        if str(directory) not in wanted:
            wanted.append(str(directory))
        _write(main_cf, original, wanted)


def disallow_config_directory(directory: Path, main_cf: Path = MAIN_CF) -> None:
    """Take `directory` out again; the last one out restores the original file."""
    with _locked(main_cf):
        if not main_cf.exists():
            return
        original = read_original(main_cf)
        # Directories of labs that crashed without stopping are gone: drop them too.
        wanted = [d for d in original.lab_directories if d != str(directory) and Path(d).exists()]
        _write(main_cf, original, wanted)


def _write(main_cf: Path, original: Original, directories: list[str]) -> None:
    if not directories:
        if original.text is None:
            main_cf.unlink(missing_ok=True)
        else:
            _replace(main_cf, original.text)
        return
    base = original.text or ""
    newline = bool(base) and not base.endswith("\n")
    # An earlier alternate_config_directories line keeps its values: the last line wins.
    existing = _PARAMETER.findall(base)
    values = " ".join(existing[-1].split()) if existing else ""
    block = (
        f"{_BEGIN} created={'yes' if original.text is None else 'no'} "
        f"newline={'yes' if newline else 'no'}: tests/lab adds this while a lab runs, "
        "and removes it when the lab stops\n"
        f"# lab directories: {' '.join(directories)}\n"
        f"alternate_config_directories = {' '.join([values, *directories]).strip()}\n"
        f"{_END}"
    )
    _replace(main_cf, base + ("\n" if newline else "") + block)


def _replace(path: Path, text: str) -> None:
    """Write atomically, keeping the file's owner and mode (new files: root, 0644)."""
    try:
        stat = path.stat()
        mode, owner = stat.st_mode & 0o7777, (stat.st_uid, stat.st_gid)
    except FileNotFoundError:
        mode, owner = 0o644, (0, 0)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temp, mode)
        os.chown(temp, *owner)
        cool_down(Path(temp))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _locked(main_cf: Path) -> Iterator[None]:
    """An exclusive lock on main.cf's folder: no lock file is left behind."""
    main_cf.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(main_cf.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def cool_down(path: Path) -> None:
    """Date a fresh configuration file 2 s back: Postfix reads a file modified within the
    last second again and again, 300 ms apart, until it has "cooled down"."""
    past = time.time() - 2
    os.utime(path, (past, past))


def snapshot(path: Path) -> bytes | None:
    """A file's bytes (None: absent), to prove later that it did not change."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
