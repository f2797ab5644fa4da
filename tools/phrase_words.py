"""Write fleet/judgement/phrase_words.json: for every rule phrase (a rule's `text` and
`unless`), the words one of which every text the phrase matches holds, so that a phrase is
compiled only for a text that holds one (fleet/judgement/phrase.py, issue 20).

Run it after changing a phrase (tests/test_phrase_words.py fails while the file is stale;
a stale file costs only speed: a phrase it does not know is compiled for every text):

    .venv/bin/python tools/phrase_words.py

The words come from Python's own parse of the phrase (re._parser, the parser re.compile runs),
so they follow what the phrase means rather than how it is spelt: a run of literal ASCII
characters the phrase must match, lowered; where it must match one of several branches, a
word of each branch; nothing where a branch, or the whole phrase, needs no literal.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from fleet.judgement import phrase
from fleet.judgement.catalogue import RULES
from fleet.judgement.rules.word_families import WORD_FAMILIES

# (no stubs for the private parser; the public sre_parse is deprecated)
_parser: Any = importlib.import_module("re._parser")

OUT = Path(phrase.__file__).with_name(phrase.WORDS_FILE)

Need = frozenset[str] | None  # any one of these words; None: no word is needed


def required_words(pattern: str) -> list[str] | None:
    """Lowered ASCII words one of which every text `pattern` matches (case-insensitively)
    contains, or None when the phrase needs no literal."""
    need = _sequence(_parser.parse(pattern, re.IGNORECASE))
    return None if need is None else sorted(need)


def _sequence(items: Iterable[tuple[Any, Any]]) -> Need:
    """Everything in a sequence is matched: the strongest need of any one part will do."""
    needs: list[frozenset[str]] = []
    run = ""
    for op, av in items:
        if op is _parser.LITERAL and av < 128:
            run += chr(av).lower()
            continue
        if op is _parser.AT:
            continue  # zero width (\b, ^, $): the literals on either side are adjacent text
        if run:
            needs.append(frozenset([run]))
            run = ""
        need = _node(op, av)
        if need is not None:
            needs.append(need)
    if run:
        needs.append(frozenset([run]))
    return max(needs, key=_strength, default=None)


def _strength(need: frozenset[str]) -> tuple[int, int]:
    # the longer its shortest word, the rarer; then the fewer words, the fewer searches
    return min(map(len, need)), -len(need)


def _node(op: Any, av: Any) -> Need:
    if op is _parser.BRANCH:
        branches = [_sequence(branch) for branch in av[1]]
        if any(need is None for need in branches):
            return None
        return _shortest(frozenset().union(*(need for need in branches if need is not None)))
    if op is _parser.SUBPATTERN:  # (group, flags added, flags removed, pattern)
        return _sequence(av[3])
    if op is _parser.ATOMIC_GROUP:
        return _sequence(av)
    if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT):
        low, _high, item = av
        return _sequence(item) if low >= 1 else None
    if op is _parser.ASSERT:  # (direction, pattern): a lookahead or lookbehind is text too
        return _sequence(av[1])
    # a character class, any character, a negative assertion, a back reference: no word
    return None


def _shortest(words: frozenset[str]) -> frozenset[str]:
    """A text holding a word holds every word inside it: keep only the inner ones."""
    return frozenset(w for w in words if not any(o != w and o in w for o in words))


def phrases() -> Iterator[str]:
    for rule in (*RULES, *WORD_FAMILIES):
        for pattern in (rule.text, rule.unless):
            if pattern is not None:
                yield pattern


def table() -> dict[str, list[str] | None]:
    return {phrase.digest(p): required_words(p) for p in sorted(set(phrases()))}


def render(words: dict[str, list[str] | None]) -> str:
    lines = [f"  {json.dumps(key)}: {json.dumps(words[key])}" for key in sorted(words)]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> int:
    text = render(table())
    if OUT.read_text(encoding="utf-8") == text if OUT.exists() else False:
        print(f"{OUT}: up to date")
        return 0
    OUT.write_text(text, encoding="utf-8")
    print(f"{OUT}: written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
