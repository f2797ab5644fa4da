"""The features the learned reader (`learned`) reads a reply by, shared with its training
script (tools/train_reader.py) so that training and reading see the same words.

A reply's words, normalised as the rules read them (`unwrapped`, `spelt_out`), lower case,
without the parts that name one server rather than a wording (addresses, links, host
names, IPs, ids, bracketed tags, a bounce's notes around the reply); then word unigrams and bigrams, and the stage, the code and the enhanced code's
class, which say where and how a server refused. (Character n-grams inside words were
measured too, tools/measure_reader.py: on the blind rounds they fixed fewer fallbacks and
gave more wrong readings than words alone.)
"""

from __future__ import annotations

import re

from fleet.judgement.evidence import PREFIXED_CODE_RE, spelt_out, unwrapped

# how much of a reply is read (the rules read 4096 characters; a learned reading needs less)
READ_CHARS = 1024

_ADDRESS_RE = re.compile(r"[^\s<>()\[\]]{0,64}@[^\s<>()\[\]]{1,255}")
_LINK_RE = re.compile(r"\b(?:https?://|www\.)\S{1,500}")
_HOST_RE = re.compile(r"\b[\w-]{1,63}(?:\.[\w-]{1,63}){1,10}\b")  # also IPv4 and dotted codes
_IPV6_RE = re.compile(r"\b[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}\b")
# What surrounds a server's words without being them: a bracketed tag (a queue id, a host,
# a date), Postfix's "(in reply to ... command)" and "host x said: 550", a leading "Error:",
# spamdyke's "Refused." stamp. A reading must not change with them (the rules' own check,
# tests/test_corpus_replay.py: test_a_reply_keeps_its_reading_whatever_surrounds_it).
_AROUND_RE = re.compile(r"\[[^\[\]]{0,120}\]|\(in reply to [a-z ]{2,20} command\)")
_BEFORE_RE = re.compile(
    r"^(?:[\s<>:;,.()]+|host \S{1,300}\s{1,3}said:\s*(?:[245]\d\d[ -])?|error:|"
    r"(?:refused|rejected|denied|blocked)[.!]\s)"
)
# Words servers use alike, read as one (the rules read them alike too)
_ALIKE = (
    (re.compile(r"\b(?:refused|denied)\b"), "rejected"),
    (re.compile(r"\bnot permitted\b"), "not allowed"),
    (re.compile(r"\bip address(?:es)?\b"), "ip"),
    (re.compile(r"\b(?:black|block) ?list"), "blocklist"),
    (re.compile(r"\bexcessive\b"), "too many"),
)
_TOKEN_RE = re.compile(r"[\w']+")


def _normalised(text: str) -> str:
    text = spelt_out(unwrapped(text[:READ_CHARS])).lower()
    for pattern in (_ADDRESS_RE, _LINK_RE):
        text = pattern.sub(" ", text)
    text = _AROUND_RE.sub(" ", text)
    for _ in range(8):  # each prefix in turn; a few at most
        text, found = _BEFORE_RE.subn("", text)
        if not found:
            break
    text = _HOST_RE.sub(" ", _IPV6_RE.sub(" ", text))
    for pattern, word in _ALIKE:
        text = pattern.sub(word, text)
    return text


def _words(text: str) -> list[str]:
    # a token with a digit in it is an id, a count or a code (the code is read apart)
    return [w for w in _TOKEN_RE.findall(text) if w.replace("'", "").isalpha()]


def is_word(feature: str) -> bool:
    """A feature of the reply's words (not of its stage or codes)."""
    return feature.startswith(("w:", "b:"))


def features(stage: str, code: int | None, enhanced: str | None, text: str) -> set[str]:
    """The set of features of one reply (presence, not counts: a long reply that repeats
    itself says no more than a short one)."""
    words = _words(_normalised(text))
    found = {f"stage:{stage}", f"code:{code or 0}", f"class:{(code or 0) // 100}"}
    found.add(f"stagecls:{stage}:{(code or 0) // 100}")
    if enhanced is None:
        prefixed = PREFIXED_CODE_RE.search(text[:READ_CHARS])
        enhanced = prefixed.group(1) if prefixed else None
    if enhanced:
        found.add(f"enh:{enhanced}")
        found.add("enhc:" + ".".join(enhanced.split(".")[:2]))
    for i, word in enumerate(words):
        found.add("w:" + word)
        if i:
            found.add(f"b:{words[i - 1]}_{word}")
    return found
