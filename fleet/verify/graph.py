"""Find a test message through Microsoft Graph (httpx), for Microsoft 365 mailboxes without
IMAP: list the Inbox and Junk Email folders' messages that match the test id, once a second,
until it turns up or the window closes; then delete it.

Requests, as Microsoft documents them (learn.microsoft.com/graph/api/user-list-messages,
/graph/api/message-delete): `GET /v1.0/users/{mailbox}/mailFolders/{inbox|junkemail}/messages
?$search="<id>"&$select=id,subject,internetMessageHeaders` (the headers come only when
selected) and `DELETE /v1.0/users/{mailbox}/messages/{id}`, with an app-only token for
https://graph.microsoft.com/.default (application permission Mail.ReadWrite).
"""

from __future__ import annotations

import asyncio
import email.message
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from fleet.errors import GraphProblem
from fleet.verify.imap import POLL_S

# Graph's well-known folder names, and how fleet reports them
FOLDERS = (("inbox", "Inbox", False), ("junkemail", "Junk Email", True))


@dataclass(frozen=True)
class GraphFound:
    folder: str
    junk: bool
    headers: email.message.Message
    delay_s: float
    deleted: bool
    detail: str | None = None


async def find_test_message(
    endpoint: str,
    mailbox: str,
    token: str,
    test_id: str,
    *,
    sent_at: float,
    within_s: float,
    keep: bool,
    timeout_s: float,
    ca_file: str | None,
) -> GraphFound | None:
    """Wait until `sent_at + within_s` (monotonic) for the message whose X-Fleet-Test-Id is
    `test_id`; delete it unless `keep`. None: in neither folder in time."""
    context = ssl.create_default_context(cafile=ca_file)
    base = f"{endpoint.rstrip('/')}/v1.0/users/{quote(mailbox, safe='@')}"
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(verify=context, timeout=timeout_s, headers=headers) as client:
        deadline = sent_at + within_s
        while True:
            for folder, name, junk in FOLDERS:
                hit = await _search(client, f"{base}/mailFolders/{folder}/messages", test_id)
                if hit is not None:
                    message_id, found_headers = hit
                    delay_s = round(max(0.0, time.monotonic() - sent_at), 1)
                    deleted, detail = (
                        (False, None) if keep else await _delete(client, base, message_id)
                    )
                    return GraphFound(name, junk, found_headers, delay_s, deleted, detail)
            if time.monotonic() + POLL_S > deadline:
                return None
            await asyncio.sleep(POLL_S)


async def _search(
    client: httpx.AsyncClient, url: str, test_id: str
) -> tuple[str, email.message.Message] | None:
    params = {
        "$search": f'"{test_id}"',
        "$select": "id,subject,internetMessageHeaders",
        "$top": "10",
    }
    body = await _call(client, "GET", url, params=params)
    for message in body.get("value", []) if isinstance(body, dict) else []:
        headers = email.message.Message()
        for header in message.get("internetMessageHeaders") or []:
            if isinstance(header, dict) and "name" in header:
                headers[str(header["name"])] = str(header.get("value", ""))
        if str(headers.get("X-Fleet-Test-Id", "")).strip() == test_id:
            return str(message["id"]), headers
    return None


async def _delete(client: httpx.AsyncClient, base: str, message_id: str) -> tuple[bool, str | None]:
    try:
        await _call(client, "DELETE", f"{base}/messages/{quote(message_id, safe='')}")
    except GraphProblem as exc:
        return False, f"could not delete the test message: {exc}"
    return True, None


async def _call(
    client: httpx.AsyncClient, method: str, url: str, params: dict[str, str] | None = None
) -> Any:
    try:
        response = await client.request(method, url, params=params)
    except httpx.HTTPError as exc:
        raise GraphProblem(f"{type(exc).__name__}: {exc}") from None
    if response.status_code >= 400:
        raise GraphProblem(_graph_error(response))
    if response.status_code == 204 or not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise GraphProblem(f"HTTP {response.status_code}: not JSON") from None


def _graph_error(response: httpx.Response) -> str:
    """Graph's own error code and message (`{"error": {"code", "message"}}`)."""
    try:
        error = response.json().get("error", {})
        return f"HTTP {response.status_code} {error.get('code')}: {error.get('message')}"
    except (ValueError, AttributeError):
        return f"HTTP {response.status_code}"
