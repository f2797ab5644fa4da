"""The scrubbing boundary (fleet.credentials.Secrets): one sweep's secrets, in every form
they took on the wire, blanked whole or in pieces, across lines and letter case."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from fleet.credentials import REDACTED, Secrets, login_forms
from fleet.results import (
    Category,
    ConversationRecord,
    DeviceResult,
    Egress,
    EgressTransport,
    Mode,
    Reply,
    SiteResult,
    Stage,
    StageResult,
    StageStatus,
    Verdict,
)

PASSWORD = "Tr0ub4dor-horse-Battery9"
USER = "scanner@contoso.test"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def book() -> Secrets:
    secrets = Secrets()
    secrets.add_login(USER, PASSWORD)
    return secrets


def test_each_sweep_has_its_own_book() -> None:
    first, second = book(), Secrets()
    assert PASSWORD not in first.scrub(f"said {PASSWORD}")
    assert second.scrub(f"said {PASSWORD}") == f"said {PASSWORD}"  # nothing shared


def test_every_wire_form_of_a_login_is_blanked() -> None:
    secrets = book()
    for form in login_forms(USER, PASSWORD):
        assert (
            secrets.scrub(f"535 5.7.8 refused: {form} (bye)")
            == f"535 5.7.8 refused: {REDACTED} (bye)"
        )


def test_a_credential_cut_short_is_blanked() -> None:
    blob = b64(f"\0{USER}\0{PASSWORD}")
    said = book().scrub(f"bad credentials: {blob[:-5]}...")
    assert said == f"bad credentials: {REDACTED}..."


def test_a_credential_wrapped_over_lines_is_blanked() -> None:
    blob = b64(f"\0{USER}\0{PASSWORD}")
    pieces = [blob[i : i + 6] for i in range(0, len(blob), 6)]
    text = "5.7.8 Authentication failed for:\n" + "\n".join(f"5.7.8 {p}" for p in pieces)
    said = book().scrub(text)
    assert all(p not in said for p in pieces if len(p) > 2)
    assert said.startswith("5.7.8 Authentication failed for:\n5.7.8 ****")


def test_a_wrapped_credential_quoted_on_one_line_is_blanked() -> None:
    """A finding or a flag's evidence quotes a multi-line reply on one line: the pieces stay
    apart by spaces and each line's enhanced code, or by spaces alone."""
    blob = b64(f"\0{USER}\0{PASSWORD}")
    pieces = [blob[i : i + 6] for i in range(0, len(blob), 6)]
    secret_part = pieces[len(USER) // 6 + 1 :]  # the pieces before only encode the username
    for gap in (" 5.7.8 ", " "):
        said = book().scrub(f"auth: 535 5.7.8 Authentication failed for:{gap}{gap.join(pieces)}")
        assert REDACTED in said
        assert all(p not in said for p in secret_part), said


def test_half_of_a_password_is_blanked_in_any_case() -> None:
    said = book().scrub(f"you typed {PASSWORD[:13].upper()}")
    assert said == f"you typed {REDACTED}"


def test_either_half_of_a_short_password_is_blanked() -> None:
    """Most copiers' passwords are under sixteen characters: a half of one is still half."""
    secrets = Secrets()
    secrets.add_login(USER, "Copier-Pass12")  # 13 characters: halves of 6 and 7
    said = secrets.scrub("535-5.7.8 h1 Copier\n535 5.7.8 h2 -Pass12")
    assert said == "535-5.7.8 h1 ****\n535 5.7.8 h2 ****"
    assert secrets.scrub("a Copy of -Pass") == "a Copy of -Pass"  # under half: readable


def test_a_lone_short_piece_of_a_password_is_a_word_and_stays_readable() -> None:
    """One sweep's Secrets scrub every field of every result: a company's name at the head
    of its password ("Contoso2024!") must not blank that client's name, its site ids, or a
    banner's "Welcome", wherever it stands alone (review H 2)."""
    secrets = Secrets()
    for password in ("Contoso2024!", "Summer2024", "Welcome2024!", "Dental2024!"):
        secrets.add_login(USER, password)
    for text in (
        "Contoso",
        "contoso-hq",
        "Summerfield Dental",
        "220 mx.example ESMTP Welcome to our server",
        "dental-main-office",
    ):
        assert secrets.scrub(text) == text
    # ... while the same pieces beside each other's other half are the password, split
    assert secrets.scrub("535 h1 Contos h2 o2024!") == "535 h1 **** h2 ****"
    assert secrets.scrub("Contoso2024!") == REDACTED


def test_a_password_split_by_invisible_characters_is_blanked() -> None:
    for invisible in ("\u00ad", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"):
        split = PASSWORD[:5] + invisible + PASSWORD[5:]
        said = book().scrub(f"bad password: {split} (bye)")
        assert said == f"bad password: {REDACTED} (bye)", repr(invisible)


def test_a_dns_key_in_another_letter_case_is_blanked() -> None:
    secrets = Secrets()
    secrets.add("k7C9q2mzx4fwP8r3tnb6")
    name = "2.0.0.127.K7c9Q2MZX4FWp8R3TNB6.zen.dq.spamhaus.net"
    assert secrets.scrub(name) == f"2.0.0.127.{REDACTED}.zen.dq.spamhaus.net"


def test_ordinary_words_in_a_secret_stay_readable_elsewhere() -> None:
    secrets = Secrets()
    secrets.add("s3cret-canary-internal")
    assert secrets.scrub("INTERNAL_ERROR near s3cret-canary-internal") == "INTERNAL_ERROR near ****"


def test_a_url_is_blanked_only_whole() -> None:
    secrets = Secrets()
    secrets.add("https://hooks.slack.test/services/T0/B0/XYZ", fragments=False)
    said = secrets.scrub(
        "see https://check.spamhaus.org and https://hooks.slack.test/services/T0/B0/XYZ"
    )
    assert said == "see https://check.spamhaus.org and ****"


def test_a_model_is_scrubbed_field_by_field_and_keeps_its_types() -> None:
    reply = Reply(
        code=535, enhanced="5.7.8", text=f"AUTH PLAIN {b64(chr(0) + USER + chr(0) + PASSWORD)}"
    )
    clean = book().scrub_model(reply)
    assert clean.text == f"AUTH PLAIN {REDACTED}"
    assert clean.code == 535
    untouched = Reply(code=250, text="OK")
    assert book().scrub_model(untouched) is untouched


def test_a_site_with_nothing_secret_in_it_is_returned_as_is() -> None:
    """A site's conversations are a dict: an untouched one must not make the scrubber copy
    the site (every site of a sweep with secrets would be rebuilt)."""
    now = datetime.now(UTC)
    site = SiteResult(
        site="hq",
        client="Contoso",
        verdict=Verdict.ok,
        egress=Egress(transport=EgressTransport.direct),
        devices=[
            DeviceResult(
                device="mfp",
                mode=Mode.submission,
                verdict=Verdict.ok,
                category=Category.ok,
                finding="accepted",
                conversation="c1",
            )
        ],
        conversations={"c1": ConversationRecord(host="smtp.contoso.test", port=587)},
        started_at=now,
        finished_at=now,
    )
    assert book().scrub_model(site) is site

    leaking = site.model_copy(
        update={
            "conversations": {
                "c1": ConversationRecord(
                    host="smtp.contoso.test",
                    port=587,
                    transcript=[
                        StageResult(
                            stage=Stage.auth,
                            status=StageStatus.failed,
                            reply=Reply(code=535, text=f"bad {PASSWORD}"),
                        )
                    ],
                )
            }
        }
    )
    clean = book().scrub_model(leaking)
    assert clean is not leaking
    reply = clean.conversations["c1"].transcript[0].reply
    assert reply is not None
    assert reply.text == f"bad {REDACTED}"
    assert clean.devices[0] is leaking.devices[0]  # what had nothing secret is kept


def test_a_string_held_twice_in_a_model_is_scrubbed_the_same_each_time() -> None:
    """Each distinct string of a model is scrubbed once (a site holds most of its strings
    more than once); every copy reads as the first, and a clean copy stays the very object
    its holder had, so that nothing clean is rebuilt."""
    leak, clean_text = f"535 bad {PASSWORD}", "250 2.1.5 Recipient OK"
    # equal strings that are not the same object, as a site's devices hold them
    twins = ["".join(list(leak)) for _ in range(2)] + ["".join(list(clean_text)) for _ in range(2)]
    assert twins[0] is not twins[1]
    assert twins[2] is not twins[3]
    replies = [Reply(code=250, text=text) for text in twins]
    stages = [StageResult(stage=Stage.rcpt, status=StageStatus.ok, reply=r) for r in replies]
    record = ConversationRecord(host="smtp.contoso.test", port=587, transcript=stages)
    clean = book().scrub_model(record)
    said = [s.reply.text for s in clean.transcript if s.reply is not None]
    assert said == [f"535 bad {REDACTED}"] * 2 + [clean_text] * 2
    assert clean.transcript[2] is stages[2]
    assert clean.transcript[3] is stages[3]
    assert all(book().scrub(text) == text_said for text, text_said in zip(twins, said, strict=True))
