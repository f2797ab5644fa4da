"""SMTP servers for the loopback lab (aiosmtpd) that speak like the ones copiers meet:
a Microsoft 365 tenant MX (Direct Send), the Microsoft 365 submission endpoint, and
Google's smtp.gmail.com (STARTTLS on 587 or implicit TLS on 465).

They decide per client IP the way Exchange Online does: the EHLO reply echoes the client
address ("Hello [127.0.0.20]"), a banned IP is refused at RCPT TO with 5.7.606, and the
submission endpoint offers AUTH only after STARTTLS. Used by `fleet demo` and the tests.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import functools
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from fleet.lab.oauth import SEND_AS_APP, LabTokenEndpoint

MX_EXTENSIONS = ["SIZE 157286400", "PIPELINING", "DSN", "ENHANCEDSTATUSCODES"]
TAIL_EXTENSIONS = ["8BITMIME", "BINARYMIME", "CHUNKING", "SMTPUTF8"]

AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]"
)
WRONG_CREDENTIALS = (
    "535 5.7.139 Authentication unsuccessful, the user credentials were incorrect. "
    "[LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]"
)
SECURITY_DEFAULTS = (
    "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security "
    "defaults policy. Contact your administrator. [LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]"
)
BASIC_RETIRED = "550 5.7.30 Basic authentication is not supported for Client Submission."
NOT_AUTHENTICATED = (
    "530 5.7.57 Client was not authenticated to send anonymous mail during MAIL FROM "
    "[LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]"
)
MAILBOX_AUTH_DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Mailbox. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]"
)
OAUTH_UNSUCCESSFUL = (
    "535 5.7.3 Authentication unsuccessful [LO4P302CA0005.GBRP302.PROD.OUTLOOK.COM]"
)
SEND_AS_DENIED = "550 5.7.60 SMTP; Client does not have permissions to send as this sender"
THREAD_LIMIT = "432 4.3.2 STOREDRV.ClientSubmit; sender thread limit exceeded"
UNABLE_TO_RELAY = "550 5.7.1 Unable to relay [BY2NAM01FT030.eop-nam01.prod.protection.outlook.com]"

# Google's replies are multi-line, every line carrying the code (as smtp.gmail.com sends them).
GOOGLE_BAD_CREDENTIALS = (
    "535-5.7.8 Username and Password not accepted. For more information, go to\r\n"
    "535 5.7.8  https://support.google.com/mail/?p=BadCredentials "
    "d2e1a72fcca58-7a1b2c3d4e5f6sm1234567b3a.12 - gsmtp"
)
GOOGLE_XOAUTH2_CHALLENGE = '{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}'
GOOGLE_AUTH_REQUIRED = (
    "530-5.7.0 Authentication Required. For more information, go to\r\n"
    "530 5.7.0  https://support.google.com/mail/?p=WantAuthError "
    "a1b2c3d4e5f6-7a1b2c3d4e5f6sm7654321pgb.34 - gsmtp"
)


def banned_ip_reply(ip: str) -> str:
    return (
        f"550 5.7.606 Access denied, banned sending IP [{ip}]. To request removal from this "
        "list please visit https://sender.office.com/ and follow the directions. For more "
        "information please go to http://go.microsoft.com/fwlink/?LinkID=526655 AS(1430) "
        "[BY2NAM01FT030.eop-nam01.prod.protection.outlook.com]"
    )


@dataclass
class ServerStats:
    """What a lab server saw: used by tests to check politeness and AUTH attempts."""

    connections: int = 0
    per_peer: dict[str, int] = field(default_factory=dict)
    max_per_peer: dict[str, int] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)
    auth_attempts: int = 0
    commands: list[str] = field(default_factory=list)  # verbs only: AUTH arguments are secret
    messages: list[bytes] = field(default_factory=list)
    live: set[asyncio.BaseTransport | None] = field(default_factory=set)
    # (when, +1 opened / -1 closed, peer): lets tests replay concurrency per site or overall
    timeline: list[tuple[float, int, str]] = field(default_factory=list)

    def opened(self, peer: str) -> None:
        self.timeline.append((time.monotonic(), 1, peer))
        self.connections += 1
        self.per_peer[peer] = self.per_peer.get(peer, 0) + 1
        self.max_per_peer[peer] = max(self.max_per_peer.get(peer, 0), self.per_peer[peer])
        self.peers.append(peer)

    def closed(self, peer: str) -> None:
        self.timeline.append((time.monotonic(), -1, peer))
        self.per_peer[peer] = self.per_peer.get(peer, 1) - 1


@dataclass
class Mailbox:
    password: str = ""
    token: str | None = None  # an OAuth access token accepted by XOAUTH2
    behaviour: str = "ok"  # ok | auth_disabled | security_defaults | basic_retired | throttled
    send_as: set[str] = field(default_factory=set)
    # apps given access with Add-MailboxPermission (their app ids), for app-only XOAUTH2
    oauth_apps: set[str] = field(default_factory=set)


@dataclass
class Tenant:
    """What a Microsoft 365 tenant decides, per client IP and address."""

    name: str = "contoso"
    accepted_domains: set[str] = field(default_factory=lambda: {"contoso.test"})
    recipients: set[str] | None = None  # None: every address in an accepted domain exists
    banned_ips: set[str] = field(default_factory=set)
    throttled_ips: set[str] = field(default_factory=set)
    reject_direct_send: bool = False
    connector_ips: set[str] = field(default_factory=set)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    # the lab token endpoint whose tokens this tenant accepts, and the apps registered in
    # Exchange with New-ServicePrincipal (their app ids)
    token_endpoint: LabTokenEndpoint | None = None
    service_principals: set[str] = field(default_factory=set)

    def domain_of(self, address: str) -> str:
        return address.rpartition("@")[2].lower()


def _tls_active(server: SMTP) -> bool:
    """Is this connection encrypted (after STARTTLS, or from the start with implicit TLS)?"""
    return server._tls_protocol is not None or bool(getattr(server, "lab_implicit_tls", False))


def _peer_ip(session: Session) -> str:
    # aiosmtpd types `peer` as a string, but it holds the socket's (host, port) tuple.
    peer: Any = session.peer
    return str(peer[0]) if isinstance(peer, tuple) else str(peer)


class _M365Handler:
    """Hooks shared by both endpoints: the EHLO line that echoes the client IP."""

    pod = "LO4P302CA0005.outlook.office365.com"

    def __init__(self, tenant: Tenant, submission: bool) -> None:
        self.tenant = tenant
        self.submission = submission

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        tls_active = _tls_active(server)
        lines = [f"{self.pod} Hello [{_peer_ip(session)}]", *MX_EXTENSIONS]
        if server.tls_context is not None and not tls_active:
            lines.append("STARTTLS")
        if self.submission and tls_active:
            lines.append("AUTH LOGIN XOAUTH2")
        lines.extend(TAIL_EXTENSIONS)
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        stats: ServerStats = server.lab_stats  # type: ignore[attr-defined]
        stats.messages.append(bytes(envelope.original_content or b""))
        stamp = int(datetime.now(UTC).timestamp())
        return (
            f"250 2.6.0 <fleet-lab-{stamp}@{self.pod}> [InternalId={stamp}, "
            f"Hostname={self.pod}] Queued mail for delivery"
        )


class M365MxHandler(_M365Handler):
    """A tenant MX (`<tenant>.mail.protection.outlook.com:25`): Direct Send and relay."""

    pod = "BY2NAM01FT030.mail.protection.outlook.com"

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant, submission=False)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        envelope.mail_from = address
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        tenant, ip = self.tenant, _peer_ip(session)
        if ip in tenant.banned_ips:
            return banned_ip_reply(ip)
        if ip in tenant.throttled_ips:
            return "451 4.7.500 Access denied, please try again later. (AS1111)"
        if tenant.domain_of(address) not in tenant.accepted_domains:
            return UNABLE_TO_RELAY
        sender_domain = tenant.domain_of(envelope.mail_from or "")
        if (
            tenant.reject_direct_send
            and sender_domain in tenant.accepted_domains
            and ip not in tenant.connector_ips
        ):
            return (
                "550 5.7.68 TenantInboundAttribution; Direct Send not allowed for this "
                "organization from unauthorized sources"
            )
        if tenant.recipients is not None and address.lower() not in tenant.recipients:
            return f"550 5.4.1 Recipient address rejected: Access denied. [{self.pod}]"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"


def _xoauth2(server: SMTP, tenant: Tenant, args: list[str]) -> AuthResult:
    """SASL XOAUTH2: "user=<login>\x01auth=Bearer <token>\x01\x01", checked against the tenant."""
    stats: ServerStats = server.lab_stats  # type: ignore[attr-defined]
    stats.auth_attempts += 1
    try:
        blob = base64.b64decode(args[1]).decode() if len(args) > 1 else ""
    except (binascii.Error, UnicodeDecodeError):
        return AuthResult(success=False, handled=False, message="501 5.5.2 Cannot decode")
    fields = dict(part.split("=", 1) for part in blob.split("\x01") if "=" in part)
    user = fields.get("user", "").lower()
    token = fields.get("auth", "").removeprefix("Bearer ")
    mailbox = tenant.mailboxes.get(user)
    issued = tenant.token_endpoint.issued.get(token) if tenant.token_endpoint else None
    if issued is not None:
        return _issued_token(tenant, user, mailbox, issued)
    if mailbox is None or mailbox.token is None or token != mailbox.token:
        return AuthResult(
            success=False, handled=False, message="535 5.7.3 Authentication unsuccessful"
        )
    return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))


def _issued_token(tenant: Tenant, user: str, mailbox: Mailbox | None, issued: Any) -> AuthResult:
    """A token from the lab's endpoint, judged as Exchange Online judges an app token."""
    refused = AuthResult(success=False, handled=False, message=OAUTH_UNSUCCESSFUL)
    if mailbox is None:
        return refused
    if mailbox.behaviour == "auth_disabled":
        return AuthResult(success=False, handled=False, message=MAILBOX_AUTH_DISABLED)
    if issued.provider == "google":
        if issued.subject != user:
            return AuthResult(success=False, handled=False, message=GOOGLE_BAD_CREDENTIALS)
        return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))
    if (
        SEND_AS_APP not in issued.roles
        or issued.app_id not in tenant.service_principals
        or issued.app_id not in mailbox.oauth_apps
    ):
        return refused
    return AuthResult(success=True, auth_data=LoginPassword(user.encode(), b""))


class M365SubmissionHandler(_M365Handler):
    """`smtp.office365.com:587`: STARTTLS, then AUTH LOGIN or XOAUTH2, then MAIL."""

    def __init__(self, tenant: Tenant) -> None:
        super().__init__(tenant, submission=True)

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return _xoauth2(server, self.tenant, args)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        stats: ServerStats = server.lab_stats  # type: ignore[attr-defined]
        stats.auth_attempts += 1
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode("utf-8", "replace").lower()
        mailbox = self.tenant.mailboxes.get(user)
        if mailbox is not None and mailbox.behaviour == "auth_disabled":
            return AuthResult(success=False, handled=False, message=AUTH_DISABLED)
        if mailbox is not None and mailbox.behaviour == "security_defaults":
            return AuthResult(success=False, handled=False, message=SECURITY_DEFAULTS)
        if mailbox is not None and mailbox.behaviour == "basic_retired":
            return AuthResult(success=False, handled=False, message=BASIC_RETIRED)
        if mailbox is None or auth_data.password.decode("utf-8", "replace") != mailbox.password:
            return AuthResult(success=False, handled=False, message=WRONG_CREDENTIALS)
        return AuthResult(
            success=True, auth_data=auth_data, message="235 2.7.0 Authentication successful"
        )

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not session.authenticated:
            return NOT_AUTHENTICATED
        auth_data: Any = session.auth_data
        login = (
            auth_data.login.decode("utf-8", "replace").lower()
            if isinstance(auth_data, LoginPassword)
            else ""
        )
        mailbox = self.tenant.mailboxes.get(login, Mailbox())
        if mailbox.behaviour == "throttled":
            return THREAD_LIMIT
        if address.lower() != login and address.lower() not in mailbox.send_as:
            return SEND_AS_DENIED
        envelope.mail_from = address
        return "250 2.1.0 Sender OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Recipient OK"


class QuietHandler:
    """A Postfix-like MX that accepts every recipient; its EHLO does not echo the client's
    address, so only the site's declared IP (or a public IP lookup) tells it."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"


class LabSMTP(SMTP):
    """aiosmtpd's SMTP with connection counting and an optional delay before every reply
    (to emulate a WAN round trip)."""

    def __init__(
        self,
        handler: Any,
        stats: ServerStats,
        delay_s: float = 0.0,
        implicit_tls: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, **kwargs)
        # An XOAUTH2 line carries a whole access token (Entra's are 1-3 KB): Exchange takes
        # it, aiosmtpd's 512-byte default would not. Per instance: aiosmtpd's is shared.
        self.command_size_limits = collections.defaultdict(lambda: SMTP.command_size_limit)
        self.command_size_limits["AUTH"] = 16384
        self.lab_stats = stats
        self.lab_implicit_tls = implicit_tls
        self.delay_s = delay_s
        self._lab_peer = "?"
        self._lab_transport: asyncio.BaseTransport | None = None
        self._smtp_methods = {
            verb: self._recorded(verb, method) for verb, method in self._smtp_methods.items()
        }

    def _recorded(
        self, verb: str, method: Callable[[str | None], Awaitable[None]]
    ) -> Callable[[str | None], Awaitable[None]]:
        """Count each command verb the client sent (never its arguments)."""

        @functools.wraps(method)
        async def run(arg: str | None) -> None:
            self.lab_stats.commands.append(verb)
            await method(arg)

        return run

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._lab_peer == "?":  # not again when STARTTLS re-wraps the transport
            peer = transport.get_extra_info("peername")
            self._lab_peer = str(peer[0]) if peer else "?"
            self.lab_stats.opened(self._lab_peer)
            self.lab_stats.live.add(transport)
            self._lab_transport = transport
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._lab_peer != "?" and not getattr(self, "_lab_closed", False):
            self._lab_closed = True
            self.lab_stats.closed(self._lab_peer)
            self.lab_stats.live.discard(self._lab_transport)
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        await super().push(status)


class LabSmtpServer:
    """One aiosmtpd server on loopback in the running event loop."""

    def __init__(
        self,
        handler: Any,
        *,
        hostname: str,
        ident: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        authenticator: Any = None,
        auth_exclude: tuple[str, ...] = (),
        delay_s: float = 0.0,
        implicit_tls: bool = False,
    ) -> None:
        self.handler = handler
        self.implicit_tls = implicit_tls
        self.hostname = hostname
        self.ident = ident or (
            "Microsoft ESMTP MAIL Service ready at " + format_datetime(datetime.now(UTC))
        )
        self.tls_context = tls_context
        self.authenticator = authenticator
        self.auth_exclude = auth_exclude
        self.delay_s = delay_s
        self.stats = ServerStats()
        self.server: asyncio.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def _protocol(self) -> LabSMTP:
        return LabSMTP(
            self.handler,
            self.stats,
            delay_s=self.delay_s,
            implicit_tls=self.implicit_tls,
            hostname=self.hostname,
            ident=self.ident,
            # With implicit TLS the whole connection is encrypted: no STARTTLS to offer, and
            # aiosmtpd's own "TLS before AUTH" check only knows about STARTTLS.
            tls_context=None if self.implicit_tls else self.tls_context,
            authenticator=self.authenticator,
            auth_exclude_mechanism=self.auth_exclude,
            auth_require_tls=not self.implicit_tls,
            loop=asyncio.get_running_loop(),
        )

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._protocol,
            host=host,
            port=port,
            ssl=self.tls_context if self.implicit_tls else None,
            # Exchange Online takes thousands of connections at once; asyncio's default
            # backlog (100) would drop a big sweep's SYNs and read as a firewall.
            backlog=1024,
        )
        self.host = host
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for transport in list(self.stats.live):
                if transport is not None:
                    transport.close()
            self.stats.live.clear()
            await self.server.wait_closed()
            self.server = None


def m365_mx(
    tenant: Tenant, tls_context: ssl.SSLContext | None, delay_s: float = 0.0
) -> LabSmtpServer:
    """A Microsoft 365 tenant MX for Direct Send."""
    return LabSmtpServer(
        M365MxHandler(tenant),
        hostname="BY2NAM01FT030.mail.protection.outlook.com",
        tls_context=tls_context,
        delay_s=delay_s,
    )


def m365_submission(
    tenant: Tenant, tls_context: ssl.SSLContext, delay_s: float = 0.0
) -> LabSmtpServer:
    """Microsoft 365 client submission (smtp.office365.com:587)."""
    handler = M365SubmissionHandler(tenant)
    return LabSmtpServer(
        handler,
        hostname="LO4P302CA0005.outlook.office365.com",
        tls_context=tls_context,
        authenticator=handler.authenticate,
        auth_exclude=("PLAIN",),
        delay_s=delay_s,
    )


class GoogleSmtpHandler:
    """`smtp.gmail.com`: echoes the client IP ("at your service, [ip]"), offers AUTH only over
    TLS with all the mechanisms Google lists, and answers in multi-line replies."""

    host = "smtp.gmail.com"
    stamp = "d2e1a72fcca58-7a1b2c3d4e5f6sm1234567b3a.12 - gsmtp"

    def __init__(self, tenant: Tenant) -> None:
        self.tenant = tenant

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        lines = [f"{self.host} at your service, [{_peer_ip(session)}]", "SIZE 35882577", "8BITMIME"]
        if server.tls_context is not None and not _tls_active(server):
            lines.append("STARTTLS")
        if _tls_active(server):
            lines.append("AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH")
        lines.extend(["ENHANCEDSTATUSCODES", "PIPELINING", "CHUNKING", "SMTPUTF8"])
        return [f"250-{line}" for line in lines[:-1]] + [f"250 {lines[-1]}"]

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        result = _xoauth2(server, self.tenant, args)
        if result.success:
            return result
        # Gmail answers a refused token with a 334 carrying a base64 JSON error, waits for
        # an empty line, and only then says 535.
        await server.challenge_auth(GOOGLE_XOAUTH2_CHALLENGE)
        return AuthResult(success=False, handled=False, message=GOOGLE_BAD_CREDENTIALS)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        stats: ServerStats = server.lab_stats  # type: ignore[attr-defined]
        stats.auth_attempts += 1
        if isinstance(auth_data, LoginPassword):
            mailbox = self.tenant.mailboxes.get(auth_data.login.decode("utf-8", "replace").lower())
            if mailbox is not None and auth_data.password.decode("utf-8", "replace") == (
                mailbox.password
            ):
                return AuthResult(
                    success=True, auth_data=auth_data, message=f"235 2.7.0 Accepted {self.stamp}"
                )
        return AuthResult(success=False, handled=False, message=GOOGLE_BAD_CREDENTIALS)

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not session.authenticated:
            return GOOGLE_AUTH_REQUIRED
        envelope.mail_from = address
        return f"250 2.1.0 OK {self.stamp}"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        envelope.rcpt_tos.append(address)
        return f"250 2.1.5 OK {self.stamp}"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        stats: ServerStats = server.lab_stats  # type: ignore[attr-defined]
        stats.messages.append(bytes(envelope.original_content or b""))
        return f"250 2.0.0 OK  {int(datetime.now(UTC).timestamp())} {self.stamp}"


def google_smtp(
    tenant: Tenant, tls_context: ssl.SSLContext, implicit_tls: bool = False
) -> LabSmtpServer:
    """Google's smtp.gmail.com: STARTTLS (587) or implicit TLS (465), AUTH over TLS only."""
    handler = GoogleSmtpHandler(tenant)
    return LabSmtpServer(
        handler,
        hostname=handler.host,
        ident=f"ESMTP {handler.stamp}",
        tls_context=tls_context,
        authenticator=handler.authenticate,
        implicit_tls=implicit_tls,
    )
