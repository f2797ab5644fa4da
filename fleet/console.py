"""Console output that survives a legacy code page.

On Windows, output redirected to a file or an RMM agent's pipe (and consoles of older
Pythons) is encoded in the ANSI or OEM code page (cp1252, cp437) with errors="strict": one
server reply in another script, or an ellipsis in the table, would end the command with
UnicodeEncodeError. What the console cannot show is replaced ("?") instead.
"""

from __future__ import annotations

import io
import sys


def tolerate_legacy_code_pages() -> None:
    for stream in (sys.stdout, sys.stderr):
        # Only real text streams can be reconfigured (a test runner's capture may not be).
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="replace")
