"""Replacing a file atomically: written to a temporary file beside it, then renamed over it,
so a reader (or a crash) sees the old file or the new one, never half of one.

Used for the report files, the agent's spool and the inventory cache. Light on purpose
(tempfile is loaded only when a file is written): `fleet --version` loads the CLI's plumbing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO, TypeVar

_Handle = TypeVar("_Handle", bound=IO[Any])


@contextlib.contextmanager
def replacing_text(
    target: Path, *, prefix: str, encoding: str = "utf-8", durable: bool = False
) -> Iterator[TextIO]:
    """A text file (newlines as written) that replaces `target` when the block ends without
    an error; `durable`: on the disk (fsync) before it does."""

    def opener(fd: int) -> TextIO:
        return os.fdopen(fd, "w", encoding=encoding, newline="")

    with _replacing(target, prefix, durable, opener) as handle:
        yield handle


@contextlib.contextmanager
def replacing_bytes(target: Path, *, prefix: str, durable: bool = False) -> Iterator[BinaryIO]:
    """A binary file that replaces `target` when the block ends without an error."""

    def opener(fd: int) -> BinaryIO:
        return os.fdopen(fd, "wb")

    with _replacing(target, prefix, durable, opener) as handle:
        yield handle


@contextlib.contextmanager
def _replacing(
    target: Path, prefix: str, durable: bool, opener: Callable[[int], _Handle]
) -> Iterator[_Handle]:
    """The temporary file is `<prefix>*.tmp` in `target`'s folder (a rename is atomic only
    within one file system) and is removed whatever stops the write, an interrupt too.
    OSError (the folder cannot be written, the disk is full) is the caller's to word."""
    import tempfile

    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=prefix, suffix=".tmp")
    try:
        handle = opener(fd)
        with handle:  # (IO's __enter__ is typed as IO, not as the handle's own type)
            yield handle
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
