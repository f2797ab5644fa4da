"""Console output that survives a legacy code page.

On Windows, output redirected to a file or an RMM agent's pipe (and consoles of older
Pythons) is encoded in the ANSI or OEM code page (cp1252, cp437) with errors="strict": one
server reply in another script, or an ellipsis in the table, would end the command with
UnicodeEncodeError. What the console cannot show is replaced ("?") instead.
"""

from __future__ import annotations

import codecs
import io
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def tolerate_legacy_code_pages() -> None:
    for stream in (sys.stdout, sys.stderr):
        # Only real text streams can be reconfigured (a test runner's capture may not be).
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="replace")


def _json_escape(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    units = error.object[error.start : error.end].encode("utf-16-be")
    escaped = "".join(
        f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2)
    )
    return escaped, error.end


codecs.register_error("fleet-json-escape", _json_escape)


@contextmanager
def json_escapes_on_stdout() -> Iterator[None]:
    """JSON for machines loses nothing on a legacy code page: on a stdout that is not UTF-8
    it is written in ASCII, each other character as a \\uXXXX escape, which every JSON
    reader turns back into that character (JSON has characters beyond ASCII only inside
    strings, where escapes mean the same). ASCII reads the same in UTF-8 and in any code
    page, so the file an RMM captures is valid UTF-8 JSON."""
    stream = sys.stdout
    if not isinstance(stream, io.TextIOWrapper) or codecs.lookup(stream.encoding).name == "utf-8":
        yield
        return
    encoding, errors = stream.encoding, stream.errors
    stream.reconfigure(encoding="ascii", errors="fleet-json-escape")
    try:
        yield
    finally:
        stream.reconfigure(encoding=encoding, errors=errors)
