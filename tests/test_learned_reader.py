"""The learned reader (fleet/judgement/learned.py, #16): a refusal no rule knows, read by
resemblance to the labelled corpus, only when sure enough, always said to be inferred, never
the IP's reputation; its model is what tools/train_reader.py writes from a fixed list of files,
and it is loaded only when a reply needs it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from fleet.classify import Context, classify_reply, make_reply
from fleet.judgement import learned, replies
from fleet.judgement.learned import Guess
from fleet.judgement.replies import read_by_rules
from fleet.judgement.rule_ids import RuleId
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.results import Category, Mode, Stage

from .conftest import run_fleet_async
from .corpus_replay import Entry, ReplayServer, inventory

ROOT = Path(__file__).resolve().parent.parent

CONTEXT = Context(
    mode=Mode.direct_send,
    host="mx.fabrikam.test",
    port=25,
    authenticated=False,
    ip="203.0.113.7",
    sender="scanner@contoso.test",
    ehlo_name="MFP-3F",
)


def _tool(name: str) -> ModuleType:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # (its dataclasses look their module up)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "tools"))


def test_the_shipped_model_is_what_the_training_script_writes_from_its_files() -> None:
    train = _tool("train_reader")
    # a fixed list, not a glob: a set registered later does not change the model silently
    assert isinstance(train.TRAINING_FILES, tuple)
    assert len(train.TRAINING_FILES) == 15
    for name in train.TRAINING_FILES:
        assert (ROOT / "tests" / "corpus" / f"{name}.yaml").is_file(), name
    written = train.dumps(train.train(e for n in train.TRAINING_FILES for e in train.load(n)))
    shipped = (ROOT / "fleet" / "judgement" / learned.MODEL_FILE).read_text("utf-8")
    assert shipped == written, "run: python tools/train_reader.py"


def test_the_model_ships_with_the_package_as_data_not_code() -> None:
    text = (ROOT / "fleet" / "judgement" / learned.MODEL_FILE).read_text("utf-8")
    assert text.startswith('{"bias":')  # plain JSON (never a pickle)
    assert len(text) < 200_000


def test_a_refusal_no_rule_knows_is_read_by_the_learner_said_to_be_inferred() -> None:
    # no rule knows "overfilled"; the words resemble full mailboxes the corpus holds
    reply = make_reply(550, "Sorry, this box is overfilled")
    assert read_by_rules(Stage.rcpt, reply, CONTEXT).category is Category.unrecognised_refusal
    found = classify_reply(Stage.rcpt, reply, CONTEXT)
    assert found.rule is RuleId.learned_reader
    assert found.category is Category.recipient_rejected
    assert found.remediation.startswith("Likely: ")
    assert "inferred" in found.remediation
    assert "learned reading" in found.finding
    # the server's own words are shown, as with every fallback
    assert '"Sorry, this box is overfilled"' in found.finding


@pytest.mark.parametrize("category", ["ip_reputation", "reverse_dns", "unrecognised_refusal"])
def test_the_learner_never_claims_what_needs_evidence(
    monkeypatch: pytest.MonkeyPatch, category: str
) -> None:
    """However sure it is, a learned reading never claims a fact about the site's IP, its
    reputation (so it can never raise DIRECT_SEND_DIRTY_IP or IP_REPUTATION) or its PTR
    (REVERSE_DNS): the rules' honest fallback stays."""
    monkeypatch.setattr(learned, "guess", lambda *_args, **_kw: Guess(category, 0.999, category))
    found = classify_reply(Stage.rcpt, make_reply(550, "Zorglub frobnicated"), CONTEXT)
    assert (found.category, found.rule) == (Category.unrecognised_refusal, None)


def test_below_its_threshold_the_learner_stays_silent(monkeypatch: pytest.MonkeyPatch) -> None:
    unsure = replies.LEARNED_THRESHOLD - 0.01
    monkeypatch.setattr(
        learned, "guess", lambda *_a, **_k: Guess("message_rejected", unsure, "message_rejected")
    )
    found = classify_reply(Stage.data, make_reply(550, "Mail refused"), CONTEXT)
    assert (found.category, found.rule) == (Category.unrecognised_refusal, None)
    sure = replies.LEARNED_THRESHOLD
    monkeypatch.setattr(
        learned, "guess", lambda *_a, **_k: Guess("message_rejected", sure, "message_rejected")
    )
    found = classify_reply(Stage.data, make_reply(550, "Mail refused"), CONTEXT)
    assert (found.category, found.rule) == (Category.message_rejected, RuleId.learned_reader)


def test_a_reading_its_words_do_not_support_stays_unrecognised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sure, but only by the stage and the code: the words alone point elsewhere
    monkeypatch.setattr(
        learned, "guess", lambda *_a, **_k: Guess("helo_rejected", 0.99, "throttled")
    )
    found = classify_reply(Stage.ehlo, make_reply(550, "8BITMIME"), CONTEXT)
    assert (found.category, found.rule) == (Category.unrecognised_refusal, None)


def test_a_refusal_that_names_a_policy_stays_unrecognised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        learned, "guess", lambda *_a, **_k: Guess("message_rejected", 0.99, "message_rejected")
    )
    found = classify_reply(Stage.data, make_reply(550, "Rejected for policy reasons"), CONTEXT)
    assert (found.category, found.rule) == (Category.unrecognised_refusal, None)


def test_a_strong_rule_reading_is_never_second_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(learned, "guess", lambda *_a, **_k: Guess("throttled", 0.999, "throttled"))
    known = classify_reply(Stage.rcpt, make_reply(550, "5.1.1 User unknown"), CONTEXT)
    assert (known.category, known.rule) == (
        Category.recipient_rejected,
        RuleId.smtp_unknown_recipient,
    )
    assert not replies.is_weak(known)


@pytest.mark.parametrize(
    ("guessed", "category"),
    [
        # sure enough, and its words agree: the learned reading replaces the weak one
        (Guess("throttled", 0.99, "throttled"), Category.throttled),
        # not sure enough to contest (it would be enough to read a refusal no rule knows)
        (
            Guess("throttled", replies.CONTEST_THRESHOLD - 0.01, "throttled"),
            Category.temporary_failure,
        ),
        # sure, but by the stage and the code, not by the words
        (Guess("throttled", 0.99, "recipient_rejected"), Category.temporary_failure),
        # never a reading about the site's IP
        (Guess("ip_reputation", 0.99, "ip_reputation"), Category.temporary_failure),
    ],
)
def test_a_weak_reading_is_contested_only_by_a_sure_reading_of_the_words(
    monkeypatch: pytest.MonkeyPatch, guessed: Guess, category: Category
) -> None:
    monkeypatch.setattr(learned, "guess", lambda *_a, **_k: guessed)
    # a 4xx no rule knows is a deferral by its code alone: weak
    reply = make_reply(451, "Try again")
    assert replies.is_weak(read_by_rules(Stage.rcpt, reply, CONTEXT))
    found = classify_reply(Stage.rcpt, reply, CONTEXT)
    assert found.category is category
    if category is not Category.temporary_failure:
        assert found.rule is RuleId.learned_reader
        assert "the rules read it as temporary_failure only by its status code" in found.finding
        assert "a learned reading" in found.finding
        assert found.remediation.startswith("Likely: ")


def test_weak_and_strong_readings_by_the_rules_that_decide() -> None:
    weak = [
        (Stage.data, 550, "5.6.0 Zorglub"),  # a status code alone
        (Stage.mail, 550, "Address zorglub does not exist"),  # a bare subject at MAIL
        (Stage.rcpt, 451, "Zorglub"),  # the fallback's deferral
        (Stage.starttls, 554, "Zorglub"),  # the fallback's TLS failure
        # rules outside status_codes that read a code (and a stage) alone (judge12): any 4xx
        # to STARTTLS, a bare 501 to EHLO, X.2.3/X.3.4 and 4.5.3
        (Stage.starttls, 454, "Zorglub"),
        (Stage.ehlo, 501, "Zorglub"),
        (Stage.data, 552, "5.3.4 Zorglub"),
        (Stage.rcpt, 452, "4.5.3 Zorglub"),
    ]
    for stage, code, text in weak:
        assert replies.is_weak(read_by_rules(stage, make_reply(code, text), CONTEXT)), text
    strong = [
        (Stage.rcpt, 550, "5.1.1 User unknown"),
        (Stage.rcpt, 554, "Relay access denied"),
        (Stage.rcpt, 550, "Zorglub"),  # unrecognised: no reading to contest (the fallback reader's)
    ]
    for stage, code, text in strong:
        assert not replies.is_weak(read_by_rules(stage, make_reply(code, text), CONTEXT)), text
    # never a reading about the site's IP, whatever rule gave it
    ip = replies.Classification(Category.ip_reputation, "f", "r", None)
    assert not replies.is_weak(ip)


def test_a_weak_reading_the_shipped_reader_contests() -> None:
    # Google's SMTP relay "421 4.7.0 Try again later, closing connection." at EHLO: a
    # deferral by its code alone for the rules; Google's page says it is a rate limit
    # (tests/corpus/replies.yaml: gmail-ehlo-try-again-later-closing)
    reply = make_reply(421, "4.7.0 Try again later, closing connection. (command)")
    assert read_by_rules(Stage.ehlo, reply, CONTEXT).category is Category.temporary_failure
    found = classify_reply(Stage.ehlo, reply, CONTEXT)
    assert (found.category, found.rule) == (Category.throttled, RuleId.learned_reader)


def test_the_model_is_loaded_only_when_a_reply_needs_it() -> None:
    code = (
        "from fleet.classify import classify_reply, make_reply, Context\n"
        "from fleet.judgement import learned\n"
        "from fleet.results import Mode, Stage\n"
        "c = Context(mode=Mode.direct_send, host='h', port=25, authenticated=False)\n"
        "classify_reply(Stage.rcpt, make_reply(550, '5.1.1 User unknown'), c)\n"
        "print(learned._model.cache_info().currsize)\n"
        "classify_reply(Stage.rcpt, make_reply(550, 'Zorglub'), c)\n"
        "print(learned._model.cache_info().currsize)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["0", "1"]


async def test_a_learned_reading_through_the_command_line_is_hedged_and_shows_the_words(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    """`fleet sweep` against a loopback server that refuses RCPT in words no rule knows: the
    device's category is the learned one, its finding and remediation say it is inferred,
    the server's words are kept, and no flag about the site's IP is raised."""
    said = "Sorry, this box is overfilled"
    entry = Entry("learned-e2e", "unknown", "rcpt", 550, said, "recipient_rejected")
    server = ReplayServer([entry], certs)
    port = await server.start()
    try:
        path = write_inventory(inventory([entry], lab_dns, port, str(certs.ca_file)))
        run = await run_fleet_async(
            "sweep", "-i", str(path), "--format", "json", "--no-store", "--send-test"
        )
    finally:
        await server.stop()
    (site,) = json.loads(run.stdout)["sites"]
    (device,) = site["devices"]
    assert (device["category"], device["failed_stage"]) == ("recipient_rejected", "rcpt")
    assert "learned reading" in device["finding"]
    assert f'"{said}"' in device["finding"]
    assert device["remediation"].startswith("Likely: ")
    assert device["reply"]["text"] == said
    flags = {f["code"] for f in site["flags"]}
    assert "RECIPIENT_REJECTED" in flags
    assert not flags & {"DIRECT_SEND_DIRTY_IP", "IP_REPUTATION", "REVERSE_DNS"}
