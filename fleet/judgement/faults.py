"""Exceptions from the network -> how the stage ended and in which category (the one place)."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import socket
import ssl
from dataclasses import dataclass

import aiosmtplib

from fleet.errors import EgressError, ProbeTimeout
from fleet.judgement.evidence import clean_text, make_reply
from fleet.judgement.rule_ids import EGRESS_RULES, RuleId
from fleet.results import Category, Reply, Stage, StageStatus


@dataclass(frozen=True)
class Fault:
    """What a network exception means: how the stage ended, and in which category."""

    status: StageStatus
    category: Category
    detail: str
    reply: Reply | None = None
    rule: RuleId | None = None


# What each failure of the way out means: only the way out (egress_unreachable), or a fact
# about the mail host seen from the site (unreachable, timeout), or our resolver's trouble.
EGRESS_CATEGORIES: dict[RuleId, Category] = {
    RuleId.egress_host_does_not_resolve: Category.unreachable,
    RuleId.egress_resolver_failed: Category.resolver_failure,
    RuleId.egress_no_address_for_bind: Category.unreachable,
    RuleId.egress_bind_address_not_here: Category.egress_unreachable,
    RuleId.egress_proxy_silent: Category.egress_unreachable,
    RuleId.egress_no_connection_from_site: Category.timeout,
    RuleId.egress_proxy_unreachable: Category.egress_unreachable,
    RuleId.egress_destination_refused: Category.unreachable,
    RuleId.egress_proxy_failed: Category.egress_unreachable,
    RuleId.egress_proxy_error: Category.egress_unreachable,
}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        # `raise ... from None` means the context is not part of the story
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return seen


_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED: "connection refused",
    errno.EHOSTUNREACH: "no route to host",
    errno.ENETUNREACH: "network unreachable",
    errno.ECONNRESET: "connection reset",
    errno.EADDRNOTAVAIL: "the source address is not available on this machine",
}


def handshake_fault(exc: BaseException, tls_max: str | None) -> Fault:
    """A failed TLS handshake; for a copier capped at TLS 1.0/1.1 (`tls_max`), a server that
    just hangs up is the classic sign of a TLS 1.2+ only endpoint (many send no alert)."""
    fault = classify_exception(Stage.tls, exc)
    if (
        tls_max in ("1.0", "1.1")
        and fault.category is Category.tls_failure
        and fault.rule in (None, RuleId.tls_error)
    ):
        return dataclasses.replace(
            fault,
            rule=RuleId.tls_version,
            detail=f"{fault.detail}: the copier offers TLS {tls_max} at most, and servers "
            "that require TLS 1.2 or newer end the handshake like this",
        )
    return fault


def classify_exception(stage: Stage, exc: BaseException) -> Fault:
    """The one place that maps exceptions to categories. Timeouts are checked first:
    aiosmtplib's SMTPConnectTimeoutError is both a timeout and a connect error."""
    if isinstance(exc, EgressError):  # the egress said what happened; this says what it means
        rule = EGRESS_RULES[exc.failure]
        return Fault(StageStatus.error, EGRESS_CATEGORIES[rule], exc.detail, rule=rule)
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError | asyncio.TimeoutError | ProbeTimeout) for e in chain):
        return Fault(StageStatus.error, Category.timeout, _timeout_detail(stage, exc))
    for e in chain:
        if isinstance(e, ssl.SSLCertVerificationError):
            return Fault(
                StageStatus.error,
                Category.tls_failure,
                "certificate not trusted: "
                + clean_text(str(_ssl_attr(e, "verify_message") or _ssl_attr(e, "reason") or e)),
                rule=RuleId.tls_certificate,
            )
    for e in chain:
        if isinstance(e, ssl.SSLError):
            rule, detail = _ssl_detail(e)
            return Fault(StageStatus.error, Category.tls_failure, detail, rule=rule)
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code < 0:
        return Fault(
            StageStatus.error,
            Category.protocol_error,
            f"malformed reply: {clean_text(exc.message)[:300]}",
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        reply = make_reply(exc.code, exc.message)
        return Fault(StageStatus.failed, Category.protocol_error, "", reply)
    for e in chain:
        if isinstance(e, socket.gaierror):
            if e.errno in (socket.EAI_AGAIN, socket.EAI_FAIL):  # the resolver, not the name
                return Fault(
                    StageStatus.error,
                    Category.resolver_failure,
                    f"name lookup failed: {e.strerror}",
                )
            return Fault(
                StageStatus.error, Category.unreachable, f"host name does not resolve: {e.strerror}"
            )
    for e in chain:
        if isinstance(e, OSError) and e.errno in _UNREACHABLE_ERRNOS:
            what = _UNREACHABLE_ERRNOS[e.errno]
            category = Category.unreachable
            if e.errno == errno.ECONNRESET and stage in (Stage.tls, Stage.starttls):
                return Fault(
                    StageStatus.error,
                    Category.tls_failure,
                    "connection reset during the TLS handshake",
                )
            if stage not in (Stage.connect, Stage.banner) and e.errno == errno.ECONNRESET:
                category = Category.protocol_error
            return Fault(StageStatus.error, category, what)
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected | ConnectionError | EOFError):
        if stage in (Stage.tls, Stage.starttls):
            return Fault(
                StageStatus.error,
                Category.tls_failure,
                "connection closed during the TLS handshake",
            )
        if stage is Stage.banner:
            return Fault(
                StageStatus.error, Category.unreachable, "connection closed before the greeting"
            )
        return Fault(
            StageStatus.error,
            Category.protocol_error,
            f"the server closed the connection at {stage.value}",
        )
    if isinstance(exc, aiosmtplib.SMTPException | UnicodeError | ValueError | OSError):
        return Fault(
            StageStatus.error,
            Category.protocol_error,
            clean_text(str(exc))[:300] or type(exc).__name__,
        )
    return Fault(
        StageStatus.error,
        Category.protocol_error,
        f"{type(exc).__name__}: {clean_text(str(exc))[:300]}",
    )


def connection_cut(exc: BaseException) -> bool:
    """Did the connection end under the conversation (closed, reset, broken), rather than a
    reply or a timeout? Through a proxy, that may be the proxy's doing, not the server's."""
    chain = _chain(exc)
    if any(isinstance(e, TimeoutError | ProbeTimeout | EgressError) for e in chain):
        return False
    return any(
        isinstance(e, aiosmtplib.SMTPServerDisconnected | ConnectionError | EOFError)
        or (isinstance(e, OSError) and e.errno in (errno.ECONNRESET, errno.EPIPE))
        for e in chain
    )


def _timeout_detail(stage: Stage, exc: BaseException) -> str:
    if isinstance(exc, ProbeTimeout) and str(exc):
        return str(exc)
    if stage is Stage.connect:
        return "no answer to the connection attempt (a firewall dropping port traffic?)"
    if stage is Stage.banner:
        return "connected, but the server sent no complete greeting in time"
    if stage in (Stage.tls, Stage.starttls):
        return "the TLS handshake did not finish in time"
    return f"no complete reply to {stage.value} in time"


def _ssl_detail(exc: ssl.SSLError) -> tuple[RuleId, str]:
    """(rule, detail) for a TLS failure that is not a certificate problem."""
    # OpenSSL names reasons in capitals with underscores ("WRONG_VERSION_NUMBER").
    why = _ssl_attr(exc, "reason")
    reason = f"{why or ''} {exc}".lower().replace("_", " ")
    said = clean_text(str(why or exc))[:300]
    if any(w in reason for w in ("wrong version number", "record layer failure", "packet length")):
        return RuleId.tls_not_tls, "the server did not answer with TLS (plaintext or garbage?)"
    if any(
        w in reason for w in ("unsupported protocol", "protocol version", "no protocols available")
    ):
        return RuleId.tls_version, f"no TLS version in common with the server ({said})"
    if "handshake failure" in reason or "no shared cipher" in reason:
        return RuleId.tls_cipher, f"TLS handshake failed: no cipher in common ({said})"
    return RuleId.tls_error, f"TLS error: {said}"


def _ssl_attr(exc: ssl.SSLError, name: str) -> object:
    """`reason` and `verify_message` are set by OpenSSL's errors, not by an SSLError that
    Python code raised itself."""
    return getattr(exc, name, None)
