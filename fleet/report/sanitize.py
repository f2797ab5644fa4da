"""Making text from remote servers safe to show: on a terminal (no escape sequences, no
control characters) and in a spreadsheet (no formulas)."""

from __future__ import annotations

import re

# ANSI/VT escape sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), and other
# two-byte escapes; then every remaining C0/C1 control and the Unicode bidi overrides that
# can make text display differently from what it is.
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]?"  # other escapes, or a lone ESC
    r"|\x9b[0-?]*[ -/]*[@-~]"  # 8-bit CSI
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_WHITESPACE = re.compile(r"\s+")

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def strip_controls(text: str, keep_newlines: bool = False) -> str:
    """Remove escape sequences and control characters (and, unless kept, newlines/tabs)."""
    text = _ESCAPES.sub("", text)
    if keep_newlines:
        text = text.replace("\t", " ")
        return _CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _WHITESPACE.sub(" ", _CONTROLS.sub("", text.replace("\t", " "))).strip()


def for_terminal(text: str | None, limit: int | None = None) -> str:
    """One line, safe to print: what a hostile banner sent is shown, never executed."""
    if not text:
        return ""
    clean = strip_controls(text)
    if limit is not None and len(clean) > limit:
        clean = clean[: limit - 1] + "…"
    return clean


# A cell that needs no work: no control or bidi character, and not starting like a formula.
_PLAIN_CELL = re.compile(
    r"[^=+\-@\s\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069][^\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]*"
)


def for_spreadsheet(value: object) -> str:
    """A CSV cell Excel will not run: control characters removed, formulas neutralised."""
    if value is None:
        return ""
    text = str(value)
    if not text or _PLAIN_CELL.fullmatch(text):
        return text  # the usual cell: nothing to strip, nothing to neutralise
    starts_like_formula = text.startswith(FORMULA_STARTS) or text.lstrip().startswith(
        FORMULA_STARTS[:4]
    )
    text = strip_controls(text, keep_newlines=True)
    if starts_like_formula or text.lstrip().startswith(FORMULA_STARTS[:4]):
        text = "'" + text
    return text
