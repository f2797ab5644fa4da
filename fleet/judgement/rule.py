"""One rule of the catalogue: the codes and words it matches, and what it concludes."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from fleet.judgement.evidence import ENHANCED_FULL_RE, names_the_ip
from fleet.judgement.phrase import Phrase
from fleet.judgement.rule_ids import RuleId
from fleet.results import Category, Reply, Stage

Remedy = str | Mapping[str, str]  # one text, or by "unauthenticated" / "authenticated"


@dataclass(frozen=True)
class Rule:
    id: RuleId
    category: Category
    finding: str
    remediation: Remedy
    enhanced: tuple[str, ...] = ()  # exact codes, or ranges "5.7.606-5.7.649"
    # a key phrase (regex, case-insensitive); after editing one, run tools/phrase_words.py
    # (the words it needs, phrase.py: tests/test_phrase_words.py says when they are stale)
    text: str | None = None
    code_class: str | None = None  # "4", "5" or a whole code ("501"): only those replies
    stages: tuple[Stage, ...] = ()
    providers: tuple[str, ...] = ()  # only for these services (see `provider_of`)
    unless: str | None = None  # a phrase (regex) that keeps the rule from matching
    ip_evidence: bool = False  # only when the reply says it is about an IP (`names_the_ip`)

    # Compiled when a reply first gets that far and holds a word the phrase needs (most never
    # do): compiling every rule's phrases at import, or every phrase a refusal passes, cost a
    # `fleet scan` more than its conversation (issue 20; phrase.py).
    @functools.cached_property
    def _text_phrase(self) -> Phrase | None:
        return None if self.text is None else Phrase(self.text)

    @functools.cached_property
    def _unless_phrase(self) -> Phrase | None:
        return None if self.unless is None else Phrase(self.unless)

    def matches(self, stage: Stage, reply: Reply, provider: str, text: str) -> bool:
        """`text`: the reply text to search (see `unwrapped`)."""
        if self.stages and stage not in self.stages:
            return False
        if self.providers and provider not in self.providers:
            return False
        if self.code_class and not str(reply.code or "").startswith(self.code_class):
            return False
        if self.enhanced and not (reply.enhanced and code_in(reply.enhanced, self.enhanced)):
            return False
        if self._text_phrase is not None and not self._text_phrase.search(text):
            return False
        if self._unless_phrase is not None and self._unless_phrase.search(text):
            return False
        return not (self.ip_evidence and not names_the_ip(text))


def code_in(code: str, wanted: tuple[str, ...]) -> bool:
    if not ENHANCED_FULL_RE.fullmatch(code):
        return False  # a Reply built elsewhere (read back, hand-made) may hold anything
    parts = tuple(int(p) for p in code.split("."))
    for item in wanted:
        low, _, high = item.partition("-")
        lo = tuple(int(p) for p in low.split("."))
        hi = tuple(int(p) for p in (high or low).split("."))
        if lo <= parts <= hi:
            return True
    return False
