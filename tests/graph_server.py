"""A loopback Microsoft Graph for --verify-delivery tests: one tenant's mailboxes, answering
the message list and delete requests the way Microsoft documents them, over HTTPS.

- `GET /v1.0/users/{id}/mailFolders/{folder}/messages` with `$search`, `$select`, `$top`
  (learn.microsoft.com/graph/api/user-list-messages): `{"@odata.context": ..., "value": [...]}`,
  each message with the `$select`ed properties; `internetMessageHeaders` only when selected
  (learn.microsoft.com/graph/api/resources/message: "Returned only on applying a $select").
- `DELETE /v1.0/users/{id}/messages/{id}` (learn.microsoft.com/graph/api/message-delete):
  `204 No Content`.
- A missing or foreign token: `401` with `InvalidAuthenticationToken`; a token without the
  Mail.ReadWrite (or Mail.Read for reading) application role: `403` `ErrorAccessDenied`;
  an unknown mailbox: `404` `ErrorInvalidUser`. Errors are `{"error": {"code", "message"}}`.

Mail arrives by `deliver` (the test's SMTP server hands over what it accepted), each message
filed by `route` as Exchange Online's filter would, with the headers Exchange stamps.
"""

from __future__ import annotations

import email
import json
import ssl
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from fleet.lab.oauth import LabTokenEndpoint

GRAPH_AUDIENCE = "https://graph.microsoft.com"


@dataclass
class GraphMessage:
    id: str
    folder: str  # inbox | junkemail
    subject: str
    headers: list[dict[str, str]]
    body: str


@dataclass
class GraphTenant:
    tokens: LabTokenEndpoint
    mailboxes: dict[str, list[GraphMessage]] = field(default_factory=dict)
    # raw message -> (mailbox, folder, headers Exchange adds), or None: accepted and dropped
    route: Callable[[bytes], tuple[str, str, list[tuple[str, str]]] | None] = lambda raw: None
    requests: list[str] = field(default_factory=list)  # "METHOD path" of each request
    deleted: list[str] = field(default_factory=list)  # ids of deleted messages
    source: Callable[[], list[bytes]] = list  # what the SMTP server accepted so far
    _taken: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take_new_mail(self) -> None:
        """File what the SMTP server accepted since the last request (as delivery would)."""
        with self._lock:
            arrived = self.source()[self._taken :]
            self._taken += len(arrived)
            for raw in arrived:
                routed = self.route(raw)
                if routed is None:
                    continue
                mailbox, folder, stamped = routed
                parsed = email.message_from_bytes(raw)
                headers = [{"name": n, "value": v} for n, v in stamped]
                headers += [{"name": n, "value": str(v)} for n, v in parsed.items()]
                self.mailboxes.setdefault(mailbox, []).append(
                    GraphMessage(
                        "AAMkAG" + uuid.uuid4().hex,
                        folder,
                        str(parsed.get("Subject", "")),
                        headers,
                        raw.decode("utf-8", "replace"),
                    )
                )


class GraphServer:
    def __init__(self, tenant: GraphTenant, context: ssl.SSLContext) -> None:
        self.tenant = tenant
        self.context = context
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        graph = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                self._answer(*graph.answer("GET", self.path, self.headers.get("Authorization")))

            def do_DELETE(self) -> None:
                self._answer(*graph.answer("DELETE", self.path, self.headers.get("Authorization")))

            def _answer(self, status: int, body: dict[str, Any] | None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json; odata.metadata=minimal")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = self.context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def answer(
        self, method: str, path: str, authorization: str | None
    ) -> tuple[int, dict[str, Any] | None]:
        tenant = self.tenant
        url = urlsplit(path)
        tenant.requests.append(f"{method} {url.path}")
        token = (authorization or "").removeprefix("Bearer ").strip()
        issued = tenant.tokens.issued.get(token)
        if issued is None or issued.audience != GRAPH_AUDIENCE:
            return 401, _error(
                "InvalidAuthenticationToken", "Access token validation failure. Invalid audience."
            )
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if len(parts) < 4 or parts[:2] != ["v1.0", "users"]:
            return 400, _error("BadRequest", "Resource not found for the segment.")
        mailbox = parts[2].lower()
        if mailbox not in tenant.mailboxes:
            return 404, _error("ErrorInvalidUser", f"The requested user '{parts[2]}' is invalid.")
        needed = {"Mail.ReadWrite"} if method == "DELETE" else {"Mail.Read", "Mail.ReadWrite"}
        if not needed & set(issued.roles):
            return 403, _error(
                "ErrorAccessDenied", "Access is denied. Check credentials and try again."
            )
        tenant.take_new_mail()
        messages = tenant.mailboxes[mailbox]
        if (
            method == "GET"
            and len(parts) == 6
            and parts[3] == "mailFolders"
            and parts[5] == "messages"
        ):
            query = parse_qs(url.query)
            search = query.get("$search", [""])[0].strip('"').lower()
            select = query.get("$select", ["id,subject"])[0].split(",")
            top = int(query.get("$top", ["10"])[0])
            found = [
                m for m in messages
                if m.folder == parts[4].lower() and (not search or search in (m.subject + m.body).lower())
            ][:top]  # fmt: skip
            return 200, {
                "@odata.context": f"https://graph.microsoft.com/v1.0/$metadata#users('{parts[2]}')"
                f"/mailFolders('{parts[4]}')/messages({','.join(select)})",
                "value": [_select(m, select) for m in found],
            }
        if method == "DELETE" and len(parts) == 5 and parts[3] == "messages":
            for i, message in enumerate(messages):
                if message.id == parts[4]:
                    del messages[i]
                    tenant.deleted.append(message.id)
                    return 204, None
            return 404, _error(
                "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return 400, _error("BadRequest", "Unsupported request.")


def _select(message: GraphMessage, select: list[str]) -> dict[str, Any]:
    whole = {
        "id": message.id,
        "subject": message.subject,
        "internetMessageHeaders": message.headers,
        "parentFolderId": message.folder,
    }
    return {"@odata.etag": 'W/"CQAAABYAAAA"', **{k: whole[k] for k in select if k in whole}}


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {"code": code, "message": message, "innerError": {"request-id": str(uuid.uuid4())}}
    }
