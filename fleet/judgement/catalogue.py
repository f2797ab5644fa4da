"""The ordered table of every reply rule: the first rule that matches decides.

Precedence, by design: the receiver's own faults, then the families of causes servers name
in many wordings (`named_families`: limits, spam verdicts, bans...), then the causes the words
name (identity, session, envelope), then the subject of a refusal, then the status codes (RFC 3463 enhanced,
then RFC 5321 basic); a reply none of them knows is an unrecognised refusal (`replies`).
"""

from __future__ import annotations

from fleet.judgement.rule import Rule
from fleet.judgement.rules.envelope import ENVELOPE
from fleet.judgement.rules.identity import IDENTITY, RECEIVER_FAULTS
from fleet.judgement.rules.named_families import COUNTED_WAITS, NAMED_FAMILIES
from fleet.judgement.rules.session import SESSION
from fleet.judgement.rules.status_codes import STATUS_CODES
from fleet.judgement.rules.subjects import SUBJECTS

RULES: tuple[Rule, ...] = (
    RECEIVER_FAULTS
    + NAMED_FAMILIES
    + IDENTITY
    + SESSION
    + ENVELOPE
    + COUNTED_WAITS
    + SUBJECTS
    + STATUS_CODES
)
