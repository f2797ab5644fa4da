"""Write fleet/judgement/phrase_words.tsv: for every rule phrase (a rule's `text` and
`unless`), what every text the phrase matches holds (the words one of which it holds, and the
whole of the words it must hold), so that a phrase is compiled only for a text that holds
them (fleet/judgement/phrase.py, issue 20).

Run it after changing a phrase (tests/test_phrase_words.py fails while the file is stale;
a stale file costs only speed: a phrase it does not know is compiled for every text):

    .venv/bin/python tools/phrase_words.py

The words come from Python's own parse of the phrase (re._parser, the parser re.compile runs),
so they follow what the phrase means rather than how it is spelt: a run of literal ASCII
characters the phrase must match, lowered; all of a sequence's; where it must match one of
several branches, one branch's; nothing where a branch, or the whole phrase, needs no literal.
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

# What a text must hold for the phrase to match: a word (lowered ASCII); all of [">", ...]
# in that order, each after the one before it; all of ["&", ...] in any order; any of
# ["|", ...]. None: nothing is known.
Need = str | list[Any] | None


def required(pattern: str) -> tuple[list[str] | None, Need]:
    """For a phrase (matched case-insensitively): the words one of which every text it
    matches contains, and the whole of what such a text must hold (`Need`), or None, None
    when the phrase needs no literal."""
    need, _ = _sequence(_parser.parse(pattern, re.IGNORECASE))
    words = _words(need)
    return (None, None) if words is None else (sorted(words), need)


def required_words(pattern: str) -> list[str] | None:
    return required(pattern)[0]


def _sequence(items: Iterable[tuple[Any, Any]]) -> tuple[Need, bool]:
    """Everything in a sequence is matched, each part in the text after the one before it:
    all of its parts' needs, in order, unless a part looks around (a lookahead's words may
    lie beyond the next part's). The bool: whether anything in it looks around."""
    needs: list[Need] = []
    run = ""
    looks = False
    for op, av in items:
        if op is _parser.LITERAL and av < 128:
            run += chr(av).lower()
            continue
        if op is _parser.AT:
            continue  # zero width (\b, ^, $): the literals on either side are adjacent text
        if run:
            needs.append(run)
            run = ""
        need, around = _node(op, av)
        looks = looks or around
        if need is not None:
            needs.append(need)
    if run:
        needs.append(run)
    return _joined("&" if looks else ">", needs), looks


def _joined(kind: str, needs: list[Need]) -> Need:
    flat: list[Need] = []
    for need in needs:
        if isinstance(need, list) and need[0] == kind:
            flat.extend(need[1:])
        elif need not in flat:  # (for ">": the first of two equal needs is needed anyway)
            flat.append(need)
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else [kind, *flat]


def _node(op: Any, av: Any) -> tuple[Need, bool]:
    if op is _parser.BRANCH:
        branches = [_sequence(branch) for branch in av[1]]
        looks = any(around for _, around in branches)
        if any(need is None for need, _ in branches):
            return None, looks  # a branch that needs nothing: the whole needs nothing
        return _joined("|", [need for need, _ in branches]), looks
    if op is _parser.SUBPATTERN:  # (group, flags added, flags removed, pattern)
        return _sequence(av[3])
    if op is _parser.ATOMIC_GROUP:
        return _sequence(av)
    if op in (_parser.MAX_REPEAT, _parser.MIN_REPEAT, _parser.POSSESSIVE_REPEAT):
        low, _high, item = av
        need, looks = _sequence(item)
        return (need if low >= 1 else None), looks
    if op is _parser.ASSERT:  # (direction, pattern): a lookahead or lookbehind is text too
        need, _ = _sequence(av[1])
        return need, True
    # a character class, any character, a back reference, a negative lookaround (no width,
    # no word: the parts around it keep their order): no word
    return None, False


def _words(need: Need) -> frozenset[str] | None:
    """Words one of which a text meeting `need` holds: the cheap check made every time."""
    if need is None:
        return None
    if isinstance(need, str):
        return frozenset([need])
    parts = [_words(part) for part in need[1:]]
    if need[0] == "|":
        if any(part is None for part in parts):
            return None
        return _shortest(frozenset().union(*(part for part in parts if part is not None)))
    return max((part for part in parts if part is not None), key=_strength, default=None)


def _strength(words: frozenset[str]) -> tuple[int, int]:
    # the longer its shortest word, the rarer; then the fewer words, the fewer searches
    return min(map(len, words)), -len(words)


def _shortest(words: frozenset[str]) -> frozenset[str]:
    """A text holding a word holds every word inside it: keep only the inner ones."""
    return frozenset(w for w in words if not any(o != w and o in w for o in words))


def phrases() -> Iterator[str]:
    for rule in (*RULES, *WORD_FAMILIES):
        for pattern in (rule.text, rule.unless):
            if pattern is not None:
                yield pattern


def table() -> dict[str, list[Any] | None]:
    """Per phrase digest: [its words, its need] (see `required`), or None."""
    rows: dict[str, list[Any] | None] = {}
    for pattern in sorted(set(phrases())):
        words, need = required(pattern)
        rows[phrase.digest(pattern)] = None if words is None else [words, need]
    return rows


def render(rows: dict[str, list[Any] | None]) -> str:
    """One phrase a line: its digest, a tab, [words, need] in JSON (phrase.py reads it)."""
    return "".join(f"{key}\t{json.dumps(rows[key], ensure_ascii=False)}\n" for key in sorted(rows))


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
