"""A rule's phrase (a regex, case-insensitive), compiled only for a text that holds the words
the phrase cannot match without, in the order it needs them.

Compiling the phrases a reply is read against cost a `fleet scan` of a refused site more than
its conversation (issue 20: ~28 ms for the 33 phrases before the rule that reads Microsoft's
"banned sending IP"). Most phrases cannot match most replies for want of a word:
tools/phrase_words.py derives those words from each phrase's parse and writes them to
phrase_words.tsv, one phrase a line: a digest of the phrase, a tab, [words, need] in JSON. A
phrase that file does not know (changed since) is compiled as before: the words only ever
spare a compile and a search, never change a reading.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
from typing import Any, TypeAlias

WORDS_FILE = "phrase_words.tsv"

# What a text must hold for a phrase to match: a word; all of [">", ...] in that order, each
# after the one before it; all of ["&", ...] in any order; any of ["|", ...].
Need: TypeAlias = "str | list[Any]"

# The characters outside ASCII that a case-insensitive ASCII letter matches (tests/
# test_phrase_words.py proves these are all): the words are lowered ASCII, so the text is
# folded onto them before it is searched. (U+0130 is also the one character whose lower()
# is two characters long.)
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def digest(pattern: str) -> str:
    """The key of a phrase in phrase_words.tsv."""
    return hashlib.sha256(pattern.encode("utf-8")).hexdigest()[:24]


@functools.cache
def _lines() -> dict[str, str]:
    # (a plain read beside this module: importlib.resources' first use costs a scan 6 ms)
    with open(os.path.join(os.path.dirname(__file__), WORDS_FILE), encoding="utf-8") as file:
        rows = (line.partition("\t") for line in file.read().splitlines())
    return {key: row for key, _, row in rows}


def _known(pattern: str) -> tuple[tuple[str, ...], Need] | None:
    """What the file says a phrase needs; only the lines asked for are decoded (a scan asks
    for a few dozen phrases of a few hundred)."""
    row = _lines().get(digest(pattern))
    if row is None:
        return None
    known = json.loads(row)
    return None if known is None else (tuple(known[0]), known[1])


# One reading asks every rule about the same text: fold it once.
@functools.lru_cache(maxsize=8)
def folded(text: str) -> str:
    """The text as the words are spelt: lowered, the four letters above made ASCII."""
    return text.lower() if text.isascii() else text.translate(_FOLD).lower()


def holds(need: Need, low: str) -> bool:
    """Whether a folded text holds what `need` asks."""
    return _end(need, low, 0) >= 0


def _end(need: Need, low: str, start: int) -> int:
    """Where the earliest text from `start` that holds `need` ends; -1: none does. (The
    earliest end of each part in turn is the best start for the next.)"""
    if isinstance(need, str):
        at = low.find(need, start)
        return -1 if at < 0 else at + len(need)
    parts = need[1:]
    if need[0] == ">":
        for part in parts:
            start = _end(part, low, start)
            if start < 0:
                return -1
        return start
    ends = [_end(part, low, start) for part in parts]
    if need[0] == "&":
        return -1 if min(ends) < 0 else max(ends)
    return min((end for end in ends if end >= 0), default=-1)


class Phrase:
    """A phrase; `words`: one of them is in every text it matches (checked every time, it is
    cheap); `need`: the whole of what such a text holds (checked until the phrase is
    compiled, to spare the compile). Both None when nothing is known."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        known = _known(pattern)
        self.words: tuple[str, ...] | None = None if known is None else known[0]
        self.need: Need | None = None if known is None else known[1]
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self.pattern, re.IGNORECASE)
        return self._compiled

    def may_match(self, text: str) -> bool:
        """False only when the text lacks what the phrase needs."""
        if self.words is None or self.need is None:
            return True
        low = folded(text)
        return any(word in low for word in self.words) and holds(self.need, low)

    def search(self, text: str) -> bool:
        if self._compiled is None:
            if not self.may_match(text):
                return False
        elif self.words is not None:
            low = folded(text)
            if not any(word in low for word in self.words):
                return False
        return self.compiled.search(text) is not None
