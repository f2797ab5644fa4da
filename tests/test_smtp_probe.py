"""The SMTP conversation probe against real servers on loopback: a Microsoft 365-like MX and
submission endpoint (aiosmtpd), Google's smtp.gmail.com, a Postfix-like submission port, and
small raw servers for what aiosmtpd will not do (stay silent, answer garbage).

Each site is a different 127.0.0.x source address, so the servers see different client
IPs. TLS is verified against the lab CA (`ca_file`), never turned off.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email
import logging
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import aiosmtplib
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from fleet.credentials import SecretSource
from fleet.dns import Dns
from fleet.egress import make_opener
from fleet.inventory import SiteEgress
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import (
    LabSmtpServer,
    M365SubmissionHandler,
    Mailbox,
    Tenant,
    google_smtp,
    m365_mx,
)
from fleet.probes.smtp import AuthGate, ConversationSpec, ProbeSettings, TlsContexts, converse
from fleet.results import Category, Conversation, Mode, Security, Stage, StageStatus

from .conftest import free_port

if TYPE_CHECKING:
    from tests.conftest import M365Lab

FAST = ProbeSettings(connect_s=2.0, command_s=2.0)
IMPATIENT = ProbeSettings(connect_s=0.3, command_s=0.3)
MARGIN_S = 0.5  # what a loaded CI machine may add on top of a timeout

HQ, BRANCH, WAREHOUSE = "127.0.0.20", "127.0.0.30", "127.0.0.40"
MAILBOX = "scanner@contoso.test"


# ---- the sweep around one or more conversations ------------------------------------------


@dataclass
class Sweep:
    """What a sweep shares between conversations: resolver, TLS contexts, the AUTH gate."""

    dns: Dns
    tls: TlsContexts = field(default_factory=TlsContexts)
    gate: AuthGate = field(default_factory=AuthGate)

    async def converse(
        self,
        spec: ConversationSpec,
        bind: str = HQ,
        settings: ProbeSettings = FAST,
        **kwargs: Any,
    ) -> Conversation:
        opener = make_opener(SiteEgress(bind=bind), self.dns)
        return await converse(spec, opener, settings, self.tls, self.gate, **kwargs)


@pytest.fixture
async def sweep() -> AsyncIterator[Sweep]:
    dns = Dns()
    try:
        yield Sweep(dns)
    finally:
        await dns.close()


class Server(Protocol):
    port: int

    async def start(self) -> int: ...
    async def stop(self) -> None: ...


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Server], Awaitable[int]]]:
    """Start extra servers for one test; they are stopped when it ends."""
    started: list[Server] = []

    async def run(server: Server) -> int:
        port = await server.start()
        started.append(server)
        return port

    yield run
    for server in reversed(started):
        await server.stop()


def direct_send(lab: M365Lab, **changes: Any) -> ConversationSpec:
    """A copier doing Direct Send to the tenant's MX on port 25 with STARTTLS."""
    spec = ConversationSpec(
        id="mx",
        host="localhost",
        port=lab.mx.port,
        security=Security.starttls,
        mode=Mode.direct_send,
        mail_from="scanner@contoso.test",
        rcpt_to="alice@contoso.test",
        ehlo_name="copier.contoso.test",
        ca_file=lab.ca_file,
    )
    return replace(spec, **changes)


def submission(lab: M365Lab, env: str = "FLEET_TEST_PASSWORD", **changes: Any) -> ConversationSpec:
    """A copier logging in to smtp.office365.com:587 with STARTTLS."""
    spec = ConversationSpec(
        id="submission",
        host="localhost",
        port=lab.submission.port,
        security=Security.starttls,
        mode=Mode.submission,
        mail_from=MAILBOX,
        rcpt_to="alice@contoso.test",
        ehlo_name="copier.contoso.test",
        username=MAILBOX,
        secret=SecretSource(env=env),
        ca_file=lab.ca_file,
    )
    return replace(spec, **changes)


def stages(conversation: Conversation) -> list[tuple[str, str]]:
    return [(s.stage.value, s.status.value) for s in conversation.stages]


def stage(conversation: Conversation, which: Stage) -> Any:
    found = [s for s in conversation.stages if s.stage is which]
    assert found, f"no {which.value} stage in {stages(conversation)}"
    return found[0]


# ---- small raw servers for what aiosmtpd will not do -----------------------------------


class ScriptedServer:
    """A raw line server: a banner (or silence), then a reply per command verb. A reply of
    None means "never answer this"; a missing verb gets "250 OK"."""

    def __init__(self, banner: bytes | None, replies: dict[str, bytes | None] | None = None):
        self.banner = banner
        self.replies = replies or {}
        self.port = 0
        self.verbs: list[str] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self.banner is None:
                await reader.read()  # accept, and never say a word
                return
            writer.write(self.banner)
            await writer.drain()
            while line := await reader.readline():
                verb = line.split(b" ")[0].strip().decode("ascii", "replace").upper()
                self.verbs.append(verb)
                reply = self.replies.get(verb, b"250 OK\r\n")
                if reply is None:
                    await reader.read()  # stall until the client hangs up
                    return
                writer.write(reply)
                await writer.drain()
                if verb == "QUIT":
                    return
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


EHLO_OK = b"250-mx.example.test Hello [127.0.0.1]\r\n250 PIPELINING\r\n"


class PostfixSubmissionHandler:
    """Postfix with smtpd_tls_security_level = encrypt: nothing before STARTTLS."""

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if server._tls_protocol is None:
            return "530 5.7.0 Must issue a STARTTLS command first"
        envelope.mail_from = address
        return "250 2.1.0 Ok"


class EchoingSubmissionHandler(M365SubmissionHandler):
    """A careless server that repeats the password it was given in its rejection."""

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        server.lab_stats.auth_attempts += 1  # type: ignore[attr-defined]
        assert isinstance(auth_data, LoginPassword)
        said = auth_data.password.decode()
        return AuthResult(
            success=False,
            handled=False,
            message=f"535 5.7.8 Authentication failed: password {said} is wrong "
            f"({base64.b64encode(said.encode()).decode()})",
        )


def submission_server(handler: Any, context: ssl.SSLContext) -> LabSmtpServer:
    return LabSmtpServer(
        handler,
        hostname="LO4P302CA0005.outlook.office365.com",
        tls_context=context,
        authenticator=getattr(handler, "authenticate", None),
        auth_exclude=("PLAIN",),
    )


# ---- ok, and the seed ticket: ip_reputation only at RCPT TO ------------------------------


async def test_a_clean_site_gets_ok_and_no_mail_is_sent(m365: M365Lab, sweep: Sweep) -> None:
    conversation = await sweep.converse(direct_send(m365), bind=BRANCH)

    assert conversation.category is Category.ok
    assert conversation.failed_stage is None
    assert conversation.remediation is None
    assert "accepted the sender and the recipient" in conversation.finding
    assert stages(conversation) == [
        ("connect", "ok"),
        ("banner", "ok"),
        ("ehlo", "ok"),
        ("starttls", "ok"),
        ("tls", "ok"),
        ("ehlo_tls", "ok"),
        ("mail", "ok"),
        ("rcpt", "ok"),
        ("quit", "ok"),
    ]
    assert m365.mx.stats.messages == []
    assert "DATA" not in m365.mx.stats.commands


async def test_banned_ip_is_rejected_only_at_rcpt_after_ehlo_starttls_and_tls_succeeded(
    m365: M365Lab, sweep: Sweep
) -> None:
    # Given a tenant MX that bans the headquarters' IP (Microsoft's 5.7.606)
    m365.tenant.banned_ips.add(HQ)

    # When the HQ copier has its Direct Send conversation
    conversation = await sweep.converse(direct_send(m365), bind=HQ)

    # Then every stage up to RCPT TO worked, and RCPT TO was refused
    assert stages(conversation)[:8] == [
        ("connect", "ok"),
        ("banner", "ok"),
        ("ehlo", "ok"),
        ("starttls", "ok"),
        ("tls", "ok"),
        ("ehlo_tls", "ok"),
        ("mail", "ok"),
        ("rcpt", "failed"),
    ]
    rcpt = stage(conversation, Stage.rcpt)
    assert rcpt.command == "RCPT TO:<alice@contoso.test>"
    assert (rcpt.reply.code, rcpt.reply.enhanced) == (550, "5.7.606")
    assert "banned sending IP [127.0.0.20]" in rcpt.reply.text
    assert rcpt.elapsed_s is not None
    assert (conversation.category, conversation.rule) == (
        Category.ip_reputation,
        "m365.banned_sending_ip",
    )
    assert conversation.failed_stage is Stage.rcpt
    assert conversation.reply == rcpt.reply
    # ... the server told us who we are
    assert conversation.observed_ip == HQ
    # ... the TLS that worked is on record
    tls = conversation.tls
    assert tls is not None
    assert tls.version in ("TLSv1.2", "TLSv1.3")
    assert tls.cipher
    assert tls.subject
    assert tls.issuer
    assert "fleet lab CA" in tls.issuer
    assert set(tls.san) == {"localhost", "127.0.0.1"}
    assert tls.not_after is not None
    assert tls.not_after > datetime.now(UTC) + timedelta(days=300)
    assert tls.verified is True
    # ... and the technician is told what to do
    assert conversation.remediation is not None
    assert conversation.remediation.startswith(
        "Site IP 127.0.0.20 is banned by Microsoft (5.7.606): move this copier to "
        "authenticated submission on smtp.office365.com:587 with STARTTLS"
    )
    assert "https://sender.office.com/" in conversation.remediation
    # ... and the transaction was reset and closed politely, without DATA
    quit_stage = stage(conversation, Stage.quit)
    assert (quit_stage.status, quit_stage.command) == (StageStatus.ok, "RSET; QUIT")
    assert m365.mx.stats.commands[-4:] == ["MAIL", "RCPT", "RSET", "QUIT"]
    assert m365.mx.stats.messages == []


async def test_each_site_is_seen_with_its_own_ip(m365: M365Lab, sweep: Sweep) -> None:
    m365.tenant.banned_ips.add(HQ)

    hq, branch = await asyncio.gather(
        sweep.converse(direct_send(m365), bind=HQ),
        sweep.converse(direct_send(m365), bind=BRANCH),
    )

    assert (hq.category, hq.observed_ip) == (Category.ip_reputation, HQ)
    assert (branch.category, branch.observed_ip) == (Category.ok, BRANCH)
    assert sorted(m365.mx.stats.peers) == [HQ, BRANCH]


# ---- authentication --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "rule", "remedy"),
    [
        (
            "auth_disabled",
            "m365.smtp_auth_disabled_tenant",
            "Set-CASMailbox -SmtpClientAuthenticationDisabled $false",
        ),
        ("security_defaults", "m365.security_defaults", "Conditional Access policy"),
        ("basic_retired", "m365.basic_auth_retired", "Basic AUTH for SMTP is retired"),
    ],
)
async def test_auth_disabled(
    m365: M365Lab,
    sweep: Sweep,
    monkeypatch: pytest.MonkeyPatch,
    behaviour: str,
    rule: str,
    remedy: str,
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password", behaviour=behaviour)

    conversation = await sweep.converse(submission(m365))

    assert (conversation.category, conversation.rule) == (Category.auth_disabled, rule)
    assert conversation.failed_stage is Stage.auth
    assert stage(conversation, Stage.auth).status is StageStatus.failed
    assert conversation.remediation is not None
    assert remedy in conversation.remediation
    assert Stage.mail not in [s.stage for s in conversation.stages]


async def test_wrong_password_is_auth_failed(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "wrong-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")

    conversation = await sweep.converse(submission(m365))

    assert (conversation.category, conversation.rule) == (
        Category.auth_failed,
        "m365.bad_credentials",
    )
    auth = stage(conversation, Stage.auth)
    assert auth.command == "AUTH LOGIN ****"
    assert (auth.reply.code, auth.reply.enhanced) == (535, "5.7.139")
    assert conversation.remediation is not None
    assert f"The password for {MAILBOX} is wrong or expired" in conversation.remediation
    assert m365.submission.stats.auth_attempts == 1


async def test_login_over_starttls_records_capabilities_before_and_after_tls(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")

    conversation = await sweep.converse(submission(m365))

    assert conversation.category is Category.ok
    assert conversation.auth_mechanism == "login"
    # No AUTH is offered before TLS; after TLS, AUTH replaces STARTTLS
    assert "STARTTLS" in conversation.ehlo_before_tls
    assert not any(c.startswith("AUTH") for c in conversation.ehlo_before_tls)
    assert "AUTH LOGIN XOAUTH2" in conversation.ehlo_after_tls
    assert "STARTTLS" not in conversation.ehlo_after_tls
    auth = stage(conversation, Stage.auth)
    assert auth.command == "AUTH LOGIN ****"
    assert (auth.status, auth.reply.code) == (StageStatus.ok, 235)
    assert conversation.observed_ip == HQ


async def test_submission_without_a_login_is_auth_required(m365: M365Lab, sweep: Sweep) -> None:
    conversation = await sweep.converse(submission(m365, username=None, secret=None))

    assert (conversation.category, conversation.rule) == (
        Category.auth_required,
        "m365.client_not_authenticated",
    )
    mail = stage(conversation, Stage.mail)
    assert (mail.reply.code, mail.reply.enhanced) == (530, "5.7.57")
    assert conversation.remediation is not None
    assert "requires a login (5.7.57)" in conversation.remediation


async def test_xoauth2_with_a_token(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_TOKEN", "eyJ0eXAiOiJKV1Qi.lab-token")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(token="eyJ0eXAiOiJKV1Qi.lab-token")

    conversation = await sweep.converse(submission(m365, env="FLEET_TEST_TOKEN", oauth=True))

    assert conversation.category is Category.ok
    assert conversation.auth_mechanism == "xoauth2"
    assert stage(conversation, Stage.auth).command == "AUTH XOAUTH2 ****"
    assert m365.submission.stats.auth_attempts == 1


async def test_exactly_one_auth_attempt_per_identity_per_sweep(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given two sites whose copiers share one mailbox with a wrong password
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "wrong-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")
    spec = submission(m365)

    # When both sites are swept at the same time, sharing the sweep's AUTH gate
    first, second = await asyncio.gather(
        sweep.converse(replace(spec, id="hq"), bind=HQ, label="hq/copier"),
        sweep.converse(replace(spec, id="branch"), bind=BRANCH, label="branch/copier"),
    )

    # Then the server saw one AUTH, and the other conversation did not try
    assert m365.submission.stats.auth_attempts == 1
    assert m365.submission.stats.commands.count("AUTH") == 1
    assert sweep.gate.attempts == {spec.identity: 1}
    tried, skipped = sorted(
        (first, second), key=lambda c: stage(c, Stage.auth).status is StageStatus.skipped
    )
    assert stage(tried, Stage.auth).status is StageStatus.failed
    assert stage(skipped, Stage.auth).status is StageStatus.skipped
    assert skipped.category is tried.category is Category.auth_failed
    assert skipped.rule == tried.rule == "m365.bad_credentials"
    assert skipped.remediation is not None
    assert "Not retried here" in skipped.remediation


async def test_waiting_for_another_attempt_with_the_same_login_can_time_out(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given another conversation holding this mailbox's login turn for longer than the
    # site's time budget lasts
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")
    spec = submission(m365)
    async with sweep.gate.lock(spec.identity):
        deadline = asyncio.get_running_loop().time() + 1.0
        # When the conversation reaches AUTH and waits its turn
        waited = await sweep.converse(spec, deadline=deadline)
    # Then it says it ran out of time at auth: never "ok" with no MAIL or RCPT
    assert waited.category is Category.timeout
    assert waited.failed_stage is Stage.auth
    assert "site_s" in waited.finding
    assert m365.submission.stats.auth_attempts == 0


def test_the_login_identity_is_the_mailbox_whatever_the_endpoint(m365: M365Lab) -> None:
    one = submission(m365, username="Scanner@Contoso.test")
    other = replace(one, host="smtp-legacy.office365.com", port=25)
    assert one.identity == other.identity == "scanner@contoso.test"


async def test_one_auth_attempt_even_when_the_server_offers_several_mechanisms(
    certs: LabCertificates,
    sweep: Sweep,
    start: Callable[[Server], Awaitable[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given smtp.gmail.com, which offers LOGIN, PLAIN, XOAUTH2 and more after STARTTLS
    # (aiosmtplib's login() would try PLAIN, then LOGIN: two failures for one sweep)
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "not-the-app-password")
    tenant = Tenant(mailboxes={"scanner@northwind.test": Mailbox(password="abcd efgh ijkl mnop")})
    google = google_smtp(tenant, certs.server_context("localhost"))
    port = await start(google)
    spec = ConversationSpec(
        id="gmail",
        host="localhost",
        port=port,
        security=Security.starttls,
        mode=Mode.submission,
        mail_from="scanner@northwind.test",
        rcpt_to="alice@northwind.test",
        ehlo_name="copier.northwind.test",
        username="scanner@northwind.test",
        secret=SecretSource(env="FLEET_TEST_PASSWORD"),
        ca_file=str(certs.ca_file),
    )

    conversation = await sweep.converse(spec, bind=WAREHOUSE)

    assert google.stats.auth_attempts == 1
    assert google.stats.commands.count("AUTH") == 1
    assert (conversation.category, conversation.rule) == (
        Category.auth_failed,
        "google.bad_credentials",
    )
    # Google's multi-line reply is kept whole, the code read from it
    reply = conversation.reply
    assert reply is not None
    assert (reply.code, reply.enhanced) == (535, "5.7.8")
    assert "Username and Password not accepted" in reply.text
    assert "?p=BadCredentials" in reply.text.splitlines()[1]
    assert conversation.remediation is not None
    assert "App Password" in conversation.remediation
    assert conversation.observed_ip == WAREHOUSE  # "at your service, [127.0.0.40]"


async def test_the_lab_would_catch_a_login_retry_loop(
    certs: LabCertificates, start: Callable[[Server], Awaitable[int]]
) -> None:
    # The control for the test above: aiosmtplib's own login() tries each mechanism in turn.
    google = google_smtp(Tenant(), certs.server_context("127.0.0.1"))
    port = await start(google)
    client = aiosmtplib.SMTP(
        hostname="127.0.0.1",
        port=port,
        start_tls=True,
        tls_context=ssl.create_default_context(cafile=str(certs.ca_file)),
    )
    await client.connect()
    try:
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.login("scanner@northwind.test", "wrong")
    finally:
        client.close()

    assert google.stats.auth_attempts == 2


# ---- sender, relay, recipient ------------------------------------------------------------


async def test_send_as_denied_is_sender_rejected(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")

    conversation = await sweep.converse(submission(m365, mail_from="frontdesk@contoso.test"))

    assert (conversation.category, conversation.rule) == (
        Category.sender_rejected,
        "m365.send_as_denied",
    )
    assert conversation.failed_stage is Stage.mail
    assert conversation.reply is not None
    assert conversation.reply.enhanced == "5.7.60"
    assert conversation.remediation is not None
    assert (
        f"set the copier's From to {MAILBOX}, or grant {MAILBOX} Send As on "
        "frontdesk@contoso.test" in conversation.remediation
    )


async def test_send_as_granted_is_ok(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(
        password="right-password", send_as={"frontdesk@contoso.test"}
    )

    conversation = await sweep.converse(submission(m365, mail_from="frontdesk@contoso.test"))

    assert conversation.category is Category.ok


async def test_direct_send_to_an_outside_recipient_is_relay_denied(
    m365: M365Lab, sweep: Sweep
) -> None:
    conversation = await sweep.converse(direct_send(m365, rcpt_to="someone@example.net"))

    assert (conversation.category, conversation.rule) == (
        Category.relay_denied,
        "m365.unable_to_relay",
    )
    assert conversation.remediation is not None
    assert "Direct Send only reaches mailboxes hosted in the same tenant" in (
        conversation.remediation
    )


async def test_reject_direct_send_is_relay_denied(m365: M365Lab, sweep: Sweep) -> None:
    m365.tenant.reject_direct_send = True

    conversation = await sweep.converse(direct_send(m365), bind=BRANCH)

    assert (conversation.category, conversation.rule) == (
        Category.relay_denied,
        "m365.reject_direct_send",
    )
    assert conversation.reply is not None
    assert conversation.reply.enhanced == "5.7.68"
    assert conversation.remediation is not None
    assert "partner (inbound) connector for the site's static IP 127.0.0.30" in (
        conversation.remediation
    )


async def test_unknown_recipient_is_recipient_rejected(m365: M365Lab, sweep: Sweep) -> None:
    m365.tenant.recipients = {"alice@contoso.test"}

    conversation = await sweep.converse(direct_send(m365, rcpt_to="nobody@contoso.test"))

    assert (conversation.category, conversation.rule) == (
        Category.recipient_rejected,
        "m365.dbeb_unknown_recipient",
    )
    assert conversation.reply is not None
    assert (conversation.reply.code, conversation.reply.enhanced) == (550, "5.4.1")
    assert conversation.remediation is not None
    assert "fix the recipient address" in conversation.remediation


# ---- throttling ---------------------------------------------------------------------------


async def test_ip_throttling_is_throttled(m365: M365Lab, sweep: Sweep) -> None:
    m365.tenant.throttled_ips.add(WAREHOUSE)

    conversation = await sweep.converse(direct_send(m365), bind=WAREHOUSE)

    assert (conversation.category, conversation.rule) == (Category.throttled, "m365.ip_throttled")
    assert conversation.reply is not None
    assert (conversation.reply.code, conversation.reply.enhanced) == (451, "4.7.500")
    assert conversation.remediation is not None
    assert "Microsoft throttles 127.0.0.40" in conversation.remediation


async def test_sender_thread_limit_is_throttled(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password", behaviour="throttled")

    conversation = await sweep.converse(submission(m365))

    assert (conversation.category, conversation.rule) == (
        Category.throttled,
        "m365.sender_thread_limit",
    )
    assert conversation.reply is not None
    assert (conversation.reply.code, conversation.reply.enhanced) == (432, "4.3.2")
    assert conversation.remediation is not None
    assert f"More than 3 connections at once for {MAILBOX}" in conversation.remediation


# ---- TLS ----------------------------------------------------------------------------------


async def test_no_password_without_tls(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a copier with a login but security "none"
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")

    conversation = await sweep.converse(submission(m365, security=Security.none))

    # Then fleet refuses to send the password in the clear
    assert (conversation.category, conversation.rule) == (
        Category.tls_required,
        "fleet.no_password_without_verified_tls",
    )
    assert conversation.failed_stage is Stage.auth
    assert m365.submission.stats.auth_attempts == 0
    assert "AUTH" not in m365.submission.stats.commands
    assert conversation.remediation is not None
    assert "Use STARTTLS or implicit TLS" in conversation.remediation


async def test_server_that_demands_starttls_first_is_tls_required(
    certs: LabCertificates, sweep: Sweep, start: Callable[[Server], Awaitable[int]]
) -> None:
    postfix = LabSmtpServer(
        PostfixSubmissionHandler(),
        hostname="lab-mx.test",
        ident="ESMTP Postfix",
        tls_context=certs.server_context("localhost"),
    )
    port = await start(postfix)
    spec = ConversationSpec(
        id="postfix",
        host="localhost",
        port=port,
        security=Security.none,
        mode=Mode.relay,
        mail_from="scanner@fabrikam.test",
        rcpt_to="alice@fabrikam.test",
        ehlo_name="copier.fabrikam.test",
    )

    conversation = await sweep.converse(spec)

    assert (conversation.category, conversation.rule) == (
        Category.tls_required,
        "tls.must_starttls_first",
    )
    assert conversation.failed_stage is Stage.mail
    assert conversation.reply is not None
    assert conversation.reply.text == "5.7.0 Must issue a STARTTLS command first"
    assert conversation.remediation is not None
    assert f"Set the copier's security to STARTTLS (port {port})" in conversation.remediation
    assert conversation.observed_ip is None  # Postfix never echoes the client IP


@pytest.mark.parametrize(
    ("server_context", "words"),
    [
        (lambda c: c.server_context("localhost", expires_in=timedelta(days=-1)), "expired"),
        (lambda c: c.server_context("mail.elsewhere.test"), "Hostname mismatch"),
        (lambda c: c.self_signed_context("localhost"), "self-signed"),
    ],
    ids=["expired", "wrong-host", "self-signed"],
)
async def test_untrusted_certificates_are_tls_failure(
    certs: LabCertificates,
    sweep: Sweep,
    start: Callable[[Server], Awaitable[int]],
    server_context: Callable[[LabCertificates], ssl.SSLContext],
    words: str,
) -> None:
    mx = m365_mx(Tenant(), server_context(certs))
    port = await start(mx)
    spec = ConversationSpec(
        id="mx",
        host="localhost",
        port=port,
        security=Security.starttls,
        mode=Mode.direct_send,
        mail_from="scanner@contoso.test",
        rcpt_to="alice@contoso.test",
        ehlo_name="copier.contoso.test",
        ca_file=str(certs.ca_file),
    )

    conversation = await sweep.converse(spec)

    assert (conversation.category, conversation.rule) == (Category.tls_failure, "tls.certificate")
    assert conversation.failed_stage is Stage.tls
    assert stage(conversation, Stage.starttls).status is StageStatus.ok
    assert words in (stage(conversation, Stage.tls).detail or "")
    assert conversation.tls is not None
    assert conversation.tls.verified is False
    assert words in (conversation.tls.verify_error or "")
    assert conversation.remediation is not None
    assert "The certificate of localhost is not trusted" in conversation.remediation
    assert words in conversation.remediation
    assert mx.stats.commands == ["EHLO", "STARTTLS"]  # nothing after a failed handshake


async def test_old_firmware_capped_at_tls_1_1_fails_against_a_tls_1_2_server(
    m365: M365Lab, sweep: Sweep
) -> None:
    conversation = await sweep.converse(direct_send(m365, tls_max="1.1"))

    assert (conversation.category, conversation.rule) == (Category.tls_failure, "tls.version")
    assert conversation.failed_stage is Stage.tls
    assert conversation.tls is not None
    assert conversation.tls.capped_at == "1.1"
    assert conversation.remediation is not None
    assert "The copier speaks TLS 1.1 at most, and localhost needs newer" in (
        conversation.remediation
    )


async def test_tls_max_caps_the_version_spoken(m365: M365Lab, sweep: Sweep) -> None:
    conversation = await sweep.converse(direct_send(m365, tls_max="1.2"))

    assert conversation.category is Category.ok
    assert conversation.tls is not None
    assert (conversation.tls.version, conversation.tls.capped_at) == ("TLSv1.2", "1.2")


async def test_implicit_tls_to_a_plaintext_server_is_tls_failure(
    m365: M365Lab, sweep: Sweep
) -> None:
    conversation = await sweep.converse(direct_send(m365, security=Security.tls))

    assert (conversation.category, conversation.rule) == (Category.tls_failure, "tls.not_tls")
    assert conversation.failed_stage is Stage.tls
    assert conversation.remediation is not None
    assert "answered in plain text, not TLS" in conversation.remediation


async def test_a_ca_file_that_is_not_a_certificate_is_a_finding_not_a_crash(
    m365: M365Lab, sweep: Sweep, tmp_path: Any
) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")

    conversation = await sweep.converse(direct_send(m365, ca_file=str(bogus)))

    assert (conversation.category, conversation.rule) == (Category.tls_failure, "tls.ca_file")
    assert m365.mx.stats.connections == 0


async def test_implicit_tls_handshakes_at_connect(
    certs: LabCertificates,
    sweep: Sweep,
    start: Callable[[Server], Awaitable[int]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given smtp.gmail.com:465 (implicit TLS) and a copier set to "SSL/TLS"
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "abcdefghijklmnop")
    tenant = Tenant(mailboxes={"scanner@northwind.test": Mailbox(password="abcdefghijklmnop")})
    google = google_smtp(tenant, certs.server_context("localhost"), implicit_tls=True)
    port = await start(google)
    spec = ConversationSpec(
        id="gmail-465",
        host="localhost",
        port=port,
        security=Security.tls,
        mode=Mode.submission,
        mail_from="scanner@northwind.test",
        rcpt_to="alice@northwind.test",
        ehlo_name="copier.northwind.test",
        username="scanner@northwind.test",
        secret=SecretSource(env="FLEET_TEST_PASSWORD"),
        ca_file=str(certs.ca_file),
    )

    conversation = await sweep.converse(spec, bind=BRANCH)

    assert conversation.category is Category.ok
    assert [s for s, _ in stages(conversation)] == [
        "connect",
        "tls",
        "banner",
        "ehlo_tls",
        "auth",
        "mail",
        "rcpt",
        "quit",
    ]
    assert conversation.ehlo_before_tls == []
    assert any(c.startswith("AUTH LOGIN PLAIN XOAUTH2") for c in conversation.ehlo_after_tls)
    assert conversation.tls is not None
    assert conversation.tls.verified is True
    assert stage(conversation, Stage.banner).reply.text.endswith("- gsmtp")
    assert conversation.observed_ip == BRANCH
    assert google.stats.auth_attempts == 1


# ---- the network: unreachable, timeout, garbage ------------------------------------------


async def test_closed_port_is_unreachable(sweep: Sweep, certs: LabCertificates) -> None:
    spec = ConversationSpec(
        id="closed",
        host="127.0.0.1",
        port=free_port(),  # nobody listens there
        security=Security.starttls,
        mode=Mode.direct_send,
        mail_from="scanner@contoso.test",
        rcpt_to="alice@contoso.test",
        ehlo_name="copier.contoso.test",
        ca_file=str(certs.ca_file),
    )

    conversation = await sweep.converse(spec)

    assert conversation.category is Category.unreachable
    assert conversation.failed_stage is Stage.connect
    assert "connection refused" in conversation.finding
    assert conversation.remediation is not None
    assert "cannot be reached from the site" in conversation.remediation


@pytest.mark.parametrize(
    ("fault", "category", "words"),
    [
        ("nxdomain", Category.unreachable, "does not resolve"),
        ("servfail", Category.resolver_failure, "cannot look up"),
        ("refused", Category.resolver_failure, "cannot look up"),
    ],
)
async def test_a_mail_host_that_does_not_exist_is_unreachable_but_a_failing_resolver_is_not(
    lab_dns: LabDns, certs: LabCertificates, fault: str, category: Category, words: str
) -> None:
    if fault != "nxdomain":  # the lab answers NXDOMAIN for a name it does not have
        lab_dns.fault("smtp.nowhere.test", fault)
    dns = Dns([lab_dns.nameserver], 1.0, 1)
    try:
        spec = ConversationSpec(
            id="named",
            host="smtp.nowhere.test",
            port=25,
            security=Security.starttls,
            mode=Mode.direct_send,
            mail_from="scanner@contoso.test",
            rcpt_to="alice@contoso.test",
            ehlo_name="copier.contoso.test",
            ca_file=str(certs.ca_file),
        )
        conversation = await Sweep(dns).converse(spec)
    finally:
        await dns.close()

    assert conversation.category is category
    assert conversation.failed_stage is Stage.connect
    assert words in conversation.finding
    if category is Category.resolver_failure:  # says what to check, and that it is not the host
        assert conversation.remediation is not None
        assert "defaults.dns.nameservers" in conversation.remediation


async def test_a_bind_address_not_on_this_machine_is_egress_unreachable(
    m365: M365Lab, sweep: Sweep
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface: binding fails locally, nothing is sent.
    conversation = await sweep.converse(direct_send(m365), bind="192.0.2.1")

    assert conversation.category is Category.egress_unreachable
    assert conversation.remediation is not None
    assert "says nothing about the mail server" in conversation.remediation


def plain_spec(port: int) -> ConversationSpec:
    return ConversationSpec(
        id="raw",
        host="127.0.0.1",
        port=port,
        security=Security.none,
        mode=Mode.direct_send,
        mail_from="scanner@contoso.test",
        rcpt_to="alice@contoso.test",
        ehlo_name="copier.contoso.test",
    )


async def test_a_server_that_never_speaks_times_out_within_the_command_timeout(
    sweep: Sweep, start: Callable[[Server], Awaitable[int]]
) -> None:
    silent = ScriptedServer(banner=None)
    port = await start(silent)

    began = time.perf_counter()
    conversation = await sweep.converse(plain_spec(port), settings=IMPATIENT)
    took_s = time.perf_counter() - began

    assert took_s < IMPATIENT.command_s + MARGIN_S
    assert conversation.category is Category.timeout
    assert conversation.failed_stage is Stage.banner
    assert stage(conversation, Stage.banner).status is StageStatus.error
    assert conversation.remediation is not None
    assert "did not answer in time" in conversation.remediation
    assert ("quit", "ok") not in stages(conversation)


async def test_every_stage_has_its_own_timeout(
    sweep: Sweep, start: Callable[[Server], Awaitable[int]]
) -> None:
    # Given a server that answers everything but RCPT TO
    stalling = ScriptedServer(b"220 mx.example.test ESMTP\r\n", {"EHLO": EHLO_OK, "RCPT": None})
    port = await start(stalling)

    began = time.perf_counter()
    conversation = await sweep.converse(plain_spec(port), settings=IMPATIENT)
    took_s = time.perf_counter() - began

    assert took_s < IMPATIENT.command_s + MARGIN_S
    assert conversation.category is Category.timeout
    assert conversation.failed_stage is Stage.rcpt
    assert stages(conversation)[:5] == [
        ("connect", "ok"),
        ("banner", "ok"),
        ("ehlo", "ok"),
        ("mail", "ok"),
        ("rcpt", "error"),
    ]
    assert "no complete reply to rcpt in time" in conversation.finding
    assert "QUIT" not in stalling.verbs  # it would only wait out another timeout


async def test_the_site_budget_cuts_a_slow_stage_short(
    sweep: Sweep, start: Callable[[Server], Awaitable[int]]
) -> None:
    # Given patient stage timeouts, but a site budget that ends while RCPT TO waits
    stalling = ScriptedServer(b"220 mx.example.test ESMTP\r\n", {"EHLO": EHLO_OK, "RCPT": None})
    port = await start(stalling)
    patient = ProbeSettings(connect_s=5.0, command_s=5.0)

    began = time.perf_counter()
    conversation = await sweep.converse(
        plain_spec(port), settings=patient, deadline=asyncio.get_running_loop().time() + 0.3
    )

    assert time.perf_counter() - began < 0.3 + MARGIN_S
    assert conversation.category is Category.timeout
    assert conversation.failed_stage is Stage.rcpt
    assert "site_s" in conversation.finding
    # the connection was still open: hung up without a QUIT that would wait 5 s more
    assert stage(conversation, Stage.quit).status is StageStatus.skipped
    assert "QUIT" not in stalling.verbs


async def test_a_garbage_reply_is_a_protocol_error(
    sweep: Sweep, start: Callable[[Server], Awaitable[int]]
) -> None:
    garbage = ScriptedServer(
        b"220 mx.example.test ESMTP\r\n", {"EHLO": b"hello there, this is not SMTP\r\n"}
    )
    port = await start(garbage)

    conversation = await sweep.converse(plain_spec(port), settings=IMPATIENT)

    assert conversation.category is Category.protocol_error
    assert conversation.failed_stage is Stage.ehlo
    assert "this is not SMTP" in conversation.finding
    assert conversation.remediation is not None
    assert "broke the SMTP conversation" in conversation.remediation
    assert stage(conversation, Stage.quit).status is StageStatus.skipped


async def test_a_garbage_banner_is_a_protocol_error(
    sweep: Sweep, start: Callable[[Server], Awaitable[int]]
) -> None:
    garbage = ScriptedServer(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
    port = await start(garbage)

    conversation = await sweep.converse(plain_spec(port), settings=IMPATIENT)

    assert conversation.category is Category.protocol_error
    assert conversation.failed_stage is Stage.banner


# ---- --send-test ---------------------------------------------------------------------------


async def test_send_test_sends_one_labelled_message_and_records_the_queue_id(
    m365: M365Lab, sweep: Sweep, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEET_TEST_PASSWORD", "right-password")
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password="right-password")
    settings = replace(FAST, send_test=True)

    conversation = await sweep.converse(submission(m365), settings=settings, label="hq/copier-1")

    assert conversation.category is Category.ok
    assert "and the test message" in conversation.finding
    assert len(m365.submission.stats.messages) == 1
    assert m365.submission.stats.commands.count("DATA") == 1
    test_id = conversation.test_message_id
    assert test_id
    message = email.message_from_bytes(m365.submission.stats.messages[0])
    assert message["Subject"] == f"[fleet test] scan-to-email check hq/copier-1 ({test_id})"
    assert message["X-Fleet-Test-Id"] == test_id
    data = stage(conversation, Stage.data)
    assert data.status is StageStatus.ok
    internal_id = re.search(r"InternalId=(\d+)", data.reply.text)
    assert internal_id is not None
    assert conversation.queue_id == internal_id.group(1)
    # the transaction is complete: nothing to reset
    assert stage(conversation, Stage.quit).command == "QUIT"


async def test_two_test_messages_have_different_ids(m365: M365Lab, sweep: Sweep) -> None:
    settings = replace(FAST, send_test=True)

    first = await sweep.converse(direct_send(m365), settings=settings)
    second = await sweep.converse(direct_send(m365), settings=settings)

    assert first.test_message_id != second.test_message_id
    assert len(m365.mx.stats.messages) == 2


# ---- secrets -------------------------------------------------------------------------------


def wire_forms(user: str, secret: str) -> list[str]:
    return [
        secret,
        base64.b64encode(secret.encode()).decode(),
        base64.b64encode(f"\0{user}\0{secret}".encode()).decode(),
    ]


async def test_a_canary_password_appears_nowhere(
    m365: M365Lab,
    certs: LabCertificates,
    sweep: Sweep,
    start: Callable[[Server], Awaitable[int]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a canary password, and logs captured at DEBUG from every logger
    canary = "canary-Pw-7f3a9c1e"
    monkeypatch.setenv("FLEET_TEST_PASSWORD", canary)
    caplog.set_level(logging.DEBUG)
    for name in ("aiosmtplib", "mail.log", "asyncio", "fleet"):
        caplog.set_level(logging.DEBUG, logger=name)
    m365.tenant.mailboxes[MAILBOX] = Mailbox(password=canary)
    m365.tenant.mailboxes["other@contoso.test"] = Mailbox(password="not-the-canary")
    tenant = Tenant(mailboxes={MAILBOX: Mailbox(password="app-password")})
    google = google_smtp(tenant, certs.server_context("localhost"))
    await start(google)

    # When the password works, fails on M365 (LOGIN), and fails on Google (PLAIN)
    results = [
        await sweep.converse(submission(m365), settings=replace(FAST, send_test=True)),
        await sweep.converse(submission(m365, username="other@contoso.test")),
        await sweep.converse(submission(m365, port=google.port, id="gmail")),
    ]

    # Then it is in no result, no JSON and no log line
    assert [r.category for r in results] == [
        Category.ok,
        Category.auth_failed,
        Category.auth_failed,
    ]
    assert results[2].auth_mechanism == "plain"
    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    assert "AUTH" in logged  # the servers did log the conversation
    for result in results:
        for form in wire_forms(MAILBOX, canary):
            assert form not in result.model_dump_json()
            assert form not in repr(result)
            assert form not in logged
    for form in wire_forms("other@contoso.test", canary):
        assert form not in logged


async def test_a_password_echoed_by_the_server_is_not_recorded(
    certs: LabCertificates,
    sweep: Sweep,
    start: Callable[[Server], Awaitable[int]],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Given a careless server that repeats the password in its rejection
    canary = "canary-Echo-5b2e8d40"
    monkeypatch.setenv("FLEET_TEST_PASSWORD", canary)
    caplog.set_level(logging.DEBUG)
    echoing = submission_server(
        EchoingSubmissionHandler(Tenant()), certs.server_context("localhost")
    )
    port = await start(echoing)
    spec = ConversationSpec(
        id="echo",
        host="localhost",
        port=port,
        security=Security.starttls,
        mode=Mode.submission,
        mail_from=MAILBOX,
        rcpt_to="alice@contoso.test",
        ehlo_name="copier.contoso.test",
        username=MAILBOX,
        secret=SecretSource(env="FLEET_TEST_PASSWORD"),
        ca_file=str(certs.ca_file),
    )

    conversation = await sweep.converse(spec)

    # Then the reply is kept, with the password blanked
    assert conversation.category is Category.auth_failed
    assert conversation.reply is not None
    assert "password **** is wrong (****)" in conversation.reply.text
    dumped = conversation.model_dump_json()
    for form in wire_forms(MAILBOX, canary):
        assert form not in dumped
    # ... and nothing of ours logged it (the careless server's own log is its business)
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]
    for form in wire_forms(MAILBOX, canary):
        assert not any(form in r.getMessage() for r in ours)
