"""SMTP replies and network faults -> category, finding and remediation.

The door the rest of fleet uses to its judgement; what is behind it lives in `fleet.judgement`
(see its package docstring): the evidence a reply's words carry, one ordered table of rules
(`RULES`: the receiver's own faults, then the causes the words name, then the subject of a
refusal, then the status codes; the first rule that matches decides), the fallback for a reply
no rule knows, fleet's own decisions, and the one place exceptions from the network are mapped
(`classify_exception`).
"""

from __future__ import annotations

from fleet.judgement.catalogue import RULES
from fleet.judgement.context import SUBMISSION_BY_PROVIDER, Context, provider_of
from fleet.judgement.evidence import (
    blocklist_named,
    clean_text,
    echoed_client_ip,
    listed_domain,
    make_reply,
    names_the_ip,
    parse_enhanced,
    unwrapped,
)
from fleet.judgement.faults import Fault, classify_exception, connection_cut, handshake_fault
from fleet.judgement.oauth_refusals import (
    SEND_AS_APP,
    classify_given_token_refusal,
    classify_oauth_refusal,
    classify_token_failure,
)
from fleet.judgement.own_decisions import fault_remedy, not_retried, own
from fleet.judgement.replies import CLASSIFY_CHARS, Classification, classify_reply
from fleet.judgement.rule import Remedy, Rule
from fleet.judgement.rule_ids import OAUTH_TOKEN_RULES, RuleId

__all__ = [
    "CLASSIFY_CHARS",
    "OAUTH_TOKEN_RULES",
    "RULES",
    "SEND_AS_APP",
    "SUBMISSION_BY_PROVIDER",
    "Classification",
    "Context",
    "Fault",
    "Remedy",
    "Rule",
    "RuleId",
    "blocklist_named",
    "classify_exception",
    "classify_given_token_refusal",
    "classify_oauth_refusal",
    "classify_reply",
    "classify_token_failure",
    "clean_text",
    "connection_cut",
    "echoed_client_ip",
    "fault_remedy",
    "handshake_fault",
    "listed_domain",
    "make_reply",
    "names_the_ip",
    "not_retried",
    "own",
    "parse_enhanced",
    "provider_of",
    "unwrapped",
]
