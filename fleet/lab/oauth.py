"""A loopback OAuth 2.0 token endpoint for the lab, speaking like Microsoft Entra ID's
(client credentials, with its OpenID discovery document and its JSON errors carrying
AADSTS codes, as MSAL reads them) and like Google's (a service account's signed JWT
exchanged for a token, domain-wide delegation checked). HTTPS with a lab certificate.

The lab SMTP servers accept XOAUTH2 only with a token this endpoint issued (`issued`),
and decide as Exchange does from what the token says and what the tenant has set up.
The lab's Dovecot asks `POST /introspect` (RFC 7662 token introspection) about the
tokens it is given: active, and whose mailbox, only for a token issued here.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

SEND_AS_APP = "SMTP.SendAsApp"
GOOGLE_SCOPE = "https://mail.google.com/"


@dataclass
class LabApp:
    """An app registration as one tenant sees it."""

    client_id: str
    secret: str | None = None
    secret_expired: bool = False
    certificate_pem: str | None = None  # the certificate uploaded to the app
    consented: bool = True  # False: the multi-tenant app was never consented here
    roles: list[str] = field(default_factory=lambda: [SEND_AS_APP])


@dataclass
class LabServiceAccount:
    client_email: str
    client_id: str
    public_key: Any
    delegated_scopes: set[str] = field(default_factory=lambda: {GOOGLE_SCOPE})


@dataclass
class IssuedToken:
    provider: str  # microsoft | google
    subject: str | None  # google: the mailbox; microsoft: None (an app token)
    app_id: str
    tenant: str | None
    roles: list[str]
    audience: str = "https://outlook.office365.com"  # google: unused


class LabTokenEndpoint:
    """Entra ID-like and Google-like token endpoints on 127.0.0.1, over HTTPS."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.tenants: dict[str, dict[str, LabApp]] = {}
        self.service_accounts: dict[str, LabServiceAccount] = {}
        self.google_users: set[str] = set()
        self.without_exchange: set[str] = set()  # tenants with no Exchange Online
        self.issued: dict[str, IssuedToken] = {}
        # app client id -> the mailbox its app-only token opens over IMAP (Exchange:
        # Add-MailboxPermission for the app's service principal); Google: the token's subject
        self.imap_mailboxes: dict[str, str] = {}
        self.requests: list[str] = []  # "METHOD path" of every request, for tests
        self.delay_s = 0.0  # a slow endpoint: every answer waits this long
        # tenant -> (method, status, text) its discovery (GET) or token (POST) request gets
        # instead of an answer: an Entra outage, a blocking proxy's error page
        self.outages: dict[str, tuple[str, int, str]] = {}
        self.expires_in = 3599  # lifetime of the tokens it issues, in seconds
        self._signing_key = secrets.token_bytes(32)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def google_token_uri(self) -> str:
        return f"https://127.0.0.1:{self.port}/google/token"

    def add_app(self, tenant: str, app: LabApp) -> LabApp:
        self.tenants.setdefault(tenant, {})[app.client_id] = app
        return app

    def add_service_account(self, client_email: str) -> tuple[LabServiceAccount, dict[str, str]]:
        """A service account and its JSON key file's content (token_uri pointing here)."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        from cryptography.hazmat.primitives import serialization

        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        client_id = str(int(uuid.uuid4().int % 10**21))
        account = LabServiceAccount(client_email, client_id, key.public_key())
        self.service_accounts[client_email] = account
        key_file = {
            "type": "service_account",
            "project_id": "fleet-lab",
            "private_key_id": uuid.uuid4().hex,
            "private_key": pem,
            "client_email": client_email,
            "client_id": client_id,
            "auth_uri": "https://127.0.0.1/auth",
            "token_uri": self.google_token_uri,
        }
        return account, key_file

    # -- serving ------------------------------------------------------------------------

    def start(self, port: int = 0) -> int:
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: tests read `requests`

            def do_GET(self) -> None:
                endpoint.requests.append(f"GET {self.path}")
                if not self._outage("GET"):
                    status, body = endpoint.get(self.path)
                    self._send(status, body)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                endpoint.requests.append(f"POST {self.path} {form.get('client_id', '')}")
                if not self._outage("POST"):
                    status, body = endpoint.post(self.path, form)
                    self._send(status, body)

            def _outage(self, method: str) -> bool:
                tenant = urlsplit(self.path).path.strip("/").split("/")[0]
                outage = endpoint.outages.get(tenant)
                if outage is None or outage[0] != method:
                    return False
                data = outage[2].encode()
                self.send_response(outage[1])
                kind = "text/html" if data.lstrip().startswith(b"<") else "application/json"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return True

            def _send(self, status: int, body: dict[str, Any]) -> None:
                if endpoint.delay_s:
                    time.sleep(endpoint.delay_s)  # this server's own thread: a slow endpoint
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that hung up (a timed-out or interrupted sweep) is normal

        server = Server(("127.0.0.1", port), Handler)
        server.socket = self.context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    # -- Entra ID -----------------------------------------------------------------------

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path).path.strip("/").split("/")
        if len(parts) == 4 and parts[1:] == ["v2.0", ".well-known", "openid-configuration"]:
            tenant = parts[0]
            if tenant not in self.tenants:
                return 400, _aad_error(
                    "invalid_tenant",
                    90002,
                    f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                    "tenant ID and are signing into the correct cloud. Check with your "
                    "subscription administrator, this may happen if there are no active "
                    "subscriptions for the tenant.",
                )
            base = f"{self.authority}/{tenant}"
            return 200, {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "issuer": f"{self.authority}/{tenant}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "private_key_jwt",
                    "client_secret_basic",
                ],
                "response_types_supported": ["code", "id_token", "token"],
                "tenant_region_scope": "EU",
            }
        return 404, {"error": "not_found"}

    def post(self, path: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path).path.strip("/").split("/")
        if parts == ["google", "token"]:
            return self._google(form)
        if parts == ["introspect"]:
            return 200, self.introspect(form.get("token", ""))
        if len(parts) != 4 or parts[1:] != ["oauth2", "v2.0", "token"]:
            return 404, {"error": "not_found"}
        tenant = parts[0]
        apps = self.tenants.get(tenant)
        if apps is None:
            return 400, _aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        if form.get("grant_type") != "client_credentials":
            return 400, _aad_error(
                "unsupported_grant_type", 70003, "The app requested an unsupported grant type."
            )
        client_id = form.get("client_id", "")
        app = apps.get(client_id)
        if app is None or not app.consented:
            return 400, _aad_error(
                "unauthorized_client",
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'. This can happen if the application has not been installed by the "
                "administrator of the tenant or consented to by any user in the tenant. You "
                "may have sent your authentication request to the wrong tenant.",
            )
        if "client_assertion" in form:
            refusal = self._check_assertion(tenant, app, form["client_assertion"])
        else:
            refusal = self._check_secret(app, form.get("client_secret"))
        if refusal is not None:
            return refusal
        if tenant in self.without_exchange:
            return 400, _aad_error(
                "invalid_resource",
                500011,
                "The resource principal named https://outlook.office365.com was not found in "
                f"the tenant named {tenant}. This can happen if the application has not been "
                "installed by the administrator of the tenant or consented to by any user in "
                "the tenant. You might have sent your authentication request to the wrong "
                "tenant.",
            )
        # Exchange Online (SMTP XOAUTH2), or Microsoft Graph (--verify-delivery)
        audience = {
            "https://outlook.office365.com/.default": "https://outlook.office365.com",
            "https://graph.microsoft.com/.default": "https://graph.microsoft.com",
        }.get(form.get("scope", ""))
        if audience is None:
            return 400, _aad_error(
                "invalid_scope",
                1002012,
                f"The provided value for scope {form.get('scope')} is not valid.",
            )
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": f"https://sts.windows.net/{tenant}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.expires_in,
            "appid": client_id,
            "tid": tenant,
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tenant}/{client_id}")),
            "roles": list(app.roles),
            "uti": secrets.token_urlsafe(16),
        }
        token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        self.issued[token] = IssuedToken(
            "microsoft", None, client_id, tenant, list(app.roles), audience
        )
        return 200, {
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "ext_expires_in": self.expires_in,
            "access_token": token,
        }

    def _check_secret(self, app: LabApp, secret: str | None) -> tuple[int, dict[str, Any]] | None:
        if app.secret is None or secret != app.secret:
            return 401, _aad_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request "
                "is the client secret value, not the client secret ID, for a secret added to "
                f"app '{app.client_id}'.",
            )
        if app.secret_expired:
            return 401, _aad_error(
                "invalid_client",
                7000222,
                f"The provided client secret keys for app '{app.client_id}' are expired. Visit "
                "the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, "
                "or consider using certificate credentials for added security: "
                "https://aka.ms/certCreds.",
            )
        return None

    def _check_assertion(
        self, tenant: str, app: LabApp, assertion: str
    ) -> tuple[int, dict[str, Any]] | None:
        refusal = (
            401,
            _aad_error(
                "invalid_client",
                700027,
                "Client assertion failed signature validation. [Reason - The key was not found., "
                "Thumbprint of key used by client: 'unknown', Please visit the Azure Portal, "
                "Graph Explorer or directly use MS Graph to see configured keys for app Id "
                f"'{app.client_id}'.]",
            ),
        )
        if app.certificate_pem is None:
            return refusal
        certificate = x509.load_pem_x509_certificate(app.certificate_pem.encode())
        try:
            jwt.decode(
                assertion,
                certificate.public_key(),  # type: ignore[arg-type]
                algorithms=["RS256", "PS256"],
                audience=f"{self.authority}/{tenant}/oauth2/v2.0/token",
                issuer=app.client_id,
            )
        except jwt.PyJWTError:
            return refusal
        if certificate.not_valid_after_utc < datetime.now(UTC):
            return 401, _aad_error(
                "invalid_client",
                700027,
                "Client assertion contains an invalid signature. [Reason - The key used is "
                "expired., Thumbprint of key used by client: 'lab', Found key 'Start="
                f"{certificate.not_valid_before_utc:%m/%d/%Y %H:%M:%S}, End="
                f"{certificate.not_valid_after_utc:%m/%d/%Y %H:%M:%S}']",
            )
        return None

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: active, with the mailbox it opens, only for a token issued here (and
        not expired); anything else is just inactive, as the RFC has it."""
        issued = self.issued.get(token)
        username = None
        if issued is not None and issued.provider == "google":
            username = issued.subject
        elif issued is not None and issued.audience == "https://outlook.office365.com":
            username = self.imap_mailboxes.get(issued.app_id)
        if issued is None or username is None or _expired(token):
            return {"active": False}
        return {"active": True, "username": username, "client_id": issued.app_id}

    # -- Google -------------------------------------------------------------------------

    def _google(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
            return 400, {
                "error": "unsupported_grant_type",
                "error_description": "Invalid grant_type",
            }
        assertion = form.get("assertion", "")
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT."}
        account = self.service_accounts.get(str(unverified.get("iss")))
        try:
            if account is None:
                raise jwt.InvalidSignatureError
            claims = jwt.decode(
                assertion,
                account.public_key,
                algorithms=["RS256"],
                # google-auth always names Google's own endpoint as the audience
                audience=["https://oauth2.googleapis.com/token", self.google_token_uri],
            )
        except jwt.PyJWTError:
            return 400, {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        assert account is not None  # noqa: S101
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes or not scopes <= account.delegated_scopes:
            return 401, {
                "error": "unauthorized_client",
                "error_description": "Client is unauthorized to retrieve access tokens using "
                "this method, or client not authorized for any of the scopes requested.",
            }
        subject = str(claims.get("sub", "")).lower()
        if subject not in self.google_users:
            return 400, {"error": "invalid_grant", "error_description": "Invalid email or User ID"}
        token = "ya29." + secrets.token_urlsafe(48)
        self.issued[token] = IssuedToken("google", subject, account.client_id, None, [])
        return 200, {"access_token": token, "expires_in": 3599, "token_type": "Bearer"}


def _expired(token: str) -> bool:
    """An Entra-like token past its `exp` (Google-like tokens here are opaque)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return False
    return bool(isinstance(claims.get("exp"), int) and claims["exp"] < time.time())


def _aad_error(error: str, code: int, description: str) -> dict[str, Any]:
    """An Entra ID error body, with the trace ids and timestamp it always carries."""
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {description} Trace ID: {trace} Correlation ID: "
        f"{correlation} Timestamp: {stamp}",
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"https://login.microsoftonline.com/error?code={code}",
    }
