"""OAuth for SMTP (XOAUTH2) with tokens fleet fetches itself, through the real command line.

A loopback HTTPS token endpoint speaks like Microsoft Entra ID (OpenID discovery, client
credentials, JSON errors with AADSTS codes, as MSAL reads them) and like Google's (a service
account's signed JWT); the Microsoft 365-like submission server accepts XOAUTH2 only with a
token that endpoint issued, and refuses in Exchange's words otherwise. Every finding is
reached through `fleet sweep`; the tokens, client secrets and XOAUTH2 blobs appear in no
output, log or store.
"""

from __future__ import annotations

import asyncio
import base64
import json
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from fleet.classify import (
    Context,
    classify_given_token_refusal,
    classify_oauth_refusal,
    make_reply,
)
from fleet.credentials import SecretSource
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.oauth import LabApp, LabTokenEndpoint
from fleet.lab.smtp import LabSmtpServer, M365SubmissionHandler, Mailbox, Tenant, google_smtp
from fleet.oauth import Token, TokenBroker, TokenFailure, TokenRequest, aad_failure, acquire
from fleet.readiness import readiness
from fleet.results import (
    Category,
    ConversationRecord,
    DeviceResult,
    Egress,
    EgressTransport,
    Flag,
    Mode,
    Severity,
    SiteResult,
    Verdict,
)

from .conftest import (
    M365Lab,
    Run,
    eventually,
    fleet_env,
    free_port,
    run_fleet,
    run_fleet_async,
)
from .hostile import lab_inventory
from .inventory_builder import InventoryBuilder
from .inventory_builder import device as builder_device
from .inventory_builder import site as builder_site

TENANT = "00000000-0000-4000-8000-0000000000c1"
OTHER_TENANT = "00000000-0000-4000-8000-0000000000ff"  # not a tenant the endpoint knows
APP_OK = "11111111-1111-4111-8111-000000000001"
APP_EXPIRED = "11111111-1111-4111-8111-000000000002"
APP_NO_ROLE = "11111111-1111-4111-8111-000000000003"
APP_NOT_IN_EXCHANGE = "11111111-1111-4111-8111-000000000004"
APP_CERT = "11111111-1111-4111-8111-000000000005"
APP_UNKNOWN = "11111111-1111-4111-8111-0000000000ff"
SCANNER = "scanner@contoso.test"
FRONTDESK = "frontdesk@contoso.test"
DISABLED = "disabled@contoso.test"
SITE_IP = "127.0.0.41"


@pytest.fixture
def token_endpoint(certs: LabCertificates) -> Iterator[LabTokenEndpoint]:
    endpoint = LabTokenEndpoint(certs.server_context("127.0.0.1"))
    endpoint.start()
    try:
        yield endpoint
    finally:
        endpoint.stop()


def secret() -> str:
    return f"Sec~{uuid.uuid4().hex}.Qz"


def certificate(folder: Path, *, expired: bool = False, label: str = "") -> tuple[Path, str]:
    """A self-signed app certificate (PEM with its key, as certificate_file takes it)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fleet-smtp-app")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=400))
        .not_valid_after(now - timedelta(days=2) if expired else now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    path = folder / f"app-{'expired' if expired else 'valid'}{label}.pem"
    path.write_text(cert_pem + key_pem, encoding="utf-8")
    return path, cert_pem


def device(
    device_id: str,
    port: int,
    ca_file: str | None,
    username: str,
    oauth2: dict[str, Any] | None = None,
    host: str = "localhost",
) -> dict[str, Any]:
    """A copier that logs in as `username`: with `oauth2`, else with the test password."""
    login: dict[str, Any] = (
        {"username": username, "oauth2": oauth2}
        if oauth2
        else {"username": username, "password_env": "FLEET_OAUTH_TEST_PASSWORD"}
    )
    return builder_device(
        port,
        ca_file,
        ident=device_id,
        host=host,
        mail_from=username,
        to="alice@contoso.test",
        auth=login,
    )


def site(site_id: str, *devices: dict[str, Any], ip: str = SITE_IP) -> dict[str, Any]:
    """A Contoso site that sends from `ip` (bound, and declared)."""
    return builder_site(site_id, *devices, client="Contoso", egress={"bind": ip, "ip": ip})


def microsoft(
    endpoint: LabTokenEndpoint,
    ca_file: str,
    client_id: str,
    secret_env: str | None = None,
    tenant: str = TENANT,
    certificate_file: Path | None = None,
    private_key_file: Path | None = None,
) -> dict[str, Any]:
    credential: dict[str, str] = (
        {"certificate_file": str(certificate_file)}
        if certificate_file
        else {"client_secret_env": str(secret_env)}
    )
    if private_key_file:
        credential["private_key_file"] = str(private_key_file)
    return {
        "provider": "microsoft",
        "tenant_id": tenant,
        "client_id": client_id,
        **credential,
        "authority": endpoint.authority,
        "ca_file": ca_file,
    }


def by_device(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {d["device"]: d for s in result["sites"] for d in s["devices"]}


def store_files(folder: Path) -> dict[str, str]:
    """The SQLite store's files (the database, its WAL and shared memory), as text."""
    return {p.name: p.read_bytes().decode("latin-1") for p in folder.glob("fleet.db*")}


def xoauth2_blob(user: str, token: str) -> str:
    return base64.b64encode(f"user={user}\1auth=Bearer {token}\1\1".encode()).decode()


async def test_every_oauth_finding_through_the_cli(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Given a tenant whose apps are set up right, and wrong in every way Entra ID and
    # Exchange Online know
    ca = str(certs.ca_file)
    secrets = {name: secret() for name in ("ok", "wrong", "expired", "norole", "noexch")}
    endpoint = token_endpoint
    endpoint.add_app(TENANT, LabApp(APP_OK, secret=secrets["ok"]))
    endpoint.add_app(TENANT, LabApp(APP_EXPIRED, secret=secrets["expired"], secret_expired=True))
    endpoint.add_app(TENANT, LabApp(APP_NO_ROLE, secret=secrets["norole"], roles=[]))
    endpoint.add_app(TENANT, LabApp(APP_NOT_IN_EXCHANGE, secret=secrets["noexch"]))
    cert_file, cert_pem = certificate(tmp_path)
    expired_file, _ = certificate(tmp_path, expired=True)
    stranger_file, _ = certificate(tmp_path, label="-not-uploaded")
    # the same certificate with its key in a file of its own
    cert_only, key_only = tmp_path / "app-cert-only.pem", tmp_path / "app-key-only.pem"
    cert_only.write_text(cert_pem, encoding="utf-8")
    key_only.write_text(cert_file.read_text(encoding="utf-8")[len(cert_pem) :], encoding="utf-8")
    endpoint.add_app(TENANT, LabApp(APP_CERT, certificate_pem=cert_pem))
    tenant = m365.tenant
    tenant.token_endpoint = endpoint
    tenant.service_principals = {APP_OK, APP_NO_ROLE, APP_CERT}
    apps = {APP_OK, APP_NO_ROLE, APP_NOT_IN_EXCHANGE, APP_CERT}
    tenant.mailboxes[SCANNER] = Mailbox(password="pw", oauth_apps=set(apps))
    tenant.mailboxes[FRONTDESK] = Mailbox(password="pw", oauth_apps=set(apps))
    tenant.mailboxes[DISABLED] = Mailbox(behaviour="auth_disabled", oauth_apps=set(apps))
    port = m365.submission.port
    env = {f"FLEET_OAUTH_{name.upper()}": value for name, value in secrets.items()}

    def ms(client_id: str, env_name: str = "FLEET_OAUTH_OK", **kwargs: Any) -> dict[str, Any]:
        return microsoft(endpoint, ca, client_id, env_name, **kwargs)

    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=5, command_s=5, site_s=60).add(
            site(
                "hq",
                device("mfp-oauth", port, ca, SCANNER, ms(APP_OK)),
                device("mfp-oauth-2", port, ca, FRONTDESK, ms(APP_OK)),
                device("mfp-cert", port, ca, SCANNER, ms(APP_CERT, certificate_file=cert_file)),
                device(
                    "mfp-cert-split",
                    port,
                    ca,
                    FRONTDESK,
                    ms(APP_CERT, certificate_file=cert_only, private_key_file=key_only),
                ),
            ),
            site(
                "branch",
                device("wrong-secret", port, ca, SCANNER, ms(APP_OK, "FLEET_OAUTH_WRONG")),
                device("expired-secret", port, ca, SCANNER, ms(APP_EXPIRED, "FLEET_OAUTH_EXPIRED")),
                device("wrong-tenant", port, ca, SCANNER, ms(APP_OK, tenant=OTHER_TENANT)),
                device("wrong-client", port, ca, SCANNER, ms(APP_UNKNOWN)),
                device(
                    "expired-cert", port, ca, FRONTDESK, ms(APP_CERT, certificate_file=expired_file)
                ),
                device(
                    "cert-not-on-app",
                    port,
                    ca,
                    FRONTDESK,
                    ms(APP_CERT, certificate_file=stranger_file),
                ),
            ),
            site(
                "annex",
                device("no-send-as-app", port, ca, SCANNER, ms(APP_NO_ROLE, "FLEET_OAUTH_NOROLE")),
                device(
                    "not-in-exchange",
                    port,
                    ca,
                    FRONTDESK,
                    ms(APP_NOT_IN_EXCHANGE, "FLEET_OAUTH_NOEXCH"),
                ),
                device("auth-disabled", port, ca, DISABLED, ms(APP_OK)),
            ),
        )
    )
    db = tmp_path / "fleet.db"
    log = tmp_path / "fleet.log"
    out = tmp_path / "result.json"

    # When it is swept through the command line, with debug logging
    run = await run_fleet_async(
        "--debug",
        "--log-file",
        str(log),
        "sweep",
        "-i",
        str(inventory),
        "--db",
        str(db),
        "--format",
        "json",
        "--output",
        str(out),
        env=fleet_env(FLEET_OAUTH_TEST_PASSWORD="pw", **env),
    )
    table = await run_fleet_async("report", "--last", "--db", str(db), "--detail", env=fleet_env())
    pages = {
        fmt: await run_fleet_async(
            "report", "--last", "--db", str(db), "--format", fmt, env=fleet_env()
        )
        for fmt in ("csv", "html")
    }

    # Then each device says what happened, with the provider's own reason
    assert run.code == 2, run.stderr
    devices = by_device(json.loads(out.read_text(encoding="utf-8")))
    ok = devices["mfp-oauth"]
    assert ok["category"] == "ok", ok["finding"]
    assert "OAuth works: XOAUTH2 as scanner@contoso.test" in ok["finding"]
    assert devices["mfp-oauth-2"]["category"] == "ok"
    assert devices["mfp-cert"]["category"] == "ok", devices["mfp-cert"]["finding"]
    assert devices["mfp-cert-split"]["category"] == "ok", devices["mfp-cert-split"]["finding"]

    def finding(name: str) -> tuple[str, str, str]:
        d = devices[name]
        return d["category"], d["finding"], d["remediation"] or ""

    category, text, remedy = finding("wrong-secret")
    assert category == "auth_failed"
    assert "client secret of app" in text
    assert "AADSTS7000215" in text
    assert "Value (not its Secret ID)" in remedy
    category, text, remedy = finding("expired-secret")
    assert "has expired" in text
    assert "AADSTS7000222" in text
    assert "New client secret" in remedy
    category, text, remedy = finding("wrong-tenant")
    assert f"does not know the tenant {OTHER_TENANT}" in text
    assert "AADSTS90002" in text
    assert "Directory (tenant) ID" in remedy
    category, text, remedy = finding("wrong-client")
    assert "AADSTS700016" in text
    assert "never consented" in text
    assert f"adminconsent?client_id={APP_UNKNOWN}" in remedy
    category, text, remedy = finding("expired-cert")
    assert "certificate expired on" in text
    assert (datetime.now(UTC) - timedelta(days=2)).date().isoformat() in text
    category, text, remedy = finding("cert-not-on-app")
    assert "Microsoft refused the app's certificate (AADSTS700027)" in text
    assert "Upload the certificate" in remedy
    category, text, remedy = finding("no-send-as-app")
    assert category == "auth_failed"
    assert "no SMTP.SendAsApp permission" in text
    assert "Grant admin consent" in remedy
    assert devices["no-send-as-app"]["reply"]["text"].startswith("5.7.3 Authentication")
    category, text, remedy = finding("not-in-exchange")
    assert "service principal is not registered" in text
    assert f"New-ServicePrincipal -AppId {APP_NOT_IN_EXCHANGE}" in remedy
    assert f"Add-MailboxPermission -Identity {FRONTDESK}" in remedy
    category, text, remedy = finding("auth-disabled")
    assert category == "auth_disabled"
    assert "disabled for the mailbox" in text
    assert f"Set-CASMailbox -Identity {DISABLED} -SmtpClientAuthenticationDisabled $false" in remedy

    # And the matrix flags them as OAuth findings
    flags = {
        (f["code"], d)
        for s in json.loads(out.read_text(encoding="utf-8"))["sites"]
        for f in s["flags"]
        for d in f["devices"]
    }
    assert ("OAUTH_TOKEN_FAILED", "expired-secret") in flags
    assert ("OAUTH_REFUSED", "not-in-exchange") in flags
    assert ("OAUTH_REFUSED", "no-send-as-app") in flags
    assert ("AUTH_DISABLED", "auth-disabled") in flags
    assert "OAUTH_TOKEN_FAILED" in table.stdout
    assert "OAUTH_REFUSED" in pages["html"].stdout

    # And a token is fetched once per app and tenant for the whole sweep
    posts = [r for r in endpoint.requests if r.startswith("POST") and r.endswith(APP_OK)]
    assert len(posts) == 2, "\n".join(endpoint.requests)  # right secret (3 devices), wrong one

    # And neither the tokens nor the client secrets appear anywhere fleet wrote
    outputs = {
        "stdout": run.stdout,
        "stderr": run.stderr,
        "log": log.read_text(encoding="utf-8"),
        "json": out.read_text(encoding="utf-8"),
        "report": table.stdout + table.stderr,
        **{fmt: page.stdout + page.stderr for fmt, page in pages.items()},
    }
    outputs.update(store_files(tmp_path))
    assert endpoint.issued, "the endpoint issued no token"
    forbidden = dict(secrets)
    forbidden["certificate key"] = cert_file.read_text().split("-----BEGIN PRIVATE KEY-----")[1][
        :64
    ]
    for n, token in enumerate(endpoint.issued):
        forbidden[f"token {n}"] = token
        for user in (SCANNER, FRONTDESK, DISABLED):
            forbidden[f"xoauth2 {n} {user}"] = xoauth2_blob(user, token)
    for where, text in outputs.items():
        for what, value in forbidden.items():
            assert value not in text, f"{what} appears in {where}"


async def test_readiness_view_counts_copiers_at_risk_and_proven_ways_forward(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Given two copiers logging in with passwords to a Microsoft 365-like server, and an
    # OAuth device proving XOAUTH2 for the first one's mailbox only
    ca = str(certs.ca_file)
    client_secret = secret()
    token_endpoint.add_app(TENANT, LabApp(APP_OK, secret=client_secret))
    tenant = m365.tenant
    tenant.token_endpoint = token_endpoint
    tenant.service_principals = {APP_OK}
    tenant.mailboxes[SCANNER] = Mailbox(password="pw", oauth_apps={APP_OK})
    tenant.mailboxes[FRONTDESK] = Mailbox(password="pw")
    port = m365.submission.port
    oauth2 = microsoft(token_endpoint, ca, APP_OK, "FLEET_OAUTH_OK")
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=5, command_s=5, site_s=60).add(
            site(
                "hq",
                device("mfp-scanner", port, ca, SCANNER),
                device("mfp-frontdesk", port, ca, FRONTDESK),
            ),
            site("pilot", device("oauth-pilot", port, ca, SCANNER, oauth2)),
        )
    )
    db = tmp_path / "fleet.db"
    env = fleet_env(FLEET_OAUTH_TEST_PASSWORD="pw", FLEET_OAUTH_OK=client_secret)

    # When it is swept, then the readiness view is asked for in every format
    run = await run_fleet_async("sweep", "-i", str(inventory), "--db", str(db), env=env)
    views: dict[str, Run] = {}
    for fmt in ("table", "csv", "json"):
        views[fmt] = await run_fleet_async(
            "report", "--last", "--db", str(db), "--readiness", "--format", fmt, env=env
        )

    # Then the matrix names the count, and each view lists both copiers
    headline = "Basic AUTH cut-off: 2 copiers at risk, 1 with a proven way forward"
    assert headline in run.stdout, run.stdout + run.stderr
    assert headline in views["table"].stdout
    body = json.loads(views["json"].stdout)
    assert (body["at_risk"], body["proven"]) == (2, 1)
    rows = {r["device"]: r for r in body["copiers"]}
    assert rows["mfp-scanner"]["proven"] is True
    assert "proven at pilot/oauth-pilot" in rows["mfp-scanner"]["way_forward"]
    assert rows["mfp-frontdesk"]["proven"] is False
    lines = views["csv"].stdout.lstrip("\ufeff").splitlines()
    assert lines[0] == "client,site,device,mailbox,host,proven,way_forward,already_refused"
    assert any(line.startswith("Contoso,hq,mfp-frontdesk,frontdesk@contoso.test") for line in lines)
    for view in (run, *views.values()):
        assert client_secret not in view.stdout + view.stderr
        for token in token_endpoint.issued:
            assert token not in view.stdout + view.stderr


async def test_google_service_account_findings_through_the_cli(
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Given smtp.gmail.com and Google's token endpoint: one service account with domain-wide
    # delegation for https://mail.google.com/, one without it
    ca = str(certs.ca_file)
    tenant = Tenant(
        mailboxes={SCANNER: Mailbox(), FRONTDESK: Mailbox()}, token_endpoint=token_endpoint
    )
    token_endpoint.google_users = {SCANNER, "nomail@contoso.test"}
    _, delegated = token_endpoint.add_service_account("fleet@lab.iam.gserviceaccount.com")
    undelegated_account, undelegated = token_endpoint.add_service_account(
        "other@lab.iam.gserviceaccount.com"
    )
    undelegated_account.delegated_scopes = set()
    keys = {}
    for name, content in (("delegated", delegated), ("undelegated", undelegated)):
        keys[name] = tmp_path / f"{name}.json"
        keys[name].write_text(json.dumps(content), encoding="utf-8")
    gmail = google_smtp(tenant, certs.server_context("localhost", "127.0.0.1"))
    port = await gmail.start()

    def google(key: str) -> dict[str, Any]:
        return {"provider": "google", "service_account_file": str(keys[key]), "ca_file": ca}

    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=5, command_s=5, site_s=60).add(
            site(
                "northwind",
                device("gmail-ok", port, ca, SCANNER, google("delegated")),
                device("no-delegation", port, ca, FRONTDESK, google("undelegated")),
                device("unknown-user", port, ca, "ghost@contoso.test", google("delegated")),
                device("refused", port, ca, "nomail@contoso.test", google("delegated")),
            )
        )
    )
    out = tmp_path / "result.json"
    try:
        # When it is swept through the command line
        run = await run_fleet_async(
            "sweep", "-i", str(inventory), "--no-store", "--format", "json", "-o", str(out)
        )
    finally:
        await gmail.stop()

    # Then the service account's token works where delegation is granted, and every refusal
    # says what to do in the Admin console
    assert run.code == 2, run.stderr
    devices = by_device(json.loads(out.read_text(encoding="utf-8")))
    assert devices["gmail-ok"]["category"] == "ok", devices["gmail-ok"]["finding"]
    assert "Google service account" in devices["gmail-ok"]["finding"]
    delegation = devices["no-delegation"]
    assert "domain-wide delegation is not granted" in delegation["finding"]
    assert undelegated["client_id"] in delegation["remediation"]
    assert "https://mail.google.com/" in delegation["remediation"]
    assert "does not know the mailbox ghost@contoso.test" in devices["unknown-user"]["finding"]
    refused = devices["refused"]
    assert refused["reply"]["enhanced"] == "5.7.8"
    assert "Google refused the OAuth token" in refused["finding"]
    assert gmail.stats.auth_attempts == 2  # gmail-ok and refused: no token, no AUTH
    # And no token or private key shows
    everything = run.stdout + run.stderr + out.read_text(encoding="utf-8")
    assert token_endpoint.issued
    for token in token_endpoint.issued:
        assert token not in everything
    assert delegated["private_key"].splitlines()[1] not in everything


async def test_a_slow_token_endpoint_costs_one_command_timeout(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a token endpoint that takes 5 s to answer, and command_s of 0.5 s
    ca = str(certs.ca_file)
    token_endpoint.add_app(TENANT, LabApp(APP_OK, secret="s"))
    token_endpoint.delay_s = 5.0
    m365.tenant.mailboxes[SCANNER] = Mailbox()
    oauth2 = microsoft(token_endpoint, ca, APP_OK, "FLEET_OAUTH_OK")
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=2, command_s=0.5, site_s=30).add(
            site("hq", device("mfp", m365.submission.port, ca, SCANNER, oauth2))
        )
    )

    # When it is swept
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--no-store",
        "--format",
        "json",
        env=fleet_env(FLEET_OAUTH_OK="s"),
    )

    # Then the copier's result says the token endpoint did not answer, and nothing was
    # sent to the SMTP server's AUTH
    assert run.code == 2, run.stderr
    (mfp,) = by_device(json.loads(run.stdout)).values()
    assert "the token endpoint did not answer within 0.5 s" in mfp["finding"]
    assert m365.submission.stats.auth_attempts == 0


@pytest.mark.parametrize(
    ("oauth2", "message"),
    [
        (
            {"provider": "microsoft", "client_id": "x", "client_secret_env": "S"},
            "needs tenant_id and client_id",
        ),
        (
            {"provider": "microsoft", "tenant_id": "t", "client_id": "x"},
            "exactly one of client_secret_env, client_secret_file or certificate_file",
        ),
        (
            {
                "provider": "microsoft",
                "tenant_id": "t",
                "client_id": "x",
                "client_secret": "hunter2",
            },
            "secrets must not be written in the inventory",
        ),
        ({"provider": "google"}, "needs service_account_file"),
        (
            {"provider": "google", "service_account_file": "sa.json", "tenant_id": "t"},
            "provider google does not take tenant_id",
        ),
        (
            {
                "provider": "microsoft",
                "tenant_id": "t",
                "client_id": "x",
                "client_secret_env": "S",
                "authority": "http://login.example",
            },
            "must be an https:// URL",
        ),
        ({"provider": "token"}, "exactly one of token_env or token_file"),
    ],
)
def test_bad_oauth2_settings_are_refused_with_a_reason(
    oauth2: dict[str, str], message: str, write_inventory: Callable[..., Path]
) -> None:
    mfp = device("mfp", 587, None, SCANNER, oauth2)
    inventory = write_inventory(InventoryBuilder().add(site("hq", mfp)))

    run = run_fleet("validate", str(inventory))

    assert run.code == 3
    assert message in run.stderr + run.stdout
    assert "hunter2" not in run.stderr + run.stdout


def test_an_unset_client_secret_stops_the_sweep_before_anything_is_sent(
    write_inventory: Callable[..., Path],
) -> None:
    oauth2 = {
        "provider": "microsoft",
        "tenant_id": "t",
        "client_id": "x",
        "client_secret_env": "FLEET_NOT_SET",
    }
    mfp = device("mfp", 587, "ca.pem", SCANNER, oauth2)
    inventory = write_inventory(InventoryBuilder().add(site("hq", mfp)))

    run = run_fleet("sweep", "-i", str(inventory), "--no-store")

    assert run.code == 3
    assert "oauth2.client_secret_env: FLEET_NOT_SET is not set" in run.stderr


def _site(
    site_id: str, devices: list[tuple[DeviceResult, ConversationRecord]], retiring: list[str]
) -> SiteResult:
    now = datetime.now(UTC)
    flags = (
        [
            Flag(
                code="BASIC_AUTH_RETIRING",
                severity=Severity.warn,
                devices=retiring,
                evidence="",
                remediation="",
            )
        ]
        if retiring
        else []
    )
    return SiteResult(
        site=site_id,
        client="Contoso",
        verdict=Verdict.warn if retiring else Verdict.ok,
        flags=flags,
        egress=Egress(transport=EgressTransport.direct),
        devices=[device for device, _ in devices],
        conversations={device.conversation: had for device, had in devices},
        started_at=now,
        finished_at=now,
    )


def _device(
    name: str, host: str, mailbox: str, login: str, category: Category
) -> tuple[DeviceResult, ConversationRecord]:
    """A device and the conversation it had (its site keeps that)."""
    device = DeviceResult(
        device=name,
        mode=Mode.submission,
        verdict=Verdict.ok,
        category=category,
        finding="",
        conversation=name,
        mailbox=mailbox,
        login=login,
    )
    return device, ConversationRecord(host=host, port=587)


def test_a_high_volume_email_account_of_the_same_domain_is_a_way_forward() -> None:
    # Given two copiers on passwords in two domains, and a working HVE account in one
    sites = [
        _site(
            "hq",
            [
                _device("mfp-a", "smtp.office365.com", SCANNER, "password", Category.ok),
                _device(
                    "mfp-b", "smtp.office365.com", "scan@fabrikam.test", "password", Category.ok
                ),
            ],
            ["mfp-a", "mfp-b"],
        ),
        _site(
            "lab",
            [_device("hve", "smtp-hve.office365.com", "hve@contoso.test", "password", Category.ok)],
            [],
        ),
        # a failed OAuth device proves nothing
        _site(
            "pilot",
            [
                _device(
                    "try",
                    "smtp.office365.com",
                    "scan@fabrikam.test",
                    "oauth2",
                    Category.auth_failed,
                )
            ],
            [],
        ),
    ]

    result = readiness(iter(sites))

    assert (result.at_risk, result.proven) == (2, 1)
    rows = {r.device: r for r in result.copiers}
    assert rows["mfp-a"].way_forward == "High Volume Email account hve@contoso.test at lab/hve"
    assert not rows["mfp-b"].proven


def test_dry_run_says_which_app_the_token_comes_from(write_inventory: Callable[..., Path]) -> None:
    oauth2 = {"provider": "microsoft", "tenant_id": TENANT, "client_id": APP_OK}
    mfp = device("mfp", 587, None, SCANNER, {**oauth2, "client_secret_env": "S"})
    inventory = write_inventory(InventoryBuilder().add(site("hq", mfp)))

    run = run_fleet("sweep", "-i", str(inventory), "--dry-run", env=fleet_env(S="not-used"))

    assert run.code == 0, run.stderr
    assert f"as {SCANNER} (oauth2: a token from Entra ID app {APP_OK} in tenant {TENANT})" in (
        run.stdout
    )
    assert "not-used" not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("text", "roles", "rule"),
    [
        (
            "535 5.7.3 Authentication unsuccessful [X.PROD.OUTLOOK.COM]",
            (),
            "oauth.send_as_app_missing",
        ),
        ("535 5.7.3 Authentication unsuccessful", ("SMTP.SendAsApp",), "oauth.service_principal"),
        ("535 5.7.3 Authentication unsuccessful", None, "oauth.service_principal"),
        (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
            "the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information.",
            ("SMTP.SendAsApp",),
            "oauth.smtp_auth_disabled",
        ),
        (
            "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to "
            "be authenticated successfully. Contact your administrator.",
            ("SMTP.SendAsApp",),
            None,
        ),
        ("451 4.7.0 Temporary server error", ("SMTP.SendAsApp",), None),
        # 5.7.8 refusing an Entra app's token is not Google's refusal
        (
            "535 5.7.8 Error: authentication failed: authentication failure",
            (),
            "oauth.send_as_app_missing",
        ),
        (
            "535 5.7.8 Authentication credentials invalid",
            ("SMTP.SendAsApp",),
            "oauth.service_principal",
        ),
    ],
)
def test_an_xoauth2_refusal_is_read_with_the_token_roles(
    text: str, roles: tuple[str, ...] | None, rule: str | None
) -> None:
    code, _, rest = text.partition(" ")
    reply = make_reply(int(code), rest)
    context = Context(
        mode=Mode.submission,
        host="smtp.office365.com",
        port=587,
        authenticated=True,
        username=SCANNER,
        provider="microsoft",
    )

    found = classify_oauth_refusal(reply, context, roles=roles, client_id=APP_OK, tenant_id=TENANT)

    assert (found.rule if found else None) == rule


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("535 5.7.8 Error: authentication failed: authentication failure", "oauth.given_refused"),
        ("535 5.7.3 Authentication unsuccessful", "oauth.given_refused"),
        (
            "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
            "the Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information.",
            "oauth.smtp_auth_disabled",
        ),
        ("454 4.7.0 Temporary authentication failure", None),
    ],
)
def test_a_refused_given_token_is_the_tokens_refusal_not_a_passwords(
    text: str, rule: str | None
) -> None:
    code, _, rest = text.partition(" ")
    context = Context(
        mode=Mode.submission, host="mail.example", port=587, authenticated=True, username=SCANNER
    )

    found = classify_given_token_refusal(make_reply(int(code), rest), context, "$TOKEN")

    assert (found.rule if found else None) == rule
    if found is not None and rule == "oauth.given_refused":
        assert "password" not in found.finding + found.remediation


def test_gmails_refusal_of_a_service_accounts_token_is_googles() -> None:
    reply = make_reply(535, "5.7.8 Username and Password not accepted.")
    context = Context(
        mode=Mode.submission, host="127.0.0.1", port=587, authenticated=True, username=SCANNER
    )

    found = classify_oauth_refusal(reply, context, roles=None, client_id=None, tenant_id=None)

    assert found is not None
    assert found.rule == "oauth.google_refused"


async def test_a_password_to_high_volume_email_is_not_at_risk_and_proves_its_domain(
    m365: M365Lab,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Given smtp-hve.office365.com (the lab's DNS points it at loopback), where an HVE account
    # logs in with a password, and a copier of the same domain on client submission
    lab_dns.add("smtp-hve.office365.com", "A", "127.0.0.1")
    tenant = m365.tenant
    tenant.mailboxes[SCANNER] = Mailbox(password="pw")
    tenant.mailboxes["hve-scan@contoso.test"] = Mailbox(password="pw")
    handler = M365SubmissionHandler(tenant)
    hve = LabSmtpServer(
        handler,
        hostname="SN4PR0501CA0001.outlook.office365.com",
        tls_context=certs.server_context("smtp-hve.office365.com"),
        authenticator=handler.authenticate,
        auth_exclude=("PLAIN",),
    )
    port = await hve.start()
    ca = str(certs.ca_file)
    hve_device = device(
        "hve-account", port, ca, "hve-scan@contoso.test", host="smtp-hve.office365.com"
    )
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=5, command_s=5, site_s=60).add(
            site("hq", device("mfp", m365.submission.port, ca, SCANNER), hve_device)
        )
    )
    db = tmp_path / "fleet.db"
    env = fleet_env(FLEET_OAUTH_TEST_PASSWORD="pw")
    try:
        # When it is swept, and the readiness view asked for
        sweep = await run_fleet_async("sweep", "-i", str(inventory), "--db", str(db), env=env)
        view = await run_fleet_async(
            "report", "--last", "--db", str(db), "--readiness", "--format", "json", env=env
        )
    finally:
        await hve.stop()

    # Then only the submission copier is at risk, with HVE as its proven way forward
    assert "BASIC_AUTH_RETIRING" in sweep.stdout, sweep.stdout + sweep.stderr
    body = json.loads(view.stdout)
    assert (body["at_risk"], body["proven"]) == (1, 1), body
    (row,) = body["copiers"]
    assert row["device"] == "mfp"
    assert row["way_forward"] == (
        "High Volume Email account hve-scan@contoso.test at hq/hve-account"
    )


async def test_a_token_is_reused_for_the_sweep_until_it_is_about_to_expire(
    token_endpoint: LabTokenEndpoint, certs: LabCertificates, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given an app whose tokens live an hour, then one whose tokens live 2 minutes
    monkeypatch.setenv("FLEET_OAUTH_OK", "s")
    token_endpoint.add_app(TENANT, LabApp(APP_OK, secret="s"))
    token_endpoint.add_app(TENANT, LabApp(APP_EXPIRED, secret="s"))
    broker = TokenBroker(timeout_s=5)

    def request(client_id: str) -> TokenRequest:
        return TokenRequest(
            "microsoft",
            client_id,
            TENANT,
            token_endpoint.authority,
            client_secret=SecretSource(env="FLEET_OAUTH_OK"),
            ca_file=str(certs.ca_file),
        )

    # When each is asked for three times (twice at once)
    lasting = await asyncio.gather(*(broker.get(request(APP_OK)) for _ in range(2)))
    lasting.append(await broker.get(request(APP_OK)))
    token_endpoint.expires_in = 120
    short = [await broker.get(request(APP_EXPIRED)) for _ in range(3)]

    # Then the hour-long token is fetched once, the short one each time it is needed
    assert all(isinstance(t, Token) for t in lasting + short)
    assert len({t.value for t in lasting if isinstance(t, Token)}) == 1
    assert len({t.value for t in short if isinstance(t, Token)}) == 3
    assert broker.fetches == 4


async def test_no_exchange_online_in_the_tenant_and_an_unreachable_authority(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a tenant without Exchange Online, and an authority nobody listens on
    ca = str(certs.ca_file)
    token_endpoint.add_app(OTHER_TENANT, LabApp(APP_OK, secret="s"))
    token_endpoint.without_exchange.add(OTHER_TENANT)
    m365.tenant.mailboxes[SCANNER] = Mailbox()
    port = m365.submission.port
    no_exchange = microsoft(token_endpoint, ca, APP_OK, "FLEET_OAUTH_OK", tenant=OTHER_TENANT)
    closed = free_port()
    unreachable = {**no_exchange, "authority": f"https://127.0.0.1:{closed}"}
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=2, command_s=2, site_s=30).add(
            site(
                "hq",
                device("no-exchange", port, ca, SCANNER, no_exchange),
                device("no-authority", port, ca, FRONTDESK, unreachable),
            )
        )
    )

    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--no-store",
        "--format",
        "json",
        env=fleet_env(FLEET_OAUTH_OK="s"),
    )

    assert run.code == 2, run.stderr
    devices = by_device(json.loads(run.stdout))
    assert (
        "Office 365 Exchange Online is not available in the tenant (AADSTS500011)"
        in (devices["no-exchange"]["finding"])
    )
    assert "adminconsent" in devices["no-exchange"]["remediation"]
    assert f"cannot reach https://127.0.0.1:{closed}" in devices["no-authority"]["finding"]
    assert "allow HTTPS to it" in devices["no-authority"]["remediation"]
    assert m365.submission.stats.auth_attempts == 0


async def test_a_token_endpoint_answering_5xx_is_a_finding_not_a_crash(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given an Entra outage (500 in plain text), a blocking proxy's 502 page, both on the
    # token request, and a 503 with Entra's JSON on the OpenID discovery (MSAL raises for
    # any status >= 500, whatever the body)
    ca = str(certs.ca_file)
    outages = {
        "t-500": ("POST", 500, "Internal Server Error"),
        "t-502": ("POST", 502, "<html><body><h1>502 Bad Gateway</h1>proxy</body></html>"),
        "t-503": ("GET", 503, json.dumps({"error": "temporarily_unavailable"})),
    }
    devices = []
    for index, (name, outage) in enumerate(outages.items()):
        tenant = f"00000000-0000-4000-8000-00000000050{index}"
        token_endpoint.add_app(tenant, LabApp(APP_OK, secret="s"))
        token_endpoint.outages[tenant] = outage
        oauth2 = microsoft(token_endpoint, ca, APP_OK, "FLEET_OAUTH_OK", tenant=tenant)
        devices.append(device(name, m365.submission.port, ca, SCANNER, oauth2))
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=2, command_s=2, site_s=30).add(site("hq", *devices))
    )

    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--no-store",
        "--format",
        "json",
        env=fleet_env(FLEET_OAUTH_OK="s"),
    )

    # Then each is the unreachable-token-endpoint finding, with the status it got
    assert "Traceback" not in run.stderr
    assert "internal error" not in run.stderr
    found = by_device(json.loads(run.stdout))
    for name, (_, status, _) in outages.items():
        assert found[name]["category"] != "INTERNAL_ERROR", found[name]
        assert f"{token_endpoint.authority} answered HTTP Error: {status}" in found[name]["finding"]
        assert "allow HTTPS to it" in found[name]["remediation"]
    assert m365.submission.stats.auth_attempts == 0


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (502, "<html><body><h1>502 Bad Gateway</h1>proxy</body></html>"),  # not retried
        (503, json.dumps({"error": "temporarily_unavailable"})),  # retried, then given up
    ],
)
def test_googles_token_endpoint_failing_is_not_a_refused_service_account(
    status: int, body: str, token_endpoint: LabTokenEndpoint, certs: LabCertificates, tmp_path: Path
) -> None:
    # Given Google's token endpoint answering a proxy's error page, or an outage
    _, key = token_endpoint.add_service_account("fleet@lab.iam.gserviceaccount.com")
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps(key), encoding="utf-8")
    key_file.chmod(0o600)
    token_endpoint.outages["google"] = ("POST", status, body)
    request = TokenRequest(
        "google", service_account_file=str(key_file), subject=SCANNER, ca_file=str(certs.ca_file)
    )

    outcome = acquire(request, 5)

    # Then it is the endpoint failing, not Google refusing the service account
    assert isinstance(outcome, TokenFailure)
    assert outcome.reason == "unreachable", outcome
    assert "the token endpoint failed" in outcome.finding
    assert "allow HTTPS to it" in outcome.remediation


async def test_a_given_token_that_expired_is_not_sent_and_a_refused_one_is_not_a_password(
    m365: M365Lab,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    import jwt

    # Given tokens fetched elsewhere (provider: token): one whose exp passed in 2023, one
    # still valid by its date that the server does not accept
    ca = str(certs.ca_file)
    expired = jwt.encode({"aud": "https://outlook.office365.com", "exp": 1700000000}, "k" * 32)
    unknown = jwt.encode(
        {"aud": "https://outlook.office365.com", "exp": int(time.time()) + 3600}, "k" * 32
    )
    m365.tenant.mailboxes[SCANNER] = Mailbox(token="the-mailboxs-own-token")
    m365.tenant.mailboxes[FRONTDESK] = Mailbox(token="the-mailboxs-own-token")
    port = m365.submission.port
    given = {"provider": "token", "token_env": "FLEET_GIVEN_EXPIRED"}
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=2, command_s=2, site_s=30).add(
            site(
                "hq",
                device("expired", port, ca, SCANNER, given),
                device("refused", port, ca, FRONTDESK, {**given, "token_env": "FLEET_GIVEN"}),
            )
        )
    )

    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--no-store",
        "--format",
        "json",
        env=fleet_env(FLEET_GIVEN_EXPIRED=expired, FLEET_GIVEN=unknown),
    )

    # Then the expired token is a finding with its date, and is never sent
    result = json.loads(run.stdout)
    devices = by_device(result)
    flags = {(f["code"], d) for s in result["sites"] for f in s["flags"] for d in f["devices"]}
    stale = devices["expired"]
    assert stale["finding"] == (
        "no OAuth token from $FLEET_GIVEN_EXPIRED: the token there expired on 2023-11-14 22:13 "
        "UTC (its exp claim), so it was not sent"
    )
    assert "password" not in stale["finding"] + stale["remediation"]
    assert ("OAUTH_TOKEN_FAILED", "expired") in flags
    assert m365.submission.stats.auth_attempts == 1  # only the other device's token
    # and the refused one is the server refusing the token, not a password
    refused = devices["refused"]
    assert "refused the OAuth token from $FLEET_GIVEN" in refused["finding"]
    assert "password" not in refused["finding"] + refused["remediation"]
    assert ("OAUTH_REFUSED", "refused") in flags
    assert expired not in run.stdout + run.stderr
    assert unknown not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("text", "reason", "words"),
    [
        (
            "invalid_client: AADSTS700027: Client assertion contains an invalid signature. "
            "[Reason - The key used is expired., Thumbprint of key used by client: "
            "'9E2B...', Found key 'Start=01/02/2024 00:00:00, End=01/02/2026 00:00:00']",
            "certificate_expired",
            "expired on 01/02/2026 00:00:00",
        ),
        (
            "invalid_client: AADSTS7000222: The provided client secret keys for app "
            "'1111' are expired. Visit the Azure portal to create new keys for your app.",
            "secret_expired",
            "has expired (AADSTS7000222)",
        ),
        (
            "invalid_request: AADSTS900023: Specified tenant identifier 'contoso' is neither "
            "a valid DNS name, nor a valid external domain.",
            "wrong_tenant",
            "does not know the tenant",
        ),
        (
            "invalid_grant: AADSTS65001: The user or administrator has not consented to use "
            "the application with ID '1111' named 'fleet'. Send an interactive authorization "
            "request for this user and resource.",
            "consent_missing",
            "the tenant has not consented to the app (AADSTS65001)",
        ),
        (
            "invalid_client: AADSTS7000112: Application '1111' is disabled.",
            "consent_missing",
            "the app is disabled in the tenant",
        ),
        (
            "invalid_grant: AADSTS50173: The provided grant has expired. Trace ID: 1 "
            "Correlation ID: 2 Timestamp: 2026-11-29 10:00:00Z",
            "refused",
            "The provided grant has expired.",
        ),
    ],
)
def test_entra_errors_are_read_by_their_codes(text: str, reason: str, words: str) -> None:
    request = TokenRequest("microsoft", APP_OK, TENANT)

    failure = aad_failure(request, text)

    assert failure.reason == reason
    assert words in failure.finding
    assert "Trace ID" not in failure.finding


async def test_a_second_ctrl_c_does_not_wait_for_a_token_request(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a token endpoint that takes 20 s to answer, and patient timeouts
    ca = str(certs.ca_file)
    token_endpoint.add_app(TENANT, LabApp(APP_OK, secret="s"))
    token_endpoint.delay_s = 20.0
    m365.tenant.mailboxes[SCANNER] = Mailbox()
    oauth2 = microsoft(token_endpoint, ca, APP_OK, "FLEET_OAUTH_OK")
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=5, command_s=15, site_s=60).add(
            site("hq", device("mfp", m365.submission.port, ca, SCANNER, oauth2))
        )
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fleet",
        "sweep",
        "-i",
        str(inventory),
        "--no-store",
        "-q",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=fleet_env(FLEET_OAUTH_OK="s"),
    )
    try:
        # When the sweep is waiting for the token and is interrupted twice
        await eventually(lambda: any(r.startswith("GET") for r in token_endpoint.requests))
        assert process.stderr is not None
        process.send_signal(signal.SIGINT)
        said = b""
        while b"finishing running sites" not in said:
            line = await asyncio.wait_for(process.stderr.readline(), 10)
            assert line, f"fleet ended without stopping gracefully: {said!r}"  # EOF: no hang
            said += line
        process.send_signal(signal.SIGINT)
        signalled = time.monotonic()
        await asyncio.wait_for(process.communicate(), 30)

        # Then it stops at once, not when the token request would time out
        assert time.monotonic() - signalled < 5
        assert process.returncode == 3
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_an_oauth_login_is_tried_once_per_mailbox_and_app_and_apart_from_its_password(
    m365: M365Lab,
    token_endpoint: LabTokenEndpoint,
    certs: LabCertificates,
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given one mailbox tried at two sites: with a wrong password, with an app Exchange
    # refuses (twice), and with an app that works
    ca = str(certs.ca_file)
    token_endpoint.add_app(TENANT, LabApp(APP_OK, secret="s"))
    token_endpoint.add_app(TENANT, LabApp(APP_NO_ROLE, secret="s", roles=[]))
    tenant = m365.tenant
    tenant.token_endpoint = token_endpoint
    tenant.service_principals = {APP_OK, APP_NO_ROLE}
    tenant.mailboxes[SCANNER] = Mailbox(password="pw", oauth_apps={APP_OK, APP_NO_ROLE})
    port = m365.submission.port
    refused = microsoft(token_endpoint, ca, APP_NO_ROLE, "FLEET_OAUTH_OK")
    works = microsoft(token_endpoint, ca, APP_OK, "FLEET_OAUTH_OK")
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=5, command_s=5, site_s=60).add(
            site(
                "hq",
                device("password", port, ca, SCANNER),
                device("refused-1", port, ca, SCANNER, refused),
            ),
            site(
                "branch",
                device("refused-2", port, ca, SCANNER, refused),
                device("works", port, ca, SCANNER, works),
                ip="127.0.0.42",
            ),
        )
    )

    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--no-store",
        "--format",
        "json",
        env=fleet_env(FLEET_OAUTH_TEST_PASSWORD="wrong", FLEET_OAUTH_OK="s"),
    )

    # Then the refused app was tried once: the other device says so and is not retried
    assert run.code == 2, run.stderr
    devices = by_device(json.loads(run.stdout))
    assert devices["password"]["category"] == "auth_failed"
    assert devices["works"]["category"] == "ok", devices["works"]["finding"]
    refusals = [devices["refused-1"], devices["refused-2"]]
    assert {d["category"] for d in refusals} == {"auth_failed"}
    assert sum("Not retried here" in (d["remediation"] or "") for d in refusals) == 1
    # one AUTH each: the password, the refused app, the working app
    assert m365.submission.stats.auth_attempts == 3
