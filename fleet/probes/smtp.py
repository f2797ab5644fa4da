"""The SMTP conversation a copier would have, stage by stage, stopping before any mail
is sent (unless the user explicitly asks for a test message).

connect -> banner -> ehlo -> starttls -> tls -> ehlo_tls -> auth -> mail -> rcpt -> quit
(implicit TLS: connect -> tls -> banner -> ehlo_tls -> ...). Every stage is recorded with
the command sent (secrets redacted), the reply, and the time it took; the first stage
that fails decides the conversation's category. Network faults never raise out of here.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import dataclasses
import ipaddress
import re
import ssl
import time
import uuid
import warnings
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any, TypeVar

import aiosmtplib

from fleet.classify import (
    Classification,
    Context,
    Fault,
    RuleId,
    classify_exception,
    classify_given_token_refusal,
    classify_oauth_refusal,
    classify_reply,
    classify_token_failure,
    clean_text,
    connection_cut,
    echoed_client_ip,
    fault_remedy,
    handshake_fault,
    make_reply,
    not_retried,
    own,
    provider_of,
)
from fleet.credentials import Secrets, login_forms
from fleet.egress import InStepProtocol, Opened, Opener, OutOfStep, ProxiedOpener
from fleet.errors import ProbeTimeout, SecretError
from fleet.net import on_local_network
from fleet.oauth import Token, TokenBroker, TokenFailure, TokenRequest, given_token_expired
from fleet.probes.spec import ConversationSpec
from fleet.results import (
    Category,
    Conversation,
    Reply,
    Security,
    Stage,
    StageResult,
    StageStatus,
    TlsInfo,
)

if TYPE_CHECKING:
    from cryptography import x509

T = TypeVar("T")


# Refusals of RSET or QUIT that are their own answer, not a reply left over from RCPT.
_ITS_OWN_ANSWER = frozenset({421, 500, 501, 502, 504})


@dataclass(frozen=True)
class ProbeSettings:
    connect_s: float = 10.0
    command_s: float = 30.0
    send_test: bool = False  # send DATA with a labelled test message: only when asked


# ---- shared per sweep: TLS contexts, certificate parsing, the AUTH gate ------------------

# asyncio gives every TLS connection a 256 KiB read buffer (SSLProtocol.max_size); at 200
# conversations in flight that is 50 MB for SMTP replies of a few hundred bytes. 32 KiB
# still holds two full TLS records. The attribute only sizes that buffer and read chunks.
# It matters on asyncio's own loop only (Windows, FLEET_LOOP=asyncio): uvloop, the default
# elsewhere, has a TLS protocol of its own and never creates this class (measured: a TLS
# connection on uvloop creates no asyncio.sslproto.SSLProtocol, on asyncio's loop one per
# side), so there the patch changes nothing and costs nothing.
_TLS_READ_BUFFER = 32 * 1024


def use_small_tls_buffers() -> None:
    """Size asyncio's per-connection TLS read buffer for SMTP, not bulk transfer."""
    if asyncio.sslproto.SSLProtocol.max_size > _TLS_READ_BUFFER:
        asyncio.sslproto.SSLProtocol.max_size = _TLS_READ_BUFFER


_TLS_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsContexts:
    """SSL contexts by (ca_file, tls_max, verify): building one loads the CA store, which
    costs milliseconds, so a sweep builds each kind once."""

    def __init__(self) -> None:
        self._contexts: dict[tuple[str | None, str | None, bool], ssl.SSLContext] = {}
        self._certs: dict[bytes, TlsInfo] = {}
        # The TLS details of a conversation, by certificate and what was negotiated: a
        # sweep meets a few servers thousands of times, and the models are frozen.
        self._details: dict[
            tuple[bytes | None, str | None, str | None, bool, str | None], TlsInfo
        ] = {}
        # The same by the decoded certificate of a verified peer (see details()).
        self._seen: dict[tuple[Any, ...], TlsInfo] = {}

    def get(self, ca_file: str | None, tls_max: str | None, verify: bool) -> ssl.SSLContext:
        key = (ca_file, tls_max, verify)
        context = self._contexts.get(key)
        if context is None:
            context = ssl.create_default_context(cafile=ca_file)
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            if tls_max is not None:
                # Python deprecates TLS 1.0/1.1; speaking them is the point of a cap at 1.1.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", DeprecationWarning)
                    context.maximum_version = _TLS_VERSIONS[tls_max]
                    if tls_max in ("1.0", "1.1"):
                        # Old firmware: let OpenSSL speak the old protocol it would speak.
                        context.minimum_version = ssl.TLSVersion.TLSv1
                        context.set_ciphers("DEFAULT:@SECLEVEL=0")
            self._contexts[key] = context
        return context

    def certificate(self, der: bytes | None, decoded: dict[str, Any] | None = None) -> TlsInfo:
        """Subject, issuer, SANs and expiry of a DER certificate (parsed once per sweep).
        `decoded` is ssl's getpeercert() of a verified connection: when it holds every
        field, cryptography (20-30 ms to import) is not needed."""
        if not der:
            return TlsInfo()
        info = self._certs.get(der)
        if info is None:
            info = (_from_decoded(decoded) if decoded else None) or _parse_certificate(der)
            self._certs[der] = info
        return info

    def details(
        self,
        ssl_object: ssl.SSLObject,
        verified: bool,
        capped_at: str | None,
        peercert: dict[str, Any] | None = None,
    ) -> TlsInfo:
        """The TLS details of a connection: its certificate's (decoded only the first time
        the sweep sees it) with the version and cipher negotiated. `peercert` is the
        decoded certificate the transport already took at the handshake (its "peercert"
        extra): a verified peer is then known by it, without asking OpenSSL for the DER
        form too (one more certificate encoding per conversation)."""
        cipher = ssl_object.cipher()
        version, name = ssl_object.version(), cipher[0] if cipher else None
        if verified and peercert:
            # ssl's decoded form is nested tuples of str/int: hashable as it is, and it
            # holds the issuer and serial number, which name one certificate.
            seen: tuple[Any, ...] = (tuple(peercert.items()), version, name, capped_at)
            info = self._seen.get(seen)
            if info is None:
                info = self._details_of(ssl_object, verified, capped_at, version, name)
                self._seen[seen] = info
            return info
        return self._details_of(ssl_object, verified, capped_at, version, name)

    def _details_of(
        self,
        ssl_object: ssl.SSLObject,
        verified: bool,
        capped_at: str | None,
        version: str | None,
        name: str | None,
    ) -> TlsInfo:
        der = ssl_object.getpeercert(binary_form=True)
        key = (der, version, name, verified, capped_at)
        info = self._details.get(key)
        if info is None:
            # getpeercert() decodes the certificate only when it was verified
            decoded = ssl_object.getpeercert() if verified and der else None
            info = self.certificate(der, decoded).model_copy(
                update={
                    "version": version,
                    "cipher": name,
                    "verified": True if verified else None,
                    "capped_at": capped_at,
                }
            )
            self._details[key] = info
        return info


def _from_decoded(decoded: dict[str, Any]) -> TlsInfo | None:
    """The same TlsInfo as _parse_certificate from ssl's decoded form, or None when it
    needs cryptography (an unusual name or address)."""
    subject = _decoded_name(decoded.get("subject", ()))
    issuer = _decoded_name(decoded.get("issuer", ()))
    not_after = decoded.get("notAfter")
    if subject is None or issuer is None or not isinstance(not_after, str):
        return None
    names = decoded.get("subjectAltName", ())
    try:
        addresses = [str(ipaddress.ip_address(v)) for k, v in names if k == "IP Address"]
        expires = datetime.fromtimestamp(ssl.cert_time_to_seconds(not_after), UTC)
    except ValueError:
        return None
    return TlsInfo(
        subject=subject,
        issuer=issuer,
        san=[*(v for k, v in names if k == "DNS"), *addresses],
        not_after=expires,
    )


# ssl's long attribute names -> the short names cryptography's rfc4514_string() writes
_RFC4514_NAMES = {
    "commonName": "CN",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "countryName": "C",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


def _decoded_name(name: tuple[tuple[tuple[str, str], ...], ...]) -> str | None:
    """What _name() gives for the same name: its first common name, else its RFC 4514
    form as cryptography writes it; None for what only cryptography renders (other
    attributes, multi-valued RDNs, an empty name)."""
    for rdn in name:
        for key, value in rdn:
            if key == "commonName":
                return value
    if not name or any(len(rdn) != 1 or rdn[0][0] not in _RFC4514_NAMES for rdn in name):
        return None
    return ",".join(
        f"{_RFC4514_NAMES[rdn[0][0]]}={_escape_dn_value(rdn[0][1])}" for rdn in reversed(name)
    )


def _escape_dn_value(value: str) -> str:
    """RFC 4514 section 2.4 escaping, character for character as cryptography does it."""
    if not value:
        return ""
    for char, escaped in (
        ("\\", "\\\\"),
        ('"', '\\"'),
        ("+", "\\+"),
        (",", "\\,"),
        (";", "\\;"),
        ("<", "\\<"),
        (">", "\\>"),
        ("\0", "\\00"),
    ):
        value = value.replace(char, escaped)
    if value[0] == "#" or (value[0] == " " and len(value) > 1):
        value = "\\" + value
    if value[-1] == " ":
        value = value[:-1] + "\\ "
    return value


def _parse_certificate(der: bytes) -> TlsInfo:
    from cryptography import x509  # only here: most verified peers never need it

    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        return TlsInfo(verify_error=f"unreadable certificate: {exc}")
    san: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound, ValueError):
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        san = [
            *ext.get_values_for_type(x509.DNSName),
            *map(str, ext.get_values_for_type(x509.IPAddress)),
        ]
    return TlsInfo(
        subject=_name(cert.subject),
        issuer=_name(cert.issuer),
        san=san,
        not_after=cert.not_valid_after_utc,
    )


def _name(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common:
        value = common[0].value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return name.rfc4514_string()


@dataclass
class _AuthOutcome:
    decision: Classification
    reply: Reply | None
    where: str


class AuthGate:
    """Exactly one failing AUTH attempt per identity per sweep: a retry loop, or fifty sites
    sharing a mailbox, could otherwise lock that mailbox out. Attempts for one identity
    run one at a time; after a failure, later conversations do not try again."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._failures: dict[str, _AuthOutcome] = {}
        self.attempts: dict[str, int] = {}

    def lock(self, identity: str) -> asyncio.Lock:
        return self._locks.setdefault(identity, asyncio.Lock())

    def failure(self, identity: str) -> _AuthOutcome | None:
        return self._failures.get(identity)

    def record_attempt(self, identity: str) -> None:
        self.attempts[identity] = self.attempts.get(identity, 0) + 1

    def record_failure(self, identity: str, outcome: _AuthOutcome) -> None:
        self._failures[identity] = outcome


# ---- the conversation -------------------------------------------------------------------


class _GreetingAwareSMTP(aiosmtplib.SMTP):
    """aiosmtplib hangs up as soon as a greeting is not 220. A server that refuses in its
    greeting (RFC 5321 3.1: 554 instead of 220) still listens and expects a QUIT: send it,
    and keep what it answered for the transcript."""

    quit_s: float = 5.0
    greeting_quit: StageResult | None = None
    opened: Opened | None = None
    # An implicit TLS handshake's (ssl_object, peercert), kept past a greeting that fails
    # (aiosmtplib then drops the connection and, with it, what was negotiated).
    handshake: tuple[Any, Any] | None = None

    async def _create_connection(self, timeout: float | None) -> aiosmtplib.SMTPResponse:  # noqa: ASYNC109 (aiosmtplib's signature)
        try:
            if self.opened is None:
                self.opened = await self._open_on_socket(timeout)
            return await self._adopt(self.opened, timeout)
        except aiosmtplib.SMTPConnectResponseError as exc:
            if 500 <= exc.code <= 599:  # a 421 greeting closes the channel itself
                await self._quit_after_refusal()
            raise

    def close(self) -> None:
        if self.opened is not None:  # a connection the budget ran out before adopting
            self.opened.transport.close()
            self.opened = None
        super().close()

    async def _open_on_socket(self, timeout: float | None) -> Opened:  # noqa: ASYNC109
        """What aiosmtplib's own `_create_connection` does with the socket the way out
        connected (a proxy's, or one for implicit TLS), with fleet's protocol instead of
        aiosmtplib's: the same errors for the same events."""
        loop = asyncio.get_running_loop()
        tls_context = await self._get_tls_context() if self.use_tls else None
        where = f"{self.hostname} on port {self.port}"
        try:
            transport, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: InStepProtocol(loop=loop),
                    sock=self.sock,
                    ssl=tls_context,
                    server_hostname=self.hostname if tls_context is not None else None,
                    ssl_handshake_timeout=timeout if tls_context is not None else None,
                ),
                timeout=timeout,
            )
        except TimeoutError as exc:
            raise aiosmtplib.SMTPConnectTimeoutError(f"Timed out connecting to {where}") from exc
        except OSError as exc:
            raise aiosmtplib.SMTPConnectError(f"Error connecting to {where}: {exc}") from exc
        if tls_context is not None:
            self.handshake = (
                transport.get_extra_info("ssl_object"),
                transport.get_extra_info("peercert"),
            )
        return Opened(transport, protocol)

    async def _adopt(self, opened: Opened, timeout: float | None) -> aiosmtplib.SMTPResponse:  # noqa: ASYNC109
        """What aiosmtplib's own `_create_connection` does once connected, for a connection
        the way out opened (fleet.egress.Opened): same errors for the same events."""
        self.opened = None
        protocol = opened.protocol
        protocol._connection_lost_callback = self._on_connection_lost
        self.protocol, self.transport = protocol, opened.transport
        where = f"{self.hostname} on port {self.port}"
        try:
            response = await protocol.read_response(timeout=timeout)
        except aiosmtplib.SMTPServerDisconnected as exc:
            raise aiosmtplib.SMTPConnectError(f"Error connecting to {where}: {exc}") from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise aiosmtplib.SMTPConnectTimeoutError(
                "Timed out waiting for server ready message"
            ) from exc
        if response.code != aiosmtplib.SMTPStatus.ready:
            raise aiosmtplib.SMTPConnectResponseError(response.code, response.message)
        return response

    async def _quit_after_refusal(self) -> None:
        began = time.perf_counter()
        try:
            async with asyncio.timeout(self.quit_s):
                reply = await self.execute_command(b"QUIT")
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.greeting_quit = StageResult(
                stage=Stage.quit,
                status=StageStatus.error,
                command="QUIT",
                elapsed_s=round(time.perf_counter() - began, 6),
                detail="no answer to QUIT after the refused greeting",
            )
            return
        self.greeting_quit = StageResult(
            stage=Stage.quit,
            status=StageStatus.ok if reply.code == 221 else StageStatus.failed,
            command="QUIT",
            reply=make_reply(reply.code, reply.message),
            elapsed_s=round(time.perf_counter() - began, 6),
        )


class _Stop(Exception):
    """The conversation cannot go on; the reason is already recorded."""


@dataclass
class _Decision:
    stage: Stage
    classification: Classification
    reply: Reply | None


@dataclass
class _State:
    stages: list[StageResult] = field(default_factory=list)
    decision: _Decision | None = None
    ehlo_before: list[str] = field(default_factory=list)
    ehlo_after: list[str] = field(default_factory=list)
    tls: TlsInfo | None = None
    observed_ip: str | None = None
    texts: list[str] = field(default_factory=list)
    current: tuple[Stage, str | None, float] | None = None
    mail_sent: bool = False
    mechanism: str | None = None
    test_message_id: str | None = None
    queue_id: str | None = None


async def converse(
    spec: ConversationSpec,
    opener: Opener,
    settings: ProbeSettings,
    tls: TlsContexts,
    gate: AuthGate,
    *,
    deadline: float | None = None,
    site_ip: str | None = None,
    label: str = "",
    tokens: TokenBroker | None = None,
    secrets: Secrets | None = None,
) -> Conversation:
    """Have the copier's conversation with its server and say what the server decided.
    The secret it sends is added to `secrets`, the sweep's book that scrubs every result."""
    probe = _Probe(spec, opener, settings, tls, gate, site_ip, label, tokens, secrets)
    return await probe.run(deadline)


class _Probe:
    def __init__(
        self,
        spec: ConversationSpec,
        opener: Opener,
        settings: ProbeSettings,
        tls: TlsContexts,
        gate: AuthGate,
        site_ip: str | None,
        label: str,
        tokens: TokenBroker | None = None,
        book: Secrets | None = None,
    ) -> None:
        self.spec = spec
        self.tokens = tokens
        self.token: Token | None = None
        self.book = book
        self.opener = opener
        self.settings = settings
        self.tls_contexts = tls
        self.gate = gate
        self.site_ip = site_ip
        self.label = label
        self.state = _State()
        self.secrets: tuple[str, ...] = ()  # what this conversation sent, to clean from replies
        self.smtp: _GreetingAwareSMTP | None = None
        self.context: ssl.SSLContext | None = None
        self.context_error: str | None = None
        if spec.security is not Security.none:
            try:
                self.context = tls.get(spec.ca_file, spec.tls_max, spec.tls_verify)
            except (ssl.SSLError, OSError, ValueError) as exc:
                # A ca_file that is not a PEM certificate: a finding, not a crash of the sweep.
                self.context_error = f"cannot load ca_file {spec.ca_file}: {exc}"

    # -- running ------------------------------------------------------------------------

    async def run(self, deadline: float | None) -> Conversation:
        started_at = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            async with asyncio.timeout_at(deadline):
                await self._stages()
        except _Stop:
            pass
        except TimeoutError:
            # The site's own time budget ran out in the middle of a stage.
            current = self.state.current
            if current is not None and self.state.decision is None:
                stage, command, began = current
                self._fault(
                    stage,
                    command,
                    classify_exception(
                        stage, ProbeTimeout("the site's time budget (site_s) ran out")
                    ),
                    time.perf_counter() - began,
                )
        finally:
            await self._quit()
        return self._result(started_at, time.perf_counter() - t0)

    async def _stages(self) -> None:
        spec = self.spec
        if self.context_error is not None:
            self._decide(
                Stage.tls,
                None,
                StageStatus.error,
                own(RuleId.tls_ca_file, detail=self.context_error, ca_file=str(spec.ca_file)),
                None,
                0.0,
            )
            raise _Stop
        connect_s = self.settings.connect_s
        target = f"connect {spec.host}:{spec.port}"
        implicit = spec.security is Security.tls
        sock, elapsed = await self._do(
            Stage.connect,
            target,
            lambda: self.opener(spec.host, spec.port, connect_s, not implicit),
            connect_s + 4,  # room for telling a dead SOCKS5 proxy from a blocked port
        )
        self.state.stages.append(
            StageResult(
                stage=Stage.connect,
                status=StageStatus.ok,
                command=target,
                elapsed_s=round(elapsed, 6),
            )
        )
        self.smtp = _GreetingAwareSMTP(
            hostname=spec.host,
            local_hostname=spec.ehlo_name,
            timeout=self.settings.command_s,
            start_tls=False,
            use_tls=implicit,
            tls_context=self.context if implicit else None,
        )
        self.smtp.quit_s = min(self.settings.command_s, 5.0)
        smtp = self.smtp
        ehlo_command = f"EHLO {spec.ehlo_name}"
        if implicit:
            await self._implicit_tls_and_banner(sock)
        else:
            if isinstance(sock, Opened):
                smtp.opened = sock  # _create_connection adopts it
                await self._exchange(Stage.banner, None, lambda: smtp.connect(port=spec.port))
            else:
                await self._exchange(Stage.banner, None, lambda: smtp.connect(sock=sock))
            ehlo = await self._exchange(Stage.ehlo, ehlo_command, smtp.ehlo)
            self.state.ehlo_before = _capabilities(ehlo)
            if spec.security is Security.starttls:
                await self._starttls()
        if spec.security is not Security.none:
            ehlo = await self._exchange(Stage.ehlo_tls, ehlo_command, smtp.ehlo)
            self.state.ehlo_after = _capabilities(ehlo)
        if spec.username is not None:
            await self._auth()
        await self._exchange(
            Stage.mail, f"MAIL FROM:<{spec.mail_from}>", lambda: smtp.mail(spec.mail_from)
        )
        self.state.mail_sent = True
        await self._exchange(
            Stage.rcpt, f"RCPT TO:<{spec.rcpt_to}>", lambda: smtp.rcpt(spec.rcpt_to)
        )
        if self.settings.send_test:
            await self._send_test()

    async def _implicit_tls_and_banner(self, sock: Any) -> None:
        smtp = self.smtp
        assert smtp is not None  # noqa: S101
        began = time.perf_counter()
        self.state.current = (Stage.tls, "TLS handshake (implicit TLS)", began)
        try:
            async with asyncio.timeout(self.settings.command_s * 2 + 1):
                banner = await smtp.connect(sock=sock)
        except Exception as exc:
            # After the handshake: a refused greeting, none in time, or one that breaks the
            # protocol. The handshake worked: say so, with what it negotiated.
            after = isinstance(exc, aiosmtplib.SMTPConnectResponseError | OutOfStep)
            if after or "ready message" in str(exc):
                self._implicit_tls_worked()
                stage, fault = Stage.banner, classify_exception(Stage.banner, exc)
            else:
                stage, fault = Stage.tls, handshake_fault(exc, self.spec.tls_max)
            fault = await self._unless_proxy_gone(fault, exc)
            self._fault(stage, None, fault, time.perf_counter() - began)
            raise _Stop from None
        self.state.current = None
        self._implicit_tls_worked(began)
        self._ok(Stage.banner, None, banner, None)

    async def _starttls(self) -> None:
        smtp = self.smtp
        assert smtp is not None  # noqa: S101
        if not smtp.supports_extension("starttls"):
            self._decide(
                Stage.starttls,
                "STARTTLS",
                StageStatus.failed,
                own(RuleId.tls_not_offered, endpoint=f"{self.spec.host}:{self.spec.port}"),
                None,
                0.0,
            )
            raise _Stop
        began = time.perf_counter()
        self.state.current = (Stage.starttls, "STARTTLS", began)
        protocol = smtp.protocol  # aiosmtplib drops it when the handshake fails
        try:
            async with asyncio.timeout(self.settings.command_s * 2 + 1):
                reply = await smtp.starttls(
                    tls_context=self.context, server_hostname=self.spec.host
                )
        except Exception as exc:
            elapsed = time.perf_counter() - began
            if _before_handshake(exc):
                fault = await self._unless_proxy_gone(classify_exception(Stage.starttls, exc), exc)
                self._fault(Stage.starttls, "STARTTLS", fault, elapsed)
            else:
                # The server said 220 (in its words) and the handshake itself failed.
                said = protocol.last_reply if isinstance(protocol, InStepProtocol) else None
                self.state.stages.append(
                    StageResult(
                        stage=Stage.starttls,
                        status=StageStatus.ok,
                        command="STARTTLS",
                        reply=make_reply(220, said.message if said else "", self.secrets),
                        detail="the handshake that followed failed",
                    )
                )
                fault = await self._unless_proxy_gone(handshake_fault(exc, self.spec.tls_max), exc)
                self._fault(Stage.tls, None, fault, elapsed)
            raise _Stop from None
        self.state.current = None
        self._ok(Stage.starttls, "STARTTLS", reply, None)
        self._record_tls()
        self.state.stages.append(
            StageResult(
                stage=Stage.tls,
                status=StageStatus.ok,
                command="TLS handshake",
                elapsed_s=round(time.perf_counter() - began, 6),
                detail="timed together with the STARTTLS reply",
            )
        )

    async def _auth(self) -> None:
        spec, smtp, state = self.spec, self.smtp, self.state
        assert smtp is not None  # noqa: S101
        if state.tls is None or state.tls.verified is not True:
            why = (
                "the connection is not encrypted"
                if state.tls is None
                else "the server's certificate was not verified (tls_verify: false)"
            )
            self._decide(
                Stage.auth,
                None,
                StageStatus.failed,
                own(RuleId.fleet_no_password_without_verified_tls, why=why),
                None,
                0.0,
            )
            raise _Stop
        offered = [m.lower() for m in smtp.server_auth_methods]
        mechanism = _choose_mechanism(spec, offered)
        if mechanism is None:
            what = ", ".join(m.upper() for m in offered) or "no AUTH at all"
            self._decide(
                Stage.auth,
                None,
                StageStatus.failed,
                own(
                    RuleId.smtp_auth_not_offered,
                    "oauth" if spec.oauth else "password",
                    offered=what,
                    endpoint=f"{spec.host}:{spec.port}",
                ),
                None,
                0.0,
            )
            raise _Stop
        state.mechanism = mechanism
        command = f"AUTH {mechanism.upper()} ****"
        # Waiting for another conversation's attempt with the same login is part of this
        # stage: if the site's time runs out here, the result must say so (not "ok").
        state.current = (Stage.auth, command, time.perf_counter())
        async with self.gate.lock(spec.identity):
            prior = self.gate.failure(spec.identity)
            if prior is not None:
                self._decide(
                    Stage.auth,
                    command,
                    StageStatus.skipped,
                    not_retried(prior.decision, prior.where),
                    prior.reply,
                    0.0,
                )
                raise _Stop
            try:
                if spec.token_request is not None:
                    secret = await self._fetch_token(spec.token_request, command)
                else:
                    secret = spec.secret.read() if spec.secret is not None else ""
            except SecretError as exc:
                self._decide(
                    Stage.auth,
                    None,
                    StageStatus.error,
                    own(
                        RuleId.fleet_secret_unreadable,
                        detail=str(exc),
                        secret=spec.secret.describe() if spec.secret else "the secret",
                    ),
                    None,
                    0.0,
                )
                raise _Stop from None
            user = spec.username or ""
            if self.book is not None:
                self.book.add_login(user, secret)
            self.secrets = tuple(sorted(login_forms(user, secret), key=len, reverse=True))
            given = self._given_token_source()
            stale = given_token_expired(secret, given) if given is not None else None
            if stale is not None and given is not None:
                self._decide(
                    Stage.auth,
                    None,
                    StageStatus.error,
                    classify_token_failure(stale, given),
                    None,
                    0.0,
                )
                raise _Stop
            self.gate.record_attempt(spec.identity)
            method: Callable[[], Awaitable[aiosmtplib.SMTPResponse]]
            if mechanism == "plain":
                method = lambda: smtp.auth_plain(user, secret)  # noqa: E731
            elif mechanism == "login":
                method = lambda: smtp.auth_login(user, secret)  # noqa: E731
            else:
                method = lambda: smtp.auth_xoauth2(user, secret)  # noqa: E731
            where = self.label or spec.id
            try:
                await self._exchange(Stage.auth, command, method)
            except _Stop:
                decision = state.decision
                if decision is not None and spec.token_request is not None:
                    decision.classification = _oauth_refusal(
                        decision, spec.token_request, self.token, self._context()
                    )
                elif decision is not None and given is not None and decision.reply is not None:
                    decision.classification = (
                        classify_given_token_refusal(decision.reply, self._context(), given)
                        or decision.classification
                    )
                if decision is not None:
                    self.gate.record_failure(
                        spec.identity, _AuthOutcome(decision.classification, decision.reply, where)
                    )
                raise
            except asyncio.CancelledError:
                # The site's budget ran out mid-AUTH: the server may have counted a failure,
                # so nobody tries this login again in this sweep.
                self.gate.record_failure(
                    spec.identity,
                    _AuthOutcome(
                        own(RuleId.fleet_auth_interrupted),
                        None,
                        where,
                    ),
                )
                raise

    def _given_token_source(self) -> str | None:
        """Where a token given to fleet (oauth2 provider: token) comes from; None otherwise."""
        spec = self.spec
        if not spec.oauth or spec.token_request is not None or spec.secret is None:
            return None
        return spec.secret.describe()

    async def _fetch_token(self, request: TokenRequest, command: str) -> str:
        """The XOAUTH2 token from the sweep's broker; a token that cannot be had ends the
        conversation with the provider's reason (nothing is sent to the SMTP server)."""
        broker = self.tokens if self.tokens is not None else TokenBroker()
        began = time.perf_counter()
        outcome = await broker.get(request)
        if isinstance(outcome, TokenFailure):
            self._decide(
                Stage.auth,
                None,
                StageStatus.error,
                classify_token_failure(outcome, request.describe()),
                None,
                time.perf_counter() - began,
            )
            raise _Stop
        self.token = outcome
        return outcome.value

    async def _send_test(self) -> None:
        smtp = self.smtp
        assert smtp is not None  # noqa: S101
        test_id = uuid.uuid4().hex[:16]
        message = EmailMessage()
        message["From"] = self.spec.mail_from
        message["To"] = self.spec.rcpt_to
        label = self.label or self.spec.id
        message["Subject"] = f"[fleet test] scan-to-email check {label} ({test_id})"
        message["Date"] = format_datetime(datetime.now(UTC))
        message["Message-ID"] = make_msgid(idstring=f"fleet-{test_id}", domain="fleet.invalid")
        message["X-Fleet-Test-Id"] = test_id
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(
            "This is a test message from fleet, the scan-to-email checker your IT provider runs.\n"
            f"It checks that {label} can deliver scans by e-mail. Test id: {test_id}\n"
            "You can delete it.\n"
        )
        self.state.test_message_id = test_id
        reply = await self._exchange(
            Stage.data, f"DATA (test message {test_id})", lambda: smtp.data(message.as_bytes())
        )
        self.state.mail_sent = False  # the transaction is complete: nothing to reset
        self.state.queue_id = _queue_id(reply.message)

    async def _quit(self) -> None:
        """RSET (when a transaction is open) then QUIT; best effort, never decisive."""
        smtp = self.smtp
        if smtp is None or not smtp.is_connected:
            if smtp is not None:
                smtp.close()
                if smtp.greeting_quit is not None:
                    self._untime_greeting(smtp.greeting_quit.elapsed_s or 0.0)
                    self.state.stages.append(smtp.greeting_quit)
            return
        broken = next(
            (s for s in self.state.stages if s.status is StageStatus.error and s.reply is None),
            None,
        )
        if broken is not None:
            # A server that stopped answering (or talks garbage) would only make QUIT wait
            # for another timeout: hang up instead.
            smtp.close()
            self.state.stages.append(
                StageResult(
                    stage=Stage.quit,
                    status=StageStatus.skipped,
                    detail=f"closed without QUIT after the {broken.stage.value} stage broke",
                )
            )
            return
        began = time.perf_counter()
        commands = "RSET; QUIT" if self.state.mail_sent else "QUIT"
        decision = self.state.decision
        # A login refused with 334 leaves the server waiting for another AUTH line, which a
        # QUIT would be taken for: cancel the exchange first (RFC 4954 4: `*`, then 501).
        mid_auth = (
            decision is not None
            and decision.stage is Stage.auth
            and decision.reply is not None
            and decision.reply.code == 334
        )
        if mid_auth:
            commands = "*; QUIT"
        try:
            async with asyncio.timeout(min(self.settings.command_s, 5.0)):
                if mid_auth:
                    await smtp.execute_command(b"*")
                if self.state.mail_sent:
                    try:
                        await smtp.rset()
                    except aiosmtplib.SMTPResponseException as exc:
                        if self._out_of_step_at_the_end(exc, "RSET", began):
                            return
                reply = await smtp.quit()
            self.state.stages.append(
                StageResult(
                    stage=Stage.quit,
                    status=StageStatus.ok,
                    command=commands,
                    reply=make_reply(reply.code, reply.message, self.secrets),
                    elapsed_s=round(time.perf_counter() - began, 6),
                )
            )
        except (Exception, asyncio.CancelledError) as exc:
            if isinstance(exc, aiosmtplib.SMTPResponseException):
                if self._out_of_step_at_the_end(exc, "QUIT", began):
                    return
            fault = classify_exception(Stage.quit, exc)
            self.state.stages.append(
                StageResult(
                    stage=Stage.quit,
                    status=StageStatus.error if fault.reply is None else StageStatus.failed,
                    command=commands,
                    reply=None
                    if fault.reply is None
                    else make_reply(fault.reply.code, fault.reply.text, self.secrets),
                    elapsed_s=round(time.perf_counter() - began, 6),
                    detail=fault.detail or None,
                )
            )
            if isinstance(exc, asyncio.CancelledError):
                raise  # after the finally below has closed the connection
        finally:
            smtp.close()

    def _untime_greeting(self, quit_s: float) -> None:
        """A refused greeting's QUIT is sent inside aiosmtplib's connect, so the banner's
        clock ran through it: give the wait back to the QUIT's row."""
        stages = self.state.stages
        for i in range(len(stages) - 1, -1, -1):
            if stages[i].stage is Stage.banner and stages[i].elapsed_s is not None:
                elapsed = max(0.0, (stages[i].elapsed_s or 0.0) - quit_s)
                stages[i] = stages[i].model_copy(update={"elapsed_s": round(elapsed, 6)})
                return

    def _out_of_step_at_the_end(
        self, exc: aiosmtplib.SMTPResponseException, command: str, began: float
    ) -> bool:
        """After a conversation that went well, a refused RSET or QUIT (no server in step
        refuses them), or a reply too many, means the replies were one behind the commands:
        the 250 read as the recipient's may not have been. Decide it as a protocol error.
        Not a 421 (RFC 5321 3.8: any command may be answered so by a server shutting down),
        nor a refusal of the command itself (500-502, 504: an RSET the server lacks)."""
        if self.state.decision is not None:
            return False
        if isinstance(exc, OutOfStep):
            detail = exc.message
        elif exc.code >= 400 and exc.code not in _ITS_OWN_ANSWER:
            said = make_reply(exc.code, exc.message, self.secrets)
            detail = (
                f"the server answered {command} with '{said.code} {said.text[:200]}' after "
                "accepting the recipient: its replies are out of step with the commands, "
                "so the acceptance cannot be trusted"
            )
        else:
            return False
        commands = "RSET; QUIT" if self.state.mail_sent else "QUIT"
        fault = Fault(StageStatus.error, Category.protocol_error, detail)
        self._fault(Stage.quit, commands, fault, time.perf_counter() - began)
        return True

    # -- recording ------------------------------------------------------------------------

    async def _do(
        self,
        stage: Stage,
        command: str | None,
        action: Callable[[], Awaitable[T]],
        limit_s: float | None = None,
    ) -> tuple[T, float]:
        """Run one stage; on any fault, record it and stop. A stage without `limit_s` is an
        aiosmtplib command, which already waits at most `command_s` for its reply: a second
        timer per command would only cost CPU on a sweep of 20,000 conversations."""
        began = time.perf_counter()
        self.state.current = (stage, command, began)
        try:
            if limit_s is None:
                result = await action()
            else:
                async with asyncio.timeout(limit_s):
                    result = await action()
        except Exception as exc:
            fault = await self._unless_proxy_gone(classify_exception(stage, exc), exc)
            self._fault(stage, command, fault, time.perf_counter() - began)
            raise _Stop from None
        self.state.current = None
        return result, time.perf_counter() - began

    async def _unless_proxy_gone(self, fault: Fault, exc: BaseException) -> Fault:
        """A conversation cut off through a SOCKS5 proxy that no longer answers is the
        site's egress failing (a dropped `ssh -D` tunnel), not the server hanging up."""
        if not isinstance(self.opener, ProxiedOpener) or not connection_cut(exc):
            return fault
        gone = await self.opener.gone(min(self.settings.connect_s, 3.0))
        return fault if gone is None else classify_exception(Stage.connect, gone)

    async def _exchange(
        self,
        stage: Stage,
        command: str | None,
        action: Callable[[], Awaitable[aiosmtplib.SMTPResponse]],
    ) -> aiosmtplib.SMTPResponse:
        """A command and its positive reply, recorded as one stage."""
        response, elapsed = await self._do(stage, command, action)
        self._ok(stage, command, response, elapsed)
        return response

    def _ok(
        self,
        stage: Stage,
        command: str | None,
        response: aiosmtplib.SMTPResponse,
        elapsed: float | None,
    ) -> None:
        reply = make_reply(response.code, response.message, self.secrets)
        if stage in _GREETINGS:  # where servers echo the client's IP; rejections are seen in _fault
            self._observe(reply.text)
        self.state.stages.append(
            StageResult(
                stage=stage,
                status=StageStatus.ok,
                command=command,
                reply=reply,
                elapsed_s=None if elapsed is None else round(elapsed, 6),
                detail=None,
            )
        )

    def _fault(self, stage: Stage, command: str | None, fault: Fault, elapsed: float) -> None:
        if fault.reply is not None and self.secrets:
            fault = dataclasses.replace(
                fault, reply=make_reply(fault.reply.code, fault.reply.text, self.secrets)
            )
        if fault.reply is not None:
            self._observe(fault.reply.text)
            classification = classify_reply(stage, fault.reply, self._context())
            self._decide(stage, command, StageStatus.failed, classification, fault.reply, elapsed)
            return
        classification = Classification(
            fault.category,
            fault.detail,
            fault_remedy(
                fault,
                host=self.spec.host,
                port=self.spec.port,
                tls_max=self.spec.tls_max,
                implicit_tls=self.spec.security is Security.tls,
                stage=stage,
            ),
            fault.rule,
        )
        self._decide(
            stage, command, fault.status, classification, None, elapsed, detail=fault.detail
        )

    def _decide(
        self,
        stage: Stage,
        command: str | None,
        status: StageStatus,
        classification: Classification,
        reply: Reply | None,
        elapsed: float,
        detail: str | None = None,
    ) -> None:
        self.state.current = None
        self.state.stages.append(
            StageResult(
                stage=stage,
                status=status,
                command=command,
                reply=reply,
                elapsed_s=round(elapsed, 6),
                detail=detail or (classification.finding if reply is None else None),
            )
        )
        if self.state.decision is None:
            self.state.decision = _Decision(stage, classification, reply)

    def _observe(self, text: str) -> None:
        self.state.texts.append(text)
        if self.state.observed_ip is None:
            echoed = echoed_client_ip(text)
            if echoed is not None and on_local_network(echoed):
                # An on-site relay's (or the ISP NAT's) view, not the public IP receivers see,
                # unless the site is declared on such a network itself.
                if self.site_ip is None or not on_local_network(self.site_ip):
                    echoed = None
            self.state.observed_ip = echoed

    def _implicit_tls_worked(self, began: float | None = None) -> None:
        """Record the implicit TLS handshake that worked, with what it negotiated; timed
        (from `began`) together with the greeting when that came too."""
        self._record_tls()
        self.state.stages.append(
            StageResult(
                stage=Stage.tls,
                status=StageStatus.ok,
                command="TLS handshake (implicit TLS)",
                elapsed_s=None if began is None else round(time.perf_counter() - began, 6),
                detail=None if began is None else "timed together with the greeting that followed",
            )
        )

    def _record_tls(self) -> None:
        smtp = self.smtp
        assert smtp is not None  # noqa: S101
        if smtp.is_connected:
            ssl_object, peercert = (
                smtp.get_transport_info("ssl_object"),
                smtp.get_transport_info("peercert"),
            )
        elif smtp.handshake is not None:  # the connection is gone; the handshake was kept
            ssl_object, peercert = smtp.handshake
        else:
            return
        if ssl_object is None:
            return
        self.state.tls = self.tls_contexts.details(
            ssl_object, self.spec.tls_verify, self.spec.tls_max, peercert
        )

    def _context(self) -> Context:
        spec = self.spec
        return Context(
            mode=spec.mode,
            host=spec.host,
            port=spec.port,
            authenticated=spec.username is not None,
            ip=self.state.observed_ip or self.site_ip,
            username=spec.username,
            sender=spec.mail_from,
            tls_max=spec.tls_max,
            provider=provider_of(spec.host, self.state.texts),
            ehlo_name=spec.ehlo_name,
        )

    def _result(self, started_at: datetime, elapsed: float) -> Conversation:
        spec, state = self.spec, self.state
        decision = state.decision
        rule: RuleId | None
        if decision is None:
            category, stage, reply, rule = Category.ok, None, None, None
            finding = "the server accepted the sender and the recipient" + (
                " and the test message" if self.settings.send_test else ""
            )
            if spec.token_request is not None:
                rule = RuleId.oauth_proven
                finding = (
                    f"OAuth works: XOAUTH2 as {spec.username} with a token from "
                    f"{spec.token_request.describe()} was accepted, then " + finding
                )
            remediation = None
        else:
            category = decision.classification.category
            stage, reply, rule = decision.stage, decision.reply, decision.classification.rule
            finding = decision.classification.finding
            remediation = decision.classification.remediation
        tls = state.tls
        if (
            tls is None
            and spec.security is not Security.none
            and stage in (Stage.tls, Stage.starttls)
        ):
            failed = next((s for s in state.stages if s.stage is stage), None)
            tls = TlsInfo(
                verified=False if rule == RuleId.tls_certificate else None,
                verify_error=failed.detail if failed is not None else None,
                capped_at=spec.tls_max,
            )
        return Conversation(
            id=spec.id,
            host=spec.host,
            port=spec.port,
            security=spec.security,
            mode=spec.mode,
            auth_mechanism=state.mechanism,
            started_at=started_at,
            elapsed_s=round(elapsed, 6),
            stages=state.stages,
            ehlo_before_tls=state.ehlo_before,
            ehlo_after_tls=state.ehlo_after,
            tls=tls,
            observed_ip=state.observed_ip,
            category=category,
            rule=rule,
            failed_stage=stage,
            reply=reply,
            finding=finding,
            remediation=remediation,
            test_message_id=state.test_message_id,
            queue_id=state.queue_id,
        )


def _oauth_refusal(
    decision: _Decision, request: TokenRequest, token: Token | None, context: Context
) -> Classification:
    """A refused XOAUTH2 login, read with what fleet knows about its token."""
    if decision.stage is not Stage.auth or decision.reply is None:
        return decision.classification
    refined = classify_oauth_refusal(
        decision.reply,
        context,
        roles=token.roles if token is not None else None,
        client_id=request.client_id,
        tenant_id=request.tenant_id,
    )
    return refined or decision.classification


def _before_handshake(exc: BaseException) -> bool:
    """Did STARTTLS fail before the TLS handshake began (no 220, or no reply at all)?"""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return True
    if isinstance(exc, aiosmtplib.SMTPReadTimeoutError):
        return True
    return isinstance(exc, aiosmtplib.SMTPServerDisconnected) and "upgrading" not in str(exc)


def _choose_mechanism(spec: ConversationSpec, offered: list[str]) -> str | None:
    if spec.mechanism is not None:
        return spec.mechanism if spec.mechanism in offered else None
    if spec.oauth:
        return "xoauth2" if "xoauth2" in offered else None
    for mechanism in ("plain", "login"):
        if mechanism in offered:
            return mechanism
    return None


def _capabilities(response: aiosmtplib.SMTPResponse) -> list[str]:
    lines = clean_text(response.message).splitlines()
    return [line.strip() for line in lines[1:] if line.strip()]


_GREETINGS = frozenset({Stage.banner, Stage.ehlo, Stage.ehlo_tls})


_QUEUE_ID_PATTERNS = (
    re.compile(r"queued as ([A-Za-z0-9]+)", re.IGNORECASE),
    re.compile(r"InternalId=(\d+)"),
    re.compile(r"\bid=([A-Za-z0-9-]+)"),
    re.compile(r"<([^>\s]+@[^>\s]+)>"),
)


def _queue_id(text: str) -> str | None:
    for pattern in _QUEUE_ID_PATTERNS:
        match = pattern.search(text)
        if match:
            return match.group(1)
    return text.strip()[:200] or None
