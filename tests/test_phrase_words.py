"""A rule's phrase is compiled only for a text that holds one of the words it cannot match
without (fleet/judgement/phrase.py, issue 20): the words must never keep a phrase from a text
it matches, so that every reading stays what it was when every phrase was searched."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.classify import classify_reply, make_reply
from fleet.judgement import phrase
from fleet.judgement.phrase import Phrase
from fleet.results import Stage

from .corpus_replay import CORPUS, Entry, load, replay_context
from .test_corpus_replay import _SAME_READING

ROOT = Path(__file__).resolve().parent.parent


def _tool() -> ModuleType:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec = importlib.util.spec_from_file_location(
            "phrase_words", ROOT / "tools/phrase_words.py"
        )
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "tools"))


def test_the_words_file_is_what_the_tool_writes_from_todays_phrases() -> None:
    tool = _tool()
    shipped = (ROOT / "fleet/judgement" / phrase.WORDS_FILE).read_text(encoding="utf-8")
    assert shipped == tool.render(tool.table()), "run: .venv/bin/python tools/phrase_words.py"
    # ... and nearly every phrase has words (a phrase without is compiled for every text)
    words = tool.table()
    assert sum(w is not None for w in words.values()) > 0.9 * len(words)


@pytest.mark.parametrize(
    ("pattern", "words"),
    [
        (r"blocked using", ["blocked using"]),
        # \b is no character: the literals around it are adjacent in the text
        (r"\bno such\b user", ["no such user"]),
        # the longest run of a sequence; an optional part breaks a run
        (r"(?<!allow )\bblock ?list", ["block"]),
        # a word of each branch, and a word inside another is enough
        (r"too many|excessive|many", ["excessive", "many"]),
        # a branch that needs no word: the phrase needs none
        (r"spam|\d+ hops", [" hops", "spam"]),
        (r"spam|\d+", None),
        (r"(?:e-?)?mail", ["mail"]),
        (r"x?", None),
        # a repeat of at least one, a lookahead, a group, a case-sensitive part: still needed
        (r"(?:ab){2,}", ["ab"]),
        (r"(?=.*listed)", ["listed"]),
        (r"(?-i:\bMAIL ?FROM\b)", ["mail"]),
        # a class is no word; letters outside ASCII are not either
        (r"[eé]metteur", ["metteur"]),
        (r"отправител\w*", None),
    ],
)
def test_the_words_a_phrase_needs(pattern: str, words: list[str] | None) -> None:
    assert _tool().required_words(pattern) == words


def test_the_fold_covers_every_character_an_ascii_letter_matches_regardless_of_case() -> None:
    # The words are lowered ASCII; a text is searched folded (phrase.folded). Every character
    # a case-insensitive ASCII literal matches must fold onto it, one character for one.
    any_ascii = re.compile(r"[\x00-\x7f]", re.IGNORECASE)
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF:
            continue
        assert len(phrase.folded("\u00e9" + char)) == 2, hex(code)
        if any_ascii.match(char):
            letter = phrase.folded("\u00e9" + char)[1]
            assert letter.isascii(), hex(code)
            assert re.fullmatch(re.escape(letter), char, re.IGNORECASE), hex(code)


@pytest.mark.parametrize(
    ("pattern", "need"),
    [
        # all of a sequence's words in order, one branch's (the parser takes a branch's
        # common start out)
        (
            r"\bsending (?:to|by) (?:this|that)\b",
            [">", "sending ", ["|", "to", "by"], " th", ["|", "is", "at"]],
        ),
        (r"(?<!allow )\bblock ?list", [">", "block", "list"]),
        (r"spam|\d+ hops", ["|", "spam", " hops"]),
        (r"spam|\d+", None),
        # a lookahead's words may lie beyond what follows it: in any order
        (
            r"mail ?from(?=:| address)\S* sender",
            ["&", "mail", "from", ["|", ":", " address"], " sender"],
        ),
        (
            r"\b(?:mail ?from(?=:)|sender) rejected",  # ... and so is all around it
            ["&", ["|", ["&", "mail", "from", ":"], "sender"], " rejected"],
        ),
    ],
)
def test_all_a_phrase_needs(pattern: str, need: phrase.Need | None) -> None:
    assert _tool().required(pattern)[1] == need


def _known(pattern: str, words: tuple[str, ...], need: phrase.Need) -> Phrase:
    known = Phrase(pattern)
    known.words, known.need = words, need  # (as the file would say)
    return known


def test_a_phrase_is_compiled_only_for_a_text_with_its_words() -> None:
    pattern = r"\b(?:sender|from) address (?:rejected|refused)"
    need = [">", ["|", "sender", "from"], " address ", ["|", "rejected", "refused"]]
    said = _known(pattern, ("address ",), need)
    assert said.search("5.1.0 Sender address rejected") is True
    assert said.may_match("Sender ADDRESS REFUSED") is True
    assert said._compiled is not None
    # one word missing, or all: not compiled
    for text in (
        "5.1.0 Sender address accepted",
        "550 5.7.606 Access denied, banned IP",
        "5.1.0 Address of sender rejected",  # all the words, not in the phrase's order
    ):
        never = _known(pattern, ("address ",), need)
        assert never.search(text) is False
        assert never._compiled is None
    # once compiled, the words alone spare the search
    assert said.search("550 5.7.606 Access denied, banned IP") is False
    assert said.search("5.1.0 Sender address accepted") is False
    # in order: each part after the one before it, the earliest of a branch's
    for need, text, holds in (
        ([">", "ab", "bc"], "abc", False),
        ([">", "ab", "bc"], "ab bc", True),
        ([">", ["|", "x", "ab"], "b"], "ab", False),
        ([">", ["|", "ab", "a"], "b"], "ab", True),
        ([">", ["|", [">", "a", "b"], "c"], "d"], "c a b d", True),
        (["&", "bc", "ab"], "ab bc", True),
        (["|", "q", ["&", "a", "z"]], "a", False),
    ):
        assert phrase.holds(need, text) is holds, (need, text)
    # the four letters outside ASCII that case-insensitive ASCII matches
    assert _known("kiss", ("kiss",), "kiss").search("\u212a\u0131\u017fs") is True
    # a phrase the file does not know is always searched
    unknown = Phrase("a phrase no rule has (?:yet)")
    assert unknown.words is None
    assert unknown.search("a phrase no rule has yet") is True


def _texts() -> Iterator[tuple[Entry, str]]:
    """Every corpus entry, and every rewording the replay test makes of it."""
    for path in sorted(CORPUS.glob("*.yaml")):
        for entry in load(path.stem):
            yield entry, entry.text
            for perturb in _SAME_READING.values():
                text = perturb(entry.text)
                if text != entry.text:
                    yield entry, text


@pytest.mark.slow
def test_no_phrase_is_kept_from_a_text_it_matches_in_any_corpus_reading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every search the classifier makes over the corpus and its rewordings, made in full (as
    # before the words): the readings are the old ones, and the words must let through every
    # text a phrase matches; then each entry's own reading is made again with the words and
    # must be equal (the first pass proves the rewordings' too: every search gave the same).
    kept_from: list[str] = []
    searched = 0

    def search_in_full(self: Phrase, text: str) -> bool:
        nonlocal searched
        searched += 1
        found = self.compiled.search(text) is not None
        if found and not self.may_match(text):
            kept_from.append(f"{self.pattern[:60]!r} from {text[:100]!r}")
        return found

    with monkeypatch.context() as patch:
        patch.setattr(Phrase, "search", search_in_full)
        readings = [
            classify_reply(Stage(e.stage), make_reply(e.code, t), replay_context(e, t))
            for e, t in _texts()
        ]
    assert not kept_from, "\n".join(kept_from)
    assert searched > 100_000
    changed = [
        f"{e.id}: {t[:100]}"
        for (e, t), before in zip(_texts(), readings, strict=True)
        if t == e.text
        and classify_reply(Stage(e.stage), make_reply(e.code, t), replay_context(e, t)) != before
    ]
    assert not changed, "\n".join(changed)


def test_reading_a_refused_site_compiles_few_phrases() -> None:
    # The ad-hoc `fleet scan` of a site refused by Microsoft ("banned sending IP"): a fresh
    # process, as a scan is. Before the words it compiled every phrase it passed (33 of 33).
    script = (
        "from fleet.classify import Context, classify_reply, make_reply\n"
        "from fleet.judgement.catalogue import RULES\n"
        "from fleet.lab.smtp import banned_ip_reply\n"
        "from fleet.results import Mode, Stage\n"
        "context = Context(Mode.direct_send, 'contoso-com.mail.protection.outlook.com', 25,"
        " False, ip='127.0.0.7', provider='microsoft')\n"
        "said = classify_reply(Stage.rcpt, make_reply(550, banned_ip_reply('127.0.0.7')[4:]),"
        " context)\n"
        "phrases = [r.__dict__.get('_text_phrase') for r in RULES]\n"
        "passed = [p for p in phrases if p is not None]\n"
        "print(said.rule, len(passed), sum(p._compiled is not None for p in passed))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    rule, passed, compiled = done.stdout.split()
    assert rule == "RuleId.m365_banned_sending_ip" or rule.endswith("banned_sending_ip"), rule
    assert int(passed) > 20
    assert int(compiled) * 5 < int(passed), done.stdout


def _phrases() -> list[str]:
    return sorted(set(_tool().phrases()))


@pytest.mark.slow
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
@pytest.mark.parametrize("pattern", _phrases())
def test_the_words_never_keep_a_phrase_from_a_text_generated_to_match_it(
    pattern: str, data: st.DataObject
) -> None:
    """Beyond the corpus: texts hypothesis builds from the phrase itself (any case, any
    filler), each checked to match, must never be refused by the phrase's words."""
    compiled = re.compile(pattern, re.IGNORECASE)
    text = data.draw(st.from_regex(compiled).filter(lambda t: compiled.search(t) is not None))
    assert Phrase(pattern).may_match(text), (pattern, text)
