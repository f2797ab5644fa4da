"""A negative reply -> category, finding and remediation: the first rule that matches, else a
fallback that claims only what the stage and the code prove."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleet.judgement.catalogue import RULES
from fleet.judgement.context import Context
from fleet.judgement.evidence import PREFIXED_CODE_RE, parse_enhanced, spelt_out, unwrapped
from fleet.judgement.hostnames import masked
from fleet.judgement.remedies import LEARNED_CAVEAT, LIKELY_REMEDY
from fleet.judgement.rule import Remedy
from fleet.judgement.rule_ids import RuleId
from fleet.judgement.rules.status_codes import STATUS_CODES
from fleet.judgement.rules.subjects import SUBJECTS
from fleet.judgement.rules.word_families import SUBJECT_FAMILIES, VETO, WORD_FAMILIES
from fleet.judgement.vocabulary import REFUSED
from fleet.results import Category, Reply, Stage

if TYPE_CHECKING:  # imported on the first reply no rule reads: a sweep of healthy sites never
    from fleet.judgement import learned

# A reply no rule knows. A 4xx is a deferral, whatever it says; a 5xx claims only what its
# stage or its code proves (a refused STARTTLS cannot start TLS; 535 is RFC 4954's "credentials
# invalid"), and is otherwise an unrecognised refusal, shown in the server's own words.
_FALLBACK_FINDING: dict[Category, str] = {
    Category.tls_failure: "the server refused to start TLS ({stage}: {code})",
    Category.auth_failed: "the server rejected the login ({stage}: {code})",
    Category.unrecognised_refusal: "the server refused at {stage} ({code}) for a reason fleet "
    'does not recognise: "{said}"',
    Category.protocol_error: "the server gave an unexpected reply ({stage}: {code})",
    Category.temporary_failure: "the server deferred with a temporary error ({stage}: {code})",
}

_FALLBACK_REMEDY: dict[Category, str] = {
    Category.tls_failure: "{endpoint} could not start TLS: tell the server's administrator.",
    Category.auth_failed: "Check the copier's username and password for {endpoint}.",
    Category.unrecognised_refusal: "fleet does not recognise these words and claims no cause: "
    "read the server's reply; if it names a list, a policy or a vendor, look it up there, "
    "otherwise ask the administrator of {host} what the refusal at {stage} means.",
    Category.protocol_error: "Read the reply text; if it persists, tell the server's "
    "administrator.",
    Category.temporary_failure: "The server deferred (4xx): run the site again later; if it "
    "persists, read the reply text.",
}


# A 4xx in words of refusal ("421 4.7.0 Not allowed") is a refusal dressed as a deferral.
_REFUSAL_WORDS_RE = re.compile(
    r"not allowed|not permitted|den(?:ied|y)\b|refus(?:ed|e)\b|reject(?:ed)?\b|block(?:ed)?\b|"
    r"prohibited|forbidden",
    re.IGNORECASE,
)


_LATER_RE = re.compile(r"later|temporar|try again|retry", re.IGNORECASE)


def _fallback_category(stage: Stage, reply: Reply) -> Category:
    code = reply.code or 0
    if 400 <= code <= 499:
        said = masked(reply.text)  # "blocked.example.net" is a name, not a refusal
        refusal = _REFUSAL_WORDS_RE.search(said) and not _LATER_RE.search(said)
        return Category.unrecognised_refusal if refusal else Category.temporary_failure
    if not 500 <= code <= 599:
        return Category.protocol_error
    if stage is Stage.starttls:
        return Category.tls_failure
    if stage is Stage.auth and (code == 535 or reply.enhanced == "5.7.8"):
        return Category.auth_failed
    return Category.unrecognised_refusal


@dataclass(frozen=True)
class Classification:
    category: Category
    finding: str
    remediation: str
    rule: RuleId | None = None


def _render(template: Remedy, context: Context, fields: dict[str, str]) -> str:
    if not isinstance(template, str):
        key = "authenticated" if context.authenticated else "unauthenticated"
        template = template[key]
    return template.format_map(fields)


# Real refusals say what they mean in a few hundred characters; a server that sends
# megabytes gets its words read this far (the whole reply is still kept and shown).
CLASSIFY_CHARS = 4096


# A reply that quotes the reply behind it ("5.7.57 Client not authenticated to send mail.
# Error: 535 5.7.139 Authentication unsuccessful, account locked"): the inner reply's cause
# is the one to fix. Its code says where it was given (535 answers AUTH).
_INNER_REPLY_RE = re.compile(
    r"\berror:? ([45][0-9]{2})[ -]([245]\.[0-9]{1,3}\.[0-9]{1,3}) ([^\n]{1,2000})", re.IGNORECASE
)
_INNER_STAGE = {534: Stage.auth, 535: Stage.auth, 538: Stage.auth}


def _inner_cause(stage: Stage, reply: Reply, context: Context) -> Classification | None:
    match = _INNER_REPLY_RE.search(unwrapped(reply.text[:CLASSIFY_CHARS]))
    if match is None:
        return None
    code = int(match.group(1))
    inner = Reply(code=code, enhanced=match.group(2), text=f"{match.group(2)} {match.group(3)}")
    found = _by_rules(_INNER_STAGE.get(code, stage), inner, context, read_text(inner))
    return (
        found if found is not None and found.category is not Category.unrecognised_refusal else None
    )


def read_text(reply: Reply) -> str:
    """The words the rules read: the reply's first CLASSIFY_CHARS, its lines joined
    (`unwrapped`), contractions, hyphened compounds and common misspellings set right
    (`spelt_out`), host names made neutral where they are not evidence (`masked`: a label of
    one is no word of the reply). Computed once a reading, for the rules and the word families
    alike."""
    return spelt_out(masked(unwrapped(reply.text[:CLASSIFY_CHARS])))


def _by_rules(stage: Stage, reply: Reply, context: Context, text: str) -> Classification | None:
    said = reply.text[:CLASSIFY_CHARS]
    for rule in RULES:
        if rule.matches(stage, reply, context.provider, text):
            fields = context.fields(said)
            return Classification(
                rule.category,
                _render(rule.finding, context, fields),
                _render(rule.remediation, context, fields),
                rule.id,
            )
    return None


_VETO_RE = re.compile(VETO, re.IGNORECASE)
# (a bare refusal, or a bare "could not be delivered": neither says why)
_REFUSED_RE = re.compile(
    r"\b" + REFUSED + r"|\breject\b|\bfail(?:ed|ure)?\b|\b(?:not|un) ?(?:be )?deliver\w*|"
    r"\b(?:unable to|could not|cannot) (?:be )?deliver\w*|"
    r"\bdelivery (?:failed|failure|error|problem)",
    re.IGNORECASE,
)
_ADDRESS_OR_LINK_RE = re.compile(
    r"[^\s<>()\[\]]{0,256}@[^\s<>()\[\]]{1,256}|\b(?:https?://|www\.)\S{1,2000}"
)


def _by_one_family(
    stage: Stage, reply: Reply, context: Context, read: str
) -> Classification | None:
    """A refusal no rule knows, read by its word families (rules/word_families.py): the
    category of the one family its words belong to; none, or several, decide nothing.
    `read` is the reply's `read_text`."""
    said = reply.text[:CLASSIFY_CHARS]
    # an address or a link is not a word of the reply ("user@example.com" names no user)
    text = _ADDRESS_OR_LINK_RE.sub(" ", read)
    if _VETO_RE.search(text):
        return None
    matched = [r for r in WORD_FAMILIES if r.matches(stage, reply, context.provider, text)]
    # a cause (TLS, a list, a limit, relaying...) beats the subject it is about (the login,
    # the recipient, the sender, the message): "Local user only" is relaying
    causes = [r for r in matched if r.id not in SUBJECT_FAMILIES]
    # a subject with a bare word of refusal and no cause ("Recipient rejected, reason
    # unknown", "Delivery not authorized, message refused") is a subject without evidence
    # (#16): the subject rules above would have read a state ("unknown user", "full")
    if not causes and _REFUSED_RE.search(text):
        return None
    matched = causes or matched
    if not matched or len({r.category for r in matched}) > 1:
        return None
    rule = matched[0]
    fields = {**context.fields(said), "stage": stage.value}
    return Classification(
        rule.category,
        _render(rule.finding, context, fields),
        _render(rule.remediation, context, fields),
        rule.id,
    )


# A client library's words around the server's ("The SMTP server requires a secure connection
# or the client was not authenticated. The server response was: 5.7.0 Authentication
# Required", System.Net.Mail): the server's words after the marker are the reply to read. (A
# server's own "host x said: ..." is not a wrapper: Postfix's sender callout quotes the other
# server inside its own refusal.)
_WRAPPER_RE = re.compile(
    r"(?:the server response was|the server replied):[ \t]{0,10}(?:[245][0-9]{2}[ -])?",
    re.IGNORECASE,
)


# A bounce's note of the command it answered ("(in reply to RCPT TO command)", Postfix) is the
# stage, which fleet knows already, not the server's words.
_IN_REPLY_TO_RE = re.compile(
    r"\s{0,3}\(in reply to (?:end of )?[A-Za-z ]{2,20} command\)", re.IGNORECASE
)


def _unwrapped_reply(reply: Reply) -> Reply | None:
    said = reply.text[:CLASSIFY_CHARS]
    markers = list(_WRAPPER_RE.finditer(said))
    rest = said[markers[-1].end() :].strip() if markers else said
    rest = _IN_REPLY_TO_RE.sub("", rest)
    if not rest.strip() or rest == said:
        return None
    return Reply(code=reply.code, enhanced=parse_enhanced(rest), text=rest)


# A refusal word as a sentence of its own before the server's words (spamdyke, the qmail filter
# Plesk ships, starts every answer with "Refused. "): a stamp, not a reason. When no rule reads
# the whole reply, the words after it are read as the reply, so that "421 Refused. Service not
# available" stays the receiver's transient state and a word family still hears its words.
# (every stamp at once: the words after them never start with one, so one more reading at most)
# (after the server's own name, when it starts its replies with it: "mx1.example.net Refused.
# You must specify at least one valid recipient.")
_STAMP_RE = re.compile(
    r"^\s*(?:[a-z0-9-]{1,63}(?:\.[a-z0-9-]{1,63})+\s+)?(?:(?:refused|rejected|denied|blocked)[.!]\s+)+"
    r"(?=\S)",
    re.IGNORECASE,
)


def _without_stamp(reply: Reply) -> Reply | None:
    match = _STAMP_RE.match(reply.text)
    if match is None:
        return None
    rest = reply.text[match.end() :]
    return Reply(code=reply.code, enhanced=reply.enhanced, text=rest)


def _with_prefixed_code(reply: Reply) -> Reply:
    if reply.enhanced is not None:
        return reply
    match = PREFIXED_CODE_RE.search(reply.text[:CLASSIFY_CHARS])
    if match is None:
        return reply
    return Reply(code=reply.code, enhanced=match.group(1), text=reply.text)


# The learned reader (learned.py) speaks only where every rule fell back to "unrecognised", only
# when at least this sure (chosen by tools/measure_reader.py's blind-round and leave-one-set-out
# runs, tests/corpus/README.md), and never a reading that needs evidence it cannot have: a
# fact about the site's IP, its reputation (DIRECT_SEND_DIRTY_IP and IP_REPUTATION stay
# evidence-based) or its PTR (REVERSE_DNS), nor "unrecognised" itself (that is abstaining).
LEARNED_THRESHOLD = 0.7
_NEVER_LEARNED = frozenset(
    c.value for c in (Category.ip_reputation, Category.reverse_dns, Category.unrecognised_refusal)
)


def learned_reading(
    stage: Stage,
    reply: Reply,
    model: learned.Model | None = None,
    threshold: float = LEARNED_THRESHOLD,
    veto: bool = True,
) -> learned.Guess | None:
    """The learned reader's category for a reply no rule recognised, when it may speak:
    sure enough, a category it may give, one its words alone point at too (not a guess from
    the stage and the code: "5.4.6 Requested action not taken" stays unrecognised), and words
    that name no policy (a refusal "for policy reasons" names a rule it does not explain: the
    word families' VETO, which the corpus labels as unrecognised whatever else it says)."""
    if veto and _VETO_RE.search(read_text(reply)):
        return None
    from fleet.judgement import learned

    found = learned.guess(stage.value, reply.code, reply.enhanced, reply.text, model)
    if found.probability < threshold or found.category in _NEVER_LEARNED:
        return None
    return found if found.by_words == found.category else None


_LEARNED_FINDING = (
    "the server refused at {stage} ({code}); no rule recognises its words, but they most "
    "resemble replies that mean {category} (a learned reading, {sure} % sure, not proven): "
    '"{said}"'
)


def _by_resemblance(stage: Stage, reply: Reply, context: Context) -> Classification | None:
    found = learned_reading(stage, reply)
    if found is None:
        return None
    return _learned_classification(stage, reply, context, found, _LEARNED_FINDING)


def _learned_classification(
    stage: Stage,
    reply: Reply,
    context: Context,
    found: learned.Guess,
    finding: str,
    **extra: str,
) -> Classification:
    category = Category(found.category)
    fields = {
        **context.fields(reply.text[:CLASSIFY_CHARS]),
        **_said_fields(stage, reply),
        "category": category.value,
        "sure": str(int(found.probability * 100)),
        **extra,
    }
    return Classification(
        category,
        finding.format_map(fields),
        "Likely: " + LIKELY_REMEDY[category].format_map(fields) + " " + LEARNED_CAVEAT,
        RuleId.learned_reader,
    )


# A WEAK reading: one the rules reach without words about its cause: from a status code alone
# (`status_codes`, and the envelope's X.1.x at MAIL and RCPT), from the thing refused alone
# (`subjects`; the envelope's "<address>: Recipient address rejected:" prefix at RCPT and a
# bare "Message rejected" at DATA), a word family's single word, or the fallback's stage and
# code (a 4xx is a deferral, a refused STARTTLS a TLS failure). The learned reader may contest
# such a reading, and only such (judge11, #16): where it is this sure of another category
# its words alone also point at, its reading replaces the weak one. Chosen by
# tools/measure_reader.py (c): replayed on the five blind rounds whose frozen rules name the
# rule that decided (737 replies, each round's learner trained on the files before it), it
# fixed 7 and broke none; left one set out, it changed no reading of the 1,545 seen replies
# the rules read (at 0.9 it broke one; abstaining, instead of taking the other reading, broke
# more than it fixed). Never a reading about the site's IP either way (IP_REPUTATION,
# REVERSE_DNS and DIRECT_SEND_DIRTY_IP stay evidence-based: the learner cannot say them, and
# a weak reading of them is not contested).
CONTEST_THRESHOLD = 0.95
# the envelope's weak rules: two read a status code, two a bare subject
_ENVELOPE_BY_CODE = (RuleId.smtp_sender_status, RuleId.smtp_recipient_status)
WEAK_ENVELOPE_RULES = (
    *_ENVELOPE_BY_CODE,
    RuleId.smtp_rcpt_address_refused,
    RuleId.smtp_message_refused,
)
# rules outside status_codes that read a code (and a stage) alone, weak like them (judge12):
# any 4xx to STARTTLS, a bare 501 to EHLO, the enhanced X.2.3/X.3.4 message size and 4.5.3
_OTHER_BY_CODE = (
    RuleId.tls_not_available,
    RuleId.helo_syntax_code,
    RuleId.smtp_message_size,
    RuleId.smtp_too_many_recipients,
)
_BY_CODE = frozenset([*(r.id for r in STATUS_CODES), *_ENVELOPE_BY_CODE, *_OTHER_BY_CODE])
_BY_ONE_WORD = frozenset(r.id for r in WORD_FAMILIES)
WEAK_RULES = frozenset(
    [r.id for r in STATUS_CODES + SUBJECTS + WORD_FAMILIES]
    + list(WEAK_ENVELOPE_RULES)
    + list(_OTHER_BY_CODE)
)
NEVER_CONTESTED = frozenset((Category.ip_reputation, Category.reverse_dns))


def is_weak(found: Classification) -> bool:
    """A reading the rules reach by a code, a stage or a bare subject (see WEAK_RULES)."""
    if found.category in NEVER_CONTESTED:
        return False
    if found.rule is None:
        return found.category is not Category.unrecognised_refusal
    return found.rule in WEAK_RULES


def contested(
    stage: Stage,
    reply: Reply,
    found: Classification,
    model: learned.Model | None = None,
    threshold: float = CONTEST_THRESHOLD,
) -> learned.Guess | None:
    """The learned reader's other reading of a weak rule reading, when it contests it."""
    if not is_weak(found):
        return None
    other = learned_reading(stage, reply, model, threshold)
    return None if other is None or other.category == found.category.value else other


_CONTEST_FINDING = (
    "the server refused at {stage} ({code}); the rules read it as {weak} only by its {basis}, "
    "and its words most resemble replies that mean {category} (a learned reading, {sure} % "
    'sure, not proven): "{said}"'
)


def classify_reply(stage: Stage, reply: Reply, context: Context) -> Classification:
    """Category, finding and remediation for a negative reply at a stage: by the rules, else
    (a refusal they do not recognise) by the learned reader when it is sure enough; a weak
    rule reading (`is_weak`) the learned reader contests when it is very sure of another."""
    found = read_by_rules(stage, reply, context)
    if found.rule is None and found.category is Category.unrecognised_refusal:
        return _by_resemblance(stage, reply, context) or found
    other = contested(stage, reply, found)
    if other is None:
        return found
    return _learned_classification(
        stage,
        reply,
        context,
        other,
        _CONTEST_FINDING,
        weak=found.category.value,
        basis=_basis(found),
    )


def _basis(weak: Classification) -> str:
    """What a weak reading rests on, for its finding."""
    if weak.rule is None:
        return "status code at this stage"
    if weak.rule in _BY_CODE:
        return "status code"
    if weak.rule in _BY_ONE_WORD:
        return "one word"
    return "subject (what it refuses)"


def _said_fields(stage: Stage, reply: Reply) -> dict[str, str]:
    said = " ".join(reply.text.split())
    return {
        "stage": stage.value,
        "code": str(reply.code or "no valid code"),
        "said": said if len(said) <= 200 else said[:199] + "\N{HORIZONTAL ELLIPSIS}",
    }


def read_by_rules(stage: Stage, reply: Reply, context: Context) -> Classification:
    """The rules' reading alone: the first rule that matches, else the fallback (rule None)."""
    inner = _unwrapped_reply(reply)
    if inner is not None:
        reply = inner
    reply = _with_prefixed_code(reply)
    text = read_text(reply)
    found = _inner_cause(stage, reply, context) or _by_rules(stage, reply, context, text)
    if found is not None:
        return found
    unstamped = _without_stamp(reply)
    if unstamped is not None:
        return read_by_rules(stage, unstamped, context)
    category = _fallback_category(stage, reply)
    if category is Category.unrecognised_refusal:
        found = _by_one_family(stage, reply, context, text)
        if found is not None:
            return found
    fields = {**context.fields(reply.text[:CLASSIFY_CHARS]), **_said_fields(stage, reply)}
    return Classification(
        category,
        _FALLBACK_FINDING[category].format_map(fields),
        _FALLBACK_REMEDY[category].format_map(fields),
        None,
    )
