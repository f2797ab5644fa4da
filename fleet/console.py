"""Console output that survives a legacy code page.

On Windows, output redirected to a file or an RMM agent's pipe (and consoles of older
Pythons) is encoded in the ANSI or OEM code page (cp1252, cp437) with errors="strict": one
server reply in another script, or an ellipsis in the table, would end the command with
UnicodeEncodeError. What the console cannot show is replaced ("?") instead; JSON and HTML,
which machines read back, are escaped in their own syntax instead, losing nothing.
"""

from __future__ import annotations

import codecs
import contextlib
import io
import sys
from collections.abc import Iterator


def tolerate_legacy_code_pages() -> None:
    """For people's output (table, transcript, progress bar, messages): "?" for what the
    code page lacks."""
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


@contextlib.contextmanager
def ascii_on_stdout(errors: str) -> Iterator[None]:
    """A machine format loses nothing on a legacy code page: on a stdout that is not UTF-8
    it is written in ASCII, each other character escaped by the `errors` handler in the
    format's own syntax. ASCII reads the same in UTF-8 and in any code page, so what an RMM
    or a redirect captures is valid UTF-8 too."""
    stream = sys.stdout
    if not isinstance(stream, io.TextIOWrapper) or codecs.lookup(stream.encoding).name == "utf-8":
        yield
        return
    encoding, previous = stream.encoding, stream.errors
    stream.reconfigure(encoding="ascii", errors=errors)
    try:
        yield
    finally:
        stream.reconfigure(encoding=encoding, errors=previous)


def json_escapes_on_stdout() -> contextlib.AbstractContextManager[None]:
    """JSON: \\uXXXX escapes, which every JSON reader turns back into the character (JSON
    has characters beyond ASCII only inside strings, where escapes mean the same)."""
    return ascii_on_stdout("fleet-json-escape")


def html_escapes_on_stdout() -> contextlib.AbstractContextManager[None]:
    """HTML: character references (&#321;); fleet's pages put remote text only in elements
    and attributes, where references mean the character (never in <script> or <style>)."""
    return ascii_on_stdout("xmlcharrefreplace")
