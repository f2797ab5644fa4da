"""The catalogue of judgement holds together: every rule is named by a RuleId and unique,
every category fleet can decide has its flag, and the README documents every category and
every flag with what to do about it."""

from __future__ import annotations

import re
import string
from pathlib import Path

from fleet.classify import (
    OAUTH_TOKEN_RULES,
    RULES,
    RuleId,
    classify_token_failure,
    handshake_fault,
)
from fleet.errors import EgressError, EgressFailure
from fleet.judgement.faults import classify_exception
from fleet.judgement.flag_texts import FLAG_TEXTS, flag_text
from fleet.matrix import (
    _CATEGORY_FLAGS,
    _DIRECT_SEND_REJECTED_RULES,
    _OAUTH_TOKEN_FAILED_RULES,
    _TLS_VERSION_RULES,
)
from fleet.oauth import TokenFailure, TokenFailureReason
from fleet.results import (
    SEVERITY_ORDER,
    VERDICT_RANK,
    WORST_FIRST,
    Category,
    FlagCode,
    Severity,
    Stage,
    StageStatus,
    Verdict,
)

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def test_every_rule_is_named_by_a_rule_id_once() -> None:
    ids = [rule.id for rule in RULES]

    assert all(isinstance(i, RuleId) for i in ids)
    assert len(ids) == len(set(ids))


def test_the_rules_the_matrix_names_exist() -> None:
    ids = {rule.id for rule in RULES}

    assert _DIRECT_SEND_REJECTED_RULES <= ids
    assert RuleId.m365_tls_legacy in ids
    assert _TLS_VERSION_RULES - ids == {RuleId.tls_version}  # a fault, not a reply rule


def test_every_category_but_ok_raises_a_flag() -> None:
    assert set(_CATEGORY_FLAGS) == set(Category) - {Category.ok}


def test_the_readme_documents_every_category_and_flag() -> None:
    for category in Category:
        assert re.search(rf"`{category.value}`", README), category
    for code in FlagCode:
        assert re.search(rf"`{code.value}`", README), code


def test_one_order_of_severity_gives_the_verdicts() -> None:
    assert [SEVERITY_ORDER[s] for s in WORST_FIRST] == [0, 1, 2, 3]
    assert sorted(Verdict, key=VERDICT_RANK.__getitem__, reverse=True) == [
        s.verdict for s in WORST_FIRST
    ]
    assert Severity.info.verdict is Verdict.ok
    assert all(verdict.severity.verdict is verdict for verdict in Verdict)
    assert Verdict.ok.severity is Severity.info


def test_every_oauth_token_failure_has_its_rule_and_keeps_its_id() -> None:
    # The ids reach JSON as "oauth.token.<reason>": a contract.
    assert set(OAUTH_TOKEN_RULES) == set(TokenFailureReason)
    for reason, rule in OAUTH_TOKEN_RULES.items():
        assert rule.value == f"oauth.token.{reason.value}"
    assert _OAUTH_TOKEN_FAILED_RULES == set(OAUTH_TOKEN_RULES.values())


def test_a_handshake_cut_short_for_a_capped_copier_is_its_tls_version() -> None:
    """The probe hands the judgement the exception and the copier's cap; the judgement
    decides that a hang-up means "TLS too old" only for a copier capped below TLS 1.2."""
    reset = ConnectionResetError(104, "Connection reset by peer")
    capped = handshake_fault(reset, "1.0")
    assert (capped.category, capped.rule) == (Category.tls_failure, RuleId.tls_version)
    assert "the copier offers TLS 1.0 at most" in capped.detail
    for tls_max in (None, "1.2"):
        plain = handshake_fault(reset, tls_max)
        assert plain.category is Category.tls_failure
        assert plain.rule is not RuleId.tls_version


def test_no_token_is_an_auth_failure_named_by_the_providers_reason() -> None:
    failure = TokenFailure(TokenFailureReason.bad_secret, "AADSTS7000215: bad secret", "Renew it.")
    decided = classify_token_failure(failure, "Entra ID (tenant t, app a)")
    assert decided.category is Category.auth_failed
    assert decided.rule is OAUTH_TOKEN_RULES[TokenFailureReason.bad_secret]
    assert (
        decided.finding
        == "no OAuth token from Entra ID (tenant t, app a): AADSTS7000215: bad secret"
    )
    assert decided.remediation == "Renew it."


# Flags whose words are the failed conversation's finding and remediation (from its rule).
_CONVERSATION_FLAGS = {code for code, _ in _CATEGORY_FLAGS.values()} | {
    FlagCode.DIRECT_SEND_REJECTED,
    FlagCode.TLS_TOO_OLD_FOR_DEVICE,
    FlagCode.OAUTH_TOKEN_FAILED,
    FlagCode.OAUTH_REFUSED,
}


def test_every_flag_has_its_words_in_one_catalogue() -> None:
    # Every flag is worded either by the rule that judged its conversation, or in flag_texts
    assert set(FlagCode) == _CONVERSATION_FLAGS | set(FLAG_TEXTS)
    # ...and every sentence there is a template that fills with the fields it names
    for code, cases in FLAG_TEXTS.items():
        for case, template in cases.items():
            names = {name for _, name, _, _ in string.Formatter().parse(template) if name}
            fields: dict[str, object] = {name: f"<{name}>" for name in names}
            fields["within_s"] = 30.0  # a number: the template formats it (:g)
            filled = flag_text(code, case, **fields)
            assert "{" not in filled, (code, case)
            assert all(f"<{name}>" in filled for name in names - {"within_s"}), (code, case)


def test_every_failure_of_the_way_out_is_judged_by_its_rule() -> None:
    # What the egress reports, and what it has always meant
    meaning = {
        EgressFailure.host_does_not_resolve: Category.unreachable,
        EgressFailure.resolver_failed: Category.resolver_failure,
        EgressFailure.no_address_for_bind: Category.unreachable,
        EgressFailure.bind_address_not_here: Category.egress_unreachable,
        EgressFailure.proxy_silent: Category.egress_unreachable,
        EgressFailure.no_connection_from_site: Category.timeout,
        EgressFailure.proxy_unreachable: Category.egress_unreachable,
        EgressFailure.destination_refused: Category.unreachable,
        EgressFailure.proxy_failed: Category.egress_unreachable,
        EgressFailure.proxy_error: Category.egress_unreachable,
    }
    assert set(meaning) == set(EgressFailure)
    for failure, category in meaning.items():
        # When the egress raises it, the catalogue names its rule and decides its category
        fault = classify_exception(Stage.connect, EgressError(failure, "what the egress saw"))
        assert fault.rule == RuleId(f"egress.{failure}")
        assert (fault.status, fault.category) == (StageStatus.error, category)
        assert fault.detail == "what the egress saw"
