"""--verify-delivery end to end against real mail software: Postfix (with Debian's SPF policy
service stamping Authentication-Results) delivers over LMTP into Dovecot, whose Sieve rule
files SPF failures into Junk; fleet finds each test message over IMAPS (the lab CA's
certificate, verified) and deletes it (lab tier, marker `lab`).

The story of issue #23: acceptance at RCPT TO is not delivery. Direct Send from an IP that the
sender domain's SPF does not name is accepted, then lands in Junk ("scans never arrive").
"""

from __future__ import annotations

import base64
import imaplib
import json
import secrets
import shutil
import ssl
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet.lab.oauth import LabApp, LabTokenEndpoint
from fleet.report.json_report import read_json
from fleet.results import (
    Delivery,
    DeliveryStatus,
    FlagCode,
    Severity,
    SiteResult,
    SweepResult,
    Verdict,
)
from tests.conftest import Run, fleet_env, run_fleet
from tests.inventory_builder import InventoryBuilder
from tests.lab import processes
from tests.lab.services import (
    DROPPED,
    EHLO_NAME,
    MAILBOX,
    MX_NAME,
    SITES,
    SPF_DOMAIN,
    Lab,
    LabError,
    Ports,
)
from tests.test_lab_e2e import require_lab

pytestmark = pytest.mark.lab

_, NOT_NAMED, NAMED = SITES  # 127.0.0.21 and 127.0.0.30: the SPF of SPF_DOMAIN names only .30
PASSWORD_ENV = "FLEET_TEST_IMAP_PASSWORD"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_lab()  # Postfix, Dovecot with Sieve, the SPF policy service, ...
    run_dir = Path(tempfile.mkdtemp(prefix="fleet-lab-"))
    lab = Lab(run_dir, Ports.free())
    try:
        lab.start()
    except LabError as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail(f"the lab did not start: {exc}")
    try:
        yield lab
    finally:
        left = processes.survivors(lab.stop())
        shutil.rmtree(run_dir, ignore_errors=True)
        assert not left, f"still running after the lab stopped: {left}"


def password(lab: Lab) -> str:
    return lab.mailbox_password_file.read_text().strip()


def inventory(
    lab: Lab,
    *,
    dropped_within_s: float = 3,
    login: dict[str, Any] | None = None,
    imap_ca: bool = True,
) -> InventoryBuilder:
    """Two sites sending as SPF_DOMAIN: one its SPF names, one it does not; the named site
    also has a copier whose recipient Postfix accepts and then drops. Each mailbox is
    looked at with `login` (the lab's password by default), trusting the lab's CA unless
    `imap_ca` is false."""
    imap = {"host": "127.0.0.1", "port": lab.ports.imap, "username": MAILBOX}
    imap.update(login or {"password_env": PASSWORD_ENV})
    if imap_ca:
        imap["ca_file"] = str(lab.ca_file)

    def device(name: str, to: str, within_s: float) -> dict[str, Any]:
        smtp = {
            "profile": "lab-mx",
            "mode": "direct_send",
            "from": f"scanner@{SPF_DOMAIN}",
            "to": to,
        }
        return {"id": name, "smtp": smtp, "verify": {"within_s": within_s, "imap": imap}}

    defaults = {
        "dns": {"nameservers": [lab.ports.dns_address], "timeout_s": 2, "tries": 1},
        "timeouts": {"connect_s": 5, "command_s": 10, "site_s": 30},
        "ehlo_name": EHLO_NAME,
    }
    mx = {
        "host": MX_NAME,
        "port": lab.ports.smtp,
        "security": "starttls",
        "ca_file": str(lab.ca_file),
    }
    built = InventoryBuilder(defaults, sections={"profiles": {"lab-mx": mx}})
    for lab_site, devices in (
        (
            NAMED,
            [device("mfp-inbox", MAILBOX, 20), device("mfp-dropped", DROPPED, dropped_within_s)],
        ),
        (NOT_NAMED, [device("mfp-junk", MAILBOX, 20)]),
    ):
        egress = {"via": lab.socks_url(lab_site), "ip": lab_site.egress_ip}
        built.site(lab_site.id, *devices, client=lab_site.client, egress=egress)
    return built


@pytest.fixture(scope="module")
def swept(lab: Lab) -> tuple[Run, SweepResult, Path]:
    """One sweep with --send-test --verify-delivery by the real command line, kept in a
    store of its own so that every output can be rendered from it."""
    folder = lab.run_dir / "delivery"
    folder.mkdir()
    inventory(lab).write(folder / "inventory.yaml")
    db = folder / "fleet.db"
    run = run_fleet(
        "--debug", "--log-file", str(folder / "fleet.log"),
        "sweep", "-i", str(folder / "inventory.yaml"), "--send-test", "--verify-delivery",
        "--format", "json", "--quiet", "--db", str(db),
        env=fleet_env(**{PASSWORD_ENV: password(lab)}),
    )  # fmt: skip
    assert run.stdout, run.stderr
    return run, read_json(run.stdout), db


def site(result: SweepResult, site_id: str) -> SiteResult:
    return next(s for s in result.sites if s.site == site_id)


def device_delivery(result: SweepResult, device_id: str) -> Delivery:
    device = next(d for s in result.sites for d in s.devices if d.device == device_id)
    assert device.delivery is not None, device
    return device.delivery


def test_a_site_the_spf_names_lands_in_the_inbox(swept: tuple[Run, SweepResult, Path]) -> None:
    _, result, _ = swept
    delivery = device_delivery(result, "mfp-inbox")
    assert delivery.status is DeliveryStatus.inbox
    assert delivery.folder == "INBOX"
    assert delivery.spf == "pass"
    assert delivery.delay_s is not None
    assert 0 <= delivery.delay_s < 20
    assert "lab-mx.test; spf=pass" in (delivery.authentication_results or "")
    assert delivery.deleted
    flagged = {d for f in site(result, NAMED.id).flags for d in f.devices}
    assert "mfp-inbox" not in flagged


def test_a_site_the_spf_does_not_name_lands_in_junk_with_the_spf_cause(
    swept: tuple[Run, SweepResult, Path],
) -> None:
    _, result, _ = swept
    delivery = device_delivery(result, "mfp-junk")
    assert delivery.status is DeliveryStatus.junk
    assert delivery.folder == "Junk"
    assert delivery.spf == "fail"
    assert delivery.deleted
    junk = next(f for f in site(result, NOT_NAMED.id).flags if f.code == FlagCode.DELIVERED_TO_JUNK)
    assert junk.severity is Severity.warn
    assert junk.devices == ["mfp-junk"]
    assert f"SPF fail for {NOT_NAMED.egress_ip}" in junk.evidence
    assert f"ip4:{NOT_NAMED.egress_ip}" in junk.remediation


def test_a_message_postfix_accepts_then_drops_is_not_delivered(
    swept: tuple[Run, SweepResult, Path],
) -> None:
    run, result, _ = swept
    delivery = device_delivery(result, "mfp-dropped")
    assert delivery.status is DeliveryStatus.not_delivered
    assert delivery.folder is None
    lost = next(f for f in site(result, NAMED.id).flags if f.code == FlagCode.NOT_DELIVERED)
    assert lost.severity is Severity.critical
    assert lost.devices == ["mfp-dropped"]
    assert site(result, NAMED.id).verdict is Verdict.critical
    assert run.code == 2  # critical


def test_the_test_messages_are_deleted(lab: Lab, swept: tuple[Run, SweepResult, Path]) -> None:
    _, result, _ = swept
    had = [s.conversation_of(d) for s in result.sites for d in s.devices]
    ids = [c.test_message_id for c in had if c.test_message_id]
    assert len(ids) == 3
    assert not messages_with(lab, ids)


@pytest.mark.parametrize("result_format", ["table", "csv", "html", "json"])
def test_every_output_has_the_findings_and_no_password(
    lab: Lab, swept: tuple[Run, SweepResult, Path], result_format: str
) -> None:
    run, _, db = swept
    report = run_fleet("report", "--format", result_format, "--db", str(db), "--detail")
    assert report.code in (0, 2), report.stderr
    for code in ("DELIVERED_TO_JUNK", "NOT_DELIVERED"):
        assert code in report.stdout, result_format
    secret = password(lab)
    forms = [secret, base64.b64encode(secret.encode()).decode(), secret[: len(secret) // 2]]
    log = db.parent / "fleet.log"
    assert "DEBUG" in log.read_text()  # the sweep logged at debug level (stderr and file)
    outputs = [
        report.stdout,
        report.stderr,
        run.stdout,
        run.stderr,  # --debug
        log.read_text(),
        *(p.read_bytes().decode("latin-1") for p in db.parent.glob("fleet.db*")),
    ]
    for text in outputs:
        for form in forms:
            assert form not in text


def test_keep_test_messages_leaves_the_message(lab: Lab, tmp_path: Path) -> None:
    inventory(lab).write(tmp_path / "inventory.yaml")
    run = run_fleet(
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--keep-test-messages", "--format", "json", "--quiet", "--no-store",
        env=fleet_env(**{PASSWORD_ENV: password(lab)}),
    )  # fmt: skip
    result = read_json(run.stdout)
    delivery = device_delivery(result, "mfp-inbox")
    assert delivery.status is DeliveryStatus.inbox
    assert not delivery.deleted
    assert messages_with(lab, [delivery.test_message_id]) == [delivery.test_message_id]


def test_a_mailbox_fleet_cannot_trust_is_unknown_not_ok(lab: Lab, tmp_path: Path) -> None:
    # Given a verify mailbox whose certificate fleet cannot verify (no ca_file: system CAs)
    inventory(lab, imap_ca=False).write(tmp_path / "inventory.yaml")
    # When the site is scanned
    run = run_fleet(
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--format", "json", "--quiet", "--no-store",
        env=fleet_env(**{PASSWORD_ENV: password(lab)}),
    )  # fmt: skip
    # Then no password went over unverified TLS, and the delivery is unknown with the reason
    result = read_json(run.stdout)
    delivery = device_delivery(result, "mfp-inbox")
    assert delivery.status is DeliveryStatus.unknown
    assert "certificate" in (delivery.detail or "")
    flag = next(f for f in site(result, NAMED.id).flags if f.code == FlagCode.DELIVERY_UNKNOWN)
    assert flag.severity is Severity.unknown
    assert site(result, NAMED.id).verdict is not Verdict.ok


def messages_with(lab: Lab, test_ids: list[str]) -> list[str]:
    """The test ids still in the mailbox's INBOX or Junk (the test's own IMAP look)."""
    context = ssl.create_default_context(cafile=str(lab.ca_file))
    found = []
    with imaplib.IMAP4_SSL("127.0.0.1", lab.ports.imap, ssl_context=context, timeout=10) as client:
        client.login(MAILBOX, password(lab))
        for folder in ("INBOX", "Junk"):
            client.select(folder, readonly=True)
            for test_id in test_ids:
                _, data = client.search(None, "HEADER", "X-Fleet-Test-Id", test_id)
                if data[0]:
                    found.append(test_id)
    return found


def test_scan_shows_where_the_message_went_in_its_transcript(lab: Lab, tmp_path: Path) -> None:
    inventory(lab).write(tmp_path / "inventory.yaml")
    run = run_fleet(
        "scan", NOT_NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--quiet", "--no-store",
        env=fleet_env(**{PASSWORD_ENV: password(lab)}),
    )  # fmt: skip
    line = next(x for x in run.stdout.splitlines() if x.strip().startswith("delivery:"))
    assert "junk (Junk) after" in line
    assert f"in {MAILBOX} (imap, test id" in line
    assert "spf=fail" in line
    assert line.rstrip().endswith("deleted")
    assert password(lab) not in run.stdout + run.stderr


# ---- verify.imap.oauth2: AUTHENTICATE XOAUTH2 against Dovecot's oauth2 passdb ----------

TENANT = "00000000-0000-4000-8000-0000000000e1"
IMAP_APP = "33333333-3333-4333-8333-000000000001"
APP_SECRET_ENV = "FLEET_TEST_IMAP_APP_SECRET"
GIVEN_TOKEN_ENV = "FLEET_TEST_IMAP_TOKEN"


@pytest.fixture(scope="module")
def token_endpoint(lab: Lab) -> Iterator[LabTokenEndpoint]:
    """The Entra ID-like endpoint on the port the lab's Dovecot introspects tokens at, with
    an app whose app-only token opens MAILBOX (its IMAP permission in Exchange's terms)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(lab.oauth_chain_file))
    endpoint = LabTokenEndpoint(context)
    endpoint.add_app(TENANT, LabApp(IMAP_APP, secret=secrets.token_urlsafe(24)))
    endpoint.imap_mailboxes[IMAP_APP] = MAILBOX
    endpoint.start(lab.ports.oauth)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def app_secret(endpoint: LabTokenEndpoint) -> str:
    secret = endpoint.tenants[TENANT][IMAP_APP].secret
    assert secret is not None
    return secret


def oauth_inventory(lab: Lab, oauth2: dict[str, Any]) -> InventoryBuilder:
    """The delivery inventory with every mailbox checked with `oauth2`, not a password."""
    return inventory(lab, login={"oauth2": oauth2})


def microsoft_oauth2(lab: Lab, endpoint: LabTokenEndpoint) -> dict[str, Any]:
    return {
        "provider": "microsoft",
        "tenant_id": TENANT,
        "client_id": IMAP_APP,
        "client_secret_env": APP_SECRET_ENV,
        "authority": endpoint.authority,
        "ca_file": str(lab.ca_file),
    }


def test_an_oauth_token_from_the_app_finds_the_message(
    lab: Lab, token_endpoint: LabTokenEndpoint, tmp_path: Path
) -> None:
    # Given a mailbox checked with XOAUTH2 and a token fleet fetches from the app
    oauth_inventory(lab, microsoft_oauth2(lab, token_endpoint)).write(tmp_path / "inventory.yaml")
    asked = len(token_endpoint.requests)
    # When the site is scanned, logging at debug level into a store
    run = run_fleet(
        "--debug", "--log-file", str(tmp_path / "fleet.log"),
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--format", "json", "--quiet", "--db", str(tmp_path / "fleet.db"),
        env=fleet_env(**{APP_SECRET_ENV: app_secret(token_endpoint)}),
    )  # fmt: skip
    # Then Dovecot took the token (its introspection said active) and the message was found
    assert run.stdout, run.stderr
    delivery = device_delivery(read_json(run.stdout), "mfp-inbox")
    assert delivery.status is DeliveryStatus.inbox, delivery.detail
    assert delivery.spf == "pass"
    assert delivery.deleted
    # one XOAUTH2 login per test message looked for (the inbox copier's and the dropped
    # one's), each token asked about once by Dovecot
    assert introspections(token_endpoint, asked) == 2
    # And neither the token nor the app's secret appears anywhere
    tokens = [t for t, i in token_endpoint.issued.items() if i.app_id == IMAP_APP]
    assert tokens
    assert_nowhere(
        [app_secret(token_endpoint), *tokens],
        [run.stdout, run.stderr, *texts_in(tmp_path)],
        login=MAILBOX,
    )


def test_a_google_service_account_token_finds_the_message(
    lab: Lab, token_endpoint: LabTokenEndpoint, tmp_path: Path
) -> None:
    # Given a Google-like service account with domain-wide delegation acting as the mailbox
    token_endpoint.google_users.add(MAILBOX)
    _, key = token_endpoint.add_service_account("fleet-imap@lab.iam.gserviceaccount.com")
    key_file = tmp_path / "service-account.json"
    key_file.write_text(json.dumps(key))
    key_file.chmod(0o600)
    oauth2 = {
        "provider": "google",
        "service_account_file": str(key_file),
        "ca_file": str(lab.ca_file),
    }
    oauth_inventory(lab, oauth2).write(tmp_path / "inventory.yaml")
    # When the site is scanned
    run = run_fleet(
        "--debug", "--log-file", str(tmp_path / "fleet.log"),
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--format", "json", "--quiet", "--db", str(tmp_path / "fleet.db"),
        env=fleet_env(),
    )  # fmt: skip
    # Then the token Dovecot took (introspected: active, this mailbox) found the message
    assert run.stdout, run.stderr
    delivery = device_delivery(read_json(run.stdout), "mfp-inbox")
    assert delivery.status is DeliveryStatus.inbox, delivery.detail
    tokens = [t for t, i in token_endpoint.issued.items() if i.subject == MAILBOX]
    assert tokens
    private_key = str(key["private_key"]).splitlines()[5]  # a line of the key, as echoed
    outputs = [run.stdout, run.stderr, *texts_in(tmp_path)]
    assert_nowhere([*tokens, private_key], outputs, login=MAILBOX)


def test_a_token_the_provider_did_not_issue_is_unknown_with_the_reason(
    lab: Lab, token_endpoint: LabTokenEndpoint, tmp_path: Path
) -> None:
    # Given a token (a JWT-looking one) that the token endpoint never issued
    forged = "eyJ0eXAiOiJKV1QiLCJhbGciOiJIUzI1NiJ9." + secrets.token_urlsafe(60)
    oauth_inventory(lab, {"token_env": GIVEN_TOKEN_ENV}).write(tmp_path / "inventory.yaml")
    asked = len(token_endpoint.requests)
    # When the site is scanned
    run = run_fleet(
        "--debug", "--log-file", str(tmp_path / "fleet.log"),
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--format", "json", "--quiet", "--db", str(tmp_path / "fleet.db"),
        env=fleet_env(**{GIVEN_TOKEN_ENV: forged}),
    )  # fmt: skip
    # Then the delivery is unknown, not "not delivered": the mailbox could not be looked at
    result = read_json(run.stdout)
    delivery = device_delivery(result, "mfp-inbox")
    assert delivery.status is DeliveryStatus.unknown
    assert f"IMAP XOAUTH2 login as {MAILBOX} refused the OAuth token" in (delivery.detail or "")
    assert f"${GIVEN_TOKEN_ENV}" in (delivery.detail or "")
    codes = {f.code for f in site(result, NAMED.id).flags}
    assert FlagCode.DELIVERY_UNKNOWN in codes
    assert FlagCode.NOT_DELIVERED not in codes
    assert introspections(token_endpoint, asked) == 2  # one attempt per look, no retry
    # And the refused token appears nowhere either
    assert_nowhere([forged], [run.stdout, run.stderr, *texts_in(tmp_path)], login=MAILBOX)


def test_a_given_token_that_expired_is_not_sent_to_imap(
    lab: Lab, token_endpoint: LabTokenEndpoint, tmp_path: Path
) -> None:
    # Given a token fetched elsewhere whose exp passed in 2023
    import jwt

    expired = jwt.encode({"aud": "https://outlook.office365.com", "exp": 1700000000}, "k" * 32)
    oauth_inventory(lab, {"token_env": GIVEN_TOKEN_ENV}).write(tmp_path / "inventory.yaml")
    asked = len(token_endpoint.requests)
    # When the site is scanned
    run = run_fleet(
        "--debug", "--log-file", str(tmp_path / "fleet.log"),
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--format", "json", "--quiet", "--db", str(tmp_path / "fleet.db"),
        env=fleet_env(**{GIVEN_TOKEN_ENV: expired}),
    )  # fmt: skip
    # Then the delivery is unknown with the token's date, and the token was never sent
    delivery = device_delivery(read_json(run.stdout), "mfp-inbox")
    assert delivery.status is DeliveryStatus.unknown
    assert f"${GIVEN_TOKEN_ENV}: the token there expired on 2023-11-14 22:13 UTC" in (
        delivery.detail or ""
    )
    assert introspections(token_endpoint, asked) == 0
    assert_nowhere([expired], [run.stdout, run.stderr, *texts_in(tmp_path)], login=MAILBOX)


def test_an_app_secret_the_provider_refuses_is_unknown_with_its_reason(
    lab: Lab, token_endpoint: LabTokenEndpoint, tmp_path: Path
) -> None:
    # Given the app's secret mistyped (its Secret ID pasted instead of its Value, say)
    wrong = secrets.token_urlsafe(24)
    oauth_inventory(lab, microsoft_oauth2(lab, token_endpoint)).write(tmp_path / "inventory.yaml")
    # When the site is scanned
    run = run_fleet(
        "--debug", "--log-file", str(tmp_path / "fleet.log"),
        "scan", NAMED.id, "-i", str(tmp_path / "inventory.yaml"), "--send-test",
        "--verify-delivery", "--format", "json", "--quiet", "--db", str(tmp_path / "fleet.db"),
        env=fleet_env(**{APP_SECRET_ENV: wrong}),
    )  # fmt: skip
    # Then no IMAP login was tried, and the delivery is unknown with the provider's reason
    delivery = device_delivery(read_json(run.stdout), "mfp-inbox")
    assert delivery.status is DeliveryStatus.unknown
    assert f"no OAuth token for IMAP from Entra ID app {IMAP_APP}" in (delivery.detail or "")
    assert "AADSTS7000215" in (delivery.detail or "")
    assert_nowhere([wrong], [run.stdout, run.stderr, *texts_in(tmp_path)], login=MAILBOX)


def introspections(endpoint: LabTokenEndpoint, since: int) -> int:
    """How many tokens Dovecot asked the endpoint about since request number `since`."""
    return sum(r.startswith("POST /introspect") for r in endpoint.requests[since:])


def texts_in(folder: Path) -> list[str]:
    """The log and the store's files (database, WAL, shared memory) of a run."""
    log = (folder / "fleet.log").read_text()
    assert "DEBUG" in log
    return [log, *(p.read_bytes().decode("latin-1") for p in folder.glob("fleet.db*"))]


def assert_nowhere(secrets_: list[str], outputs: list[str], *, login: str) -> None:
    """No secret, nor half of one, nor the XOAUTH2 blob carrying it, in any output."""
    for secret in secrets_:
        blob = base64.b64encode(f"user={login}\1auth=Bearer {secret}\1\1".encode()).decode()
        for form in (secret, secret[: len(secret) // 2], secret[len(secret) // 2 :], blob[-40:]):
            for text in outputs:
                assert form not in text
