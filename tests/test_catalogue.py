"""The catalogue of judgement holds together: every rule is named by a RuleId and unique,
every category fleet can decide has its flag, and the README documents every category and
every flag with what to do about it."""

from __future__ import annotations

import re
from pathlib import Path

from fleet.classify import OAUTH_TOKEN_RULES, RULES, RuleId
from fleet.matrix import (
    _CATEGORY_FLAGS,
    _DIRECT_SEND_REJECTED_RULES,
    _OAUTH_TOKEN_FAILED_RULES,
    _TLS_VERSION_RULES,
)
from fleet.oauth import TokenFailureReason
from fleet.results import (
    SEVERITY_ORDER,
    VERDICT_RANK,
    WORST_FIRST,
    Category,
    FlagCode,
    Severity,
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
