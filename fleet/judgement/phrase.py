"""A rule's phrase (a regex, case-insensitive), compiled only for a text that holds one of the
words the phrase cannot match without.

Compiling the phrases a reply is read against cost a `fleet scan` of a refused site more than
its conversation (issue 20: ~30 ms for the ~35 phrases before the rule that reads Microsoft's
"banned sending IP"). Most phrases cannot match most replies for want of a word:
tools/phrase_words.py derives those words from each phrase's parse and writes them to
phrase_words.json, keyed by a digest of the phrase. A phrase that file does not know (changed
since) is compiled as before: the words only ever spare a compile and a search, never change a
reading.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from importlib import resources

WORDS_FILE = "phrase_words.json"

# The characters outside ASCII that a case-insensitive ASCII letter matches (tests/
# test_phrase_words.py proves these are all): the words are lowered ASCII, so the text is
# folded onto them before it is searched. (U+0130 is also the one character whose lower()
# is two characters long.)
_FOLD = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def digest(pattern: str) -> str:
    """The key of a phrase in phrase_words.json."""
    return hashlib.sha256(pattern.encode("utf-8")).hexdigest()[:24]


@functools.cache
def _words_by_digest() -> dict[str, tuple[str, ...] | None]:
    raw: dict[str, list[str] | None] = json.loads(
        resources.files(__package__).joinpath(WORDS_FILE).read_text("utf-8")
    )
    return {key: None if words is None else tuple(words) for key, words in raw.items()}


# One reading asks every rule about the same text: fold it once.
@functools.lru_cache(maxsize=8)
def folded(text: str) -> str:
    """The text as the words are spelt: lowered, the four letters above made ASCII."""
    return text.lower() if text.isascii() else text.translate(_FOLD).lower()


class Phrase:
    """A phrase and the words (lowered ASCII) one of which every text it matches holds;
    None when no word is known (the phrase is always compiled)."""

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.words = _words_by_digest().get(digest(pattern))

    @functools.cached_property
    def compiled(self) -> re.Pattern[str]:
        return re.compile(self.pattern, re.IGNORECASE)

    def may_match(self, text: str) -> bool:
        """False only when the text lacks every word the phrase needs."""
        if self.words is None:
            return True
        low = folded(text)
        return any(word in low for word in self.words)

    def search(self, text: str) -> bool:
        return self.may_match(text) and self.compiled.search(text) is not None
