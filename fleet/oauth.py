"""OAuth access tokens for SMTP XOAUTH2, fetched by fleet itself.

Microsoft: MSAL for Python, client credentials (an Entra ID app registration with the
Exchange `SMTP.SendAsApp` permission), scope https://outlook.office365.com/.default.
Google: google-auth, a service account with domain-wide delegation impersonating the
mailbox, scope https://mail.google.com/.

A token is fetched once per (app, tenant) (Google: per service account and mailbox) per
sweep and kept only in memory for that sweep; it is registered with the scrubber the moment
it arrives, with the XOAUTH2 forms it travels in, so no output can show it. A token that
cannot be obtained is a finding with the provider's own error code (AADSTS...), not a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from fleet.credentials import SecretSource
from fleet.errors import SecretError
from fleet.once import Once

if TYPE_CHECKING:
    from fleet.inventory import OAuth2

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"  # --verify-delivery through Graph
GOOGLE_SCOPE = "https://mail.google.com/"
SEND_AS_APP = "SMTP.SendAsApp"
TOKEN_TIMEOUT_S = 30.0

# Their DEBUG logs would quote requests and responses; fleet's own log says what matters.
for _name in ("msal", "google.auth", "google.oauth2", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)


class TokenRequest(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    """How to get one token; holds no secret itself (only where the app's credential lives)."""

    provider: str  # microsoft | google
    client_id: str | None = None
    tenant_id: str | None = None
    authority: str = MICROSOFT_AUTHORITY
    client_secret: SecretSource | None = None
    certificate_file: str | None = None
    private_key_file: str | None = None
    service_account_file: str | None = None
    subject: str | None = None  # google: the mailbox the service account acts as
    ca_file: str | None = None  # CA for the token endpoint, when not the system's
    scope: str = MICROSOFT_SCOPE  # microsoft: Exchange (SMTP XOAUTH2), or GRAPH_SCOPE

    @property
    def key(self) -> tuple[object, ...]:
        """Requests that get the same token: one app in one tenant (Google: one mailbox)."""
        if self.provider == "google":
            return ("google", self.service_account_file, (self.subject or "").lower())
        return (
            "microsoft",
            self.authority.lower(),
            (self.tenant_id or "").lower(),
            (self.client_id or "").lower(),
            self.client_secret,
            self.certificate_file,
            self.scope,
        )

    def describe(self) -> str:
        if self.provider == "google":
            return f"Google service account ({self.service_account_file}) acting as {self.subject}"
        return f"Entra ID app {self.client_id} in tenant {self.tenant_id}"


def token_request(oauth2: OAuth2, username: str, scope: str = MICROSOFT_SCOPE) -> TokenRequest:
    """How fleet fetches `username`'s token from this app: Microsoft's client credentials
    for `scope`, or a Google service account acting as the mailbox. One builder for the
    SMTP login, IMAP and Graph, so the three never disagree on which app a token is from."""
    return TokenRequest(
        provider=oauth2.kind,
        client_id=oauth2.client_id,
        tenant_id=oauth2.tenant_id,
        authority=oauth2.authority or MICROSOFT_AUTHORITY,
        client_secret=oauth2.client_secret,
        certificate_file=oauth2.certificate_file,
        private_key_file=oauth2.private_key_file,
        service_account_file=oauth2.service_account_file,
        subject=username if oauth2.kind == "google" else None,
        ca_file=oauth2.ca_file,
        scope=scope,
    )


@dataclass(frozen=True)
class Token:
    """An access token and what fleet may say about it (never the token itself)."""

    value: str = field(repr=False)
    roles: tuple[str, ...] | None = None  # Microsoft app roles in the token; None: unreadable
    expires_at: datetime | None = None


class TokenFailureReason(StrEnum):
    """Why no token could be had; each has its rule id in fleet.classify (`OAUTH_TOKEN_RULES`)."""

    credential_unreadable = "credential_unreadable"
    unreachable = "unreachable"
    bad_certificate = "bad_certificate"
    certificate_expired = "certificate_expired"
    wrong_tenant = "wrong_tenant"
    wrong_client = "wrong_client"
    bad_secret = "bad_secret"  # noqa: S105
    secret_expired = "secret_expired"  # noqa: S105
    consent_missing = "consent_missing"
    refused = "refused"
    timeout = "timeout"
    bad_key_file = "bad_key_file"
    delegation_missing = "delegation_missing"
    wrong_mailbox = "wrong_mailbox"
    bad_key = "bad_key"
    expired = "expired"  # a token given to fleet (provider: token) whose exp has passed


class TokenFailure(NamedTuple):  # not a frozen dataclass: see fleet/plan.py
    """Why no token could be had, in the provider's words, and what to do about it."""

    reason: TokenFailureReason
    finding: str
    remediation: str
    code: str | None = None  # the provider's error code, e.g. AADSTS7000222


class TokenBroker:
    """One per sweep: each distinct token is fetched once, by the first conversation that
    needs it; the others wait for that fetch and share its outcome (token or failure)."""

    def __init__(self, timeout_s: float = TOKEN_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._fetches: Once[tuple[object, ...], Token | TokenFailure] = Once()
        self.fetches = 0  # how many times a provider was asked (tests: once per app)

    async def get(self, request: TokenRequest) -> Token | TokenFailure:
        if _expiring(self._fetches.finished(request.key)):
            # a sweep longer than the token's life (about an hour) gets a new one
            self._fetches.forget(request.key)
        if request.key not in self._fetches:
            self.fetches += 1
        # shielded: a conversation cut off by its site's budget must not cancel the fetch
        # that other conversations are waiting for
        return await self._fetches.get(request.key, lambda: self._fetch(request))

    async def _fetch(self, request: TokenRequest) -> Token | TokenFailure:
        try:
            # The library's own HTTP timeout fires first; this one is the backstop (MSAL
            # makes two requests, the discovery and the token).
            async with asyncio.timeout(2 * self.timeout_s + 1):
                return await _in_daemon_thread(acquire, request, self.timeout_s)
        except TimeoutError:
            return _timed_out(request, self.timeout_s)


T = TypeVar("T")


async def _in_daemon_thread(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking call in a thread of its own that does not keep the process alive: the
    event loop's executor would make an interrupted sweep wait, at exit, for an HTTP request
    nobody needs any more (asyncio.run joins its threads)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: T | None, error: BaseException | None) -> None:
        if future.done():
            return  # cancelled meanwhile
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(outcome)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome = function(*args)
        except BaseException as exc:  # handed to the waiting coroutine
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, None, exc)
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, outcome, None)

    threading.Thread(target=run, name="fleet-oauth-token", daemon=True).start()
    return await future


# A token with less than this left is not handed out: the conversation that gets it still
# has to connect, say EHLO and STARTTLS before the server checks it.
EXPIRY_MARGIN_S = 300


def _expiring(outcome: Token | TokenFailure | None) -> bool:
    return (
        isinstance(outcome, Token)
        and outcome.expires_at is not None
        and (outcome.expires_at - datetime.now(UTC)).total_seconds() < EXPIRY_MARGIN_S
    )


def acquire(request: TokenRequest, timeout_s: float = TOKEN_TIMEOUT_S) -> Token | TokenFailure:
    """Fetch a token (blocking: the providers' libraries are synchronous)."""
    try:
        if request.provider == "google":
            return _google(request, timeout_s)
        return _microsoft(request, timeout_s)
    except SecretError as exc:
        return TokenFailure(
            TokenFailureReason.credential_unreadable,
            f"could not read the app's credential: {exc}",
            "Provide the client secret, certificate or key file named in the device's "
            "oauth2 settings on the machine that sweeps.",
        )


# ---- Microsoft ----------------------------------------------------------------------------


def _session(ca_file: str | None, timeout_s: float | None = None) -> Any:
    """An HTTP session for the token endpoint: the system's CAs, or `ca_file`. (requests
    lets REQUESTS_CA_BUNDLE override a session's own `verify`: given per request, it holds.)"""
    import requests

    class Session(requests.Session):
        def request(self, method: Any, url: Any, *args: Any, **kwargs: Any) -> Any:
            if ca_file is not None:
                kwargs["verify"] = ca_file
            if timeout_s is not None:
                kwargs["timeout"] = timeout_s
            return super().request(method, url, *args, **kwargs)

    return Session()


def _microsoft(request: TokenRequest, timeout_s: float) -> Token | TokenFailure:
    import msal
    import requests

    credential: str | dict[str, str]
    if request.certificate_file is not None:
        loaded = _certificate_credential(request)
        if isinstance(loaded, TokenFailure):
            return loaded
        credential = loaded
    else:
        assert request.client_secret is not None  # noqa: S101 - the inventory requires one
        credential = request.client_secret.read()  # the sweep's book knows it (secret_sources)
    authority = f"{request.authority.rstrip('/')}/{request.tenant_id}"
    try:
        app = msal.ConfidentialClientApplication(
            request.client_id,
            client_credential=credential,
            authority=authority,
            http_client=_session(request.ca_file),
            # The authority is the one the inventory names: never ask another host about it.
            instance_discovery=False,
            timeout=timeout_s,
        )
        result = app.acquire_token_for_client(scopes=[request.scope])
    except requests.Timeout:
        return _timed_out(request, timeout_s)
    except requests.RequestException as exc:
        return TokenFailure(
            TokenFailureReason.unreachable,
            f"cannot reach {request.authority}: {_short(exc)}",
            _unreachable_remedy(request),
        )
    except msal.exceptions.MsalError as exc:
        # MSAL raises this for any HTTP status >= 500, whatever the body: an Entra outage,
        # a blocking proxy's 502/503 page
        return TokenFailure(
            TokenFailureReason.unreachable,
            f"{request.authority} answered {_short(exc)}",
            _unreachable_remedy(request),
        )
    except ValueError as exc:
        # MSAL reports an unknown tenant from its OpenID discovery as a ValueError whose
        # cause quotes the server's JSON (AADSTS90002).
        chain: list[BaseException] = []
        current: BaseException | None = exc
        while current is not None and len(chain) < 5:
            chain.append(current)
            current = current.__cause__ or current.__context__
        quoted = next((str(e) for e in chain if "AADSTS" in str(e)), str(exc))
        return aad_failure(request, _json_description(quoted))
    if "access_token" in result:
        token = str(result["access_token"])
        # the probe adds the token to the sweep's book before it is sent
        expires_in = result.get("expires_in")
        expires_at = (
            datetime.fromtimestamp(datetime.now(UTC).timestamp() + float(expires_in), UTC)
            if isinstance(expires_in, int | float)
            else None
        )
        return Token(token, _roles(token), expires_at)
    return aad_failure(request, f"{result.get('error', '')}: {result.get('error_description', '')}")


def _certificate_credential(request: TokenRequest) -> dict[str, str] | TokenFailure:
    """MSAL's certificate credential, after checking locally that the certificate is valid
    today (an expired one gets its date in the finding without asking Microsoft)."""
    from cryptography import x509

    path = request.certificate_file or ""
    cert_pem = SecretSource(file=path).read()
    key_pem = (
        SecretSource(file=request.private_key_file).read() if request.private_key_file else cert_pem
    )
    try:
        certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        return TokenFailure(
            TokenFailureReason.bad_certificate,
            f"{path} is not a PEM certificate",
            "Give certificate_file as the PEM certificate uploaded to the app registration "
            "(and private_key_file for its key, unless the same file holds it).",
        )
    if "PRIVATE KEY-----" not in key_pem:
        return TokenFailure(
            TokenFailureReason.bad_certificate,
            f"no private key in {request.private_key_file or path}",
            "Give the certificate's private key in PEM, in certificate_file or private_key_file.",
        )
    expires = certificate.not_valid_after_utc
    if expires < datetime.now(UTC):
        return TokenFailure(
            TokenFailureReason.certificate_expired,
            f"the app's certificate expired on {expires.date().isoformat()}",
            f"Create a new certificate, upload it to the app registration {request.client_id} "
            "(Certificates & secrets > Certificates) and point certificate_file at it.",
        )
    # the key's file is in the sweep's book (Inventory.secret_sources)
    begin = cert_pem.index("-----BEGIN CERTIFICATE-----")
    end = cert_pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return {"private_key": key_pem, "public_certificate": cert_pem[begin:end]}


def _roles(token: str) -> tuple[str, ...] | None:
    """The app roles an Entra token carries (read, not verified: Exchange verifies it)."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    roles = claims.get("roles", [])
    return tuple(str(r) for r in roles) if isinstance(roles, list) else None


def given_token_expired(token: str, source: str) -> TokenFailure | None:
    """A token given to fleet (provider: token) whose `exp` has passed: sending it would only
    spend the login's one attempt. Read, not verified (the server verifies it); a token that
    is not a JWT (Google's are opaque) has no date to read."""
    import jwt

    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        return None
    try:
        expired = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None  # a date no calendar has: the server will say what it makes of it
    if expired > datetime.now(UTC):
        return None
    return TokenFailure(
        TokenFailureReason.expired,
        f"the token there expired on {expired:%Y-%m-%d %H:%M} UTC (its exp claim), "
        "so it was not sent",
        f"Put a fresh token in {source} before each sweep (fleet sends a given token as it "
        "is and cannot renew it), or let fleet fetch its own: oauth2 provider microsoft or "
        "google.",
    )


_AADSTS_RE = re.compile(r"AADSTS(\d+)")
# Entra quotes a certificate's validity in AADSTS700027: "Found key 'Start=..., End=...'"
_KEY_END_RE = re.compile(r"End=([0-9/:\- T]+?)[',\]]")


def aad_failure(request: TokenRequest, text: str) -> TokenFailure:
    """The token endpoint's refusal, read by its AADSTS code."""
    match = _AADSTS_RE.search(text)
    code = f"AADSTS{match.group(1)}" if match else None
    said = _said(text)
    tenant, client = request.tenant_id, request.client_id
    consent = f"{request.authority.rstrip('/')}/{tenant}/adminconsent?client_id={client}"
    number = match.group(1) if match else ""
    if number in ("90002", "900023", "90072", "900022"):
        return TokenFailure(
            TokenFailureReason.wrong_tenant,
            f"Microsoft does not know the tenant {tenant} ({code})",
            f"tenant_id {tenant} is not the client's Microsoft Entra tenant: copy the "
            "Directory (tenant) ID from the client's Entra admin center (Overview).",
            code,
        )
    if number in ("700016",):
        return TokenFailure(
            TokenFailureReason.wrong_client,
            f"the app {client} is not known in tenant {tenant} ({code}): a wrong client_id, "
            "or the app was never consented in this tenant",
            f"Check client_id (the app registration's Application (client) ID). For a "
            f"multi-tenant app, a Global Administrator of the client's tenant must consent "
            f"once: {consent}",
            code,
        )
    if number in ("7000215", "7000216", "50012"):
        return TokenFailure(
            TokenFailureReason.bad_secret,
            f"the client secret of app {client} is wrong ({code})",
            "Put the secret's Value (not its Secret ID) in the variable or file named by "
            "client_secret_env/client_secret_file; create a new one under App registrations > "
            "Certificates & secrets if it is lost.",
            code,
        )
    if number in ("7000222",):
        expiry = _expiry(text)
        return TokenFailure(
            TokenFailureReason.secret_expired,
            f"the client secret of app {client} has expired"
            + (f" (on {expiry})" if expiry else "")
            + f" ({code})",
            f"Create a new client secret for app {client} (App registrations > Certificates & "
            "secrets > New client secret), update the variable or file fleet reads it from, "
            "and note its expiry date: tokens stop the day it passes.",
            code,
        )
    if number in ("700027", "700024", "700023"):
        expiry = _expiry(text)
        reason = (
            TokenFailureReason.certificate_expired
            if expiry or "expired" in text.lower()
            else TokenFailureReason.bad_certificate
        )
        return TokenFailure(
            reason,
            f"Microsoft refused the app's certificate ({code})"
            + (f": the key registered on the app expired on {expiry}" if expiry else "")
            + f": {said}",
            f"Upload the certificate in certificate_file to app registration {client} "
            "(Certificates & secrets > Certificates), or renew it if it has expired.",
            code,
        )
    if number in ("65001", "650051", "650052", "50105", "7000112", "500011"):
        what = (
            "Office 365 Exchange Online is not available in the tenant"
            if number == "500011"
            else "the app is disabled in the tenant"
            if number == "7000112"
            else "the tenant has not consented to the app"
        )
        return TokenFailure(
            TokenFailureReason.consent_missing,
            f"{what} ({code})",
            f"A Global Administrator of tenant {tenant} grants admin consent to app {client} "
            f"for Office 365 Exchange Online > SMTP.SendAsApp: {consent}",
            code,
        )
    return TokenFailure(
        TokenFailureReason.refused,
        f"the token endpoint refused app {client}" + (f" ({code})" if code else "") + f": {said}",
        "Read the error above (https://login.microsoftonline.com/error?code="
        + (number or "...")
        + "), check tenant_id, client_id and the app's credential.",
        code,
    )


def _json_description(text: str) -> str:
    """The error_description of a JSON body quoted inside a message, else the message."""
    start = text.find("{")
    if start >= 0:
        try:
            body = json.loads(text[start : text.rfind("}") + 1])
        except ValueError:
            return text
        if isinstance(body, dict) and "error_description" in body:
            return f"{body.get('error', '')}: {body['error_description']}"
    return text


def _expiry(text: str) -> str | None:
    """An expiry date, when the provider quotes one."""
    match = _KEY_END_RE.search(text) or re.search(r"expired on ([0-9][0-9/:\- T]+\d)", text)
    return match.group(1).strip() if match else None


def _said(text: str) -> str:
    """The provider's sentence, without its trace and correlation ids and timestamps."""
    text = re.split(r"\s*(?:\\r\\n|\r\n|\n)?\s*Trace ID:", text)[0]
    return " ".join(text.split())[:400]


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _timed_out(request: TokenRequest, timeout_s: float) -> TokenFailure:
    return TokenFailure(
        TokenFailureReason.timeout,
        f"the token endpoint did not answer within {timeout_s:g} s",
        _unreachable_remedy(request),
    )


def _unreachable_remedy(request: TokenRequest) -> str:
    where = (
        "the token_uri in the service account file"
        if request.provider == "google"
        else request.authority
    )
    return (
        f"fleet could not reach {where} from the machine that sweeps: allow HTTPS to it "
        "through the firewall or proxy (and give oauth2.ca_file if a proxy inspects TLS). "
        "This says nothing about the mailbox yet."
    )


# ---- Google -------------------------------------------------------------------------------


def _google(request: TokenRequest, timeout_s: float) -> Token | TokenFailure:
    import requests
    from google.auth import exceptions
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    path = request.service_account_file or ""
    info_text = SecretSource(file=path).read()
    try:
        info = json.loads(info_text)
        credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            info, scopes=[GOOGLE_SCOPE], subject=request.subject
        )
    except (ValueError, KeyError, AttributeError) as exc:
        return TokenFailure(
            TokenFailureReason.bad_key_file,
            f"{path} is not a service account key file: {_short(exc)}",
            "Download a JSON key for the service account (IAM & Admin > Service accounts > "
            "Keys > Add key) and point service_account_file at it.",
        )
    client_id = info.get("client_id", "the service account's client ID")
    try:
        credentials.refresh(Request(_session(request.ca_file, timeout_s)))
    except exceptions.TransportError as exc:
        if isinstance(exc.__cause__, requests.Timeout):
            return _timed_out(request, timeout_s)
        return TokenFailure(
            TokenFailureReason.unreachable,
            f"cannot reach the token endpoint: {_short(exc)}",
            _unreachable_remedy(request),
        )
    except requests.RequestException as exc:
        return TokenFailure(
            TokenFailureReason.unreachable,
            f"cannot reach the token endpoint: {_short(exc)}",
            _unreachable_remedy(request),
        )
    except exceptions.RefreshError as exc:
        text = str(exc.args[0]) if exc.args else str(exc)
        answer = exc.args[1] if len(exc.args) > 1 else None
        if getattr(exc, "retryable", False) or not isinstance(answer, dict):
            # An outage (google-auth retried a 5xx, then gave up) or an answer that is not
            # Google's JSON (a proxy's error page): nothing is known about the account yet.
            return TokenFailure(
                TokenFailureReason.unreachable,
                f"the token endpoint failed: {' '.join(text.split())[:120]}",
                _unreachable_remedy(request),
            )
        if "unauthorized_client" in text:
            return TokenFailure(
                TokenFailureReason.delegation_missing,
                f"domain-wide delegation is not granted to the service account: {_said(text)}",
                "In the Google Admin console (Security > Access and data control > API controls "
                f"> Domain-wide delegation) add client ID {client_id} with the scope "
                f"{GOOGLE_SCOPE}.",
                "unauthorized_client",
            )
        if "invalid_grant" in text and re.search(r"email|user id", text, re.IGNORECASE):
            return TokenFailure(
                TokenFailureReason.wrong_mailbox,
                f"Google does not know the mailbox {request.subject}: {_said(text)}",
                f"The username {request.subject} must be a user of the Workspace domain that "
                "granted the delegation.",
                "invalid_grant",
            )
        if "invalid_grant" in text:
            return TokenFailure(
                TokenFailureReason.bad_key,
                f"Google refused the service account's key: {_said(text)}",
                "The key was deleted or disabled, or the machine's clock is off: create a new "
                "key for the service account and check the clock.",
                "invalid_grant",
            )
        return TokenFailure(
            TokenFailureReason.refused,
            f"Google's token endpoint refused the service account: {_said(text)}",
            "Check the service account, its key and its domain-wide delegation.",
            text.split(":", 1)[0][:60] or None,
        )
    token = str(credentials.token)  # the probe adds it to the sweep's book before use
    expiry = credentials.expiry
    return Token(token, None, expiry.replace(tzinfo=UTC) if expiry is not None else None)
