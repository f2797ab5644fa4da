"""Wait for one test message in the recipient's mailbox and say where it went."""

from __future__ import annotations

import asyncio
import threading
from email.message import Message
from typing import Any

from fleet.credentials import Secrets
from fleet.errors import GraphProblem, ImapProblem, SecretError
from fleet.inventory import GraphMailbox, OAuth2, Verify
from fleet.oauth import (
    GRAPH_SCOPE,
    Token,
    TokenBroker,
    TokenRequest,
    given_token_expired,
    token_request,
)
from fleet.results import Delivery, DeliveryStatus
from fleet.verify import graph
from fleet.verify.imap import Mailbox, find_test_message
from fleet.verify.verdicts import read_verdicts


async def verify_delivery(
    verify: Verify,
    test_id: str,
    *,
    sent_at: float,
    keep: bool,
    timeout_s: float,
    tokens: TokenBroker | None = None,
    secrets: Secrets | None = None,
) -> Delivery:
    """Look for the test message until `sent_at` (monotonic) + `within_s`; never raises for
    what the mailbox or the network does (that is status `unknown` with the reason)."""
    if verify.graph is not None:
        return await _through_graph(
            verify.graph,
            verify.within_s,
            test_id,
            sent_at=sent_at,
            keep=keep,
            timeout_s=timeout_s,
            tokens=tokens or TokenBroker(timeout_s),
            secrets=secrets,
        )
    imap = verify.imap
    if imap is None:  # the inventory requires one of the two
        raise ValueError("verify without a mailbox")
    base: dict[str, Any] = {
        "method": "imap",
        "mailbox": imap.username,
        "test_message_id": test_id,
        "within_s": verify.within_s,
    }
    oauth: str | None = None
    if imap.oauth2 is not None and imap.oauth2.kind != "token":
        request = imap_token_request(imap.oauth2, imap.username)
        token = await (tokens or TokenBroker(timeout_s)).get(request)
        if not isinstance(token, Token):
            detail = f"no OAuth token for IMAP from {request.describe()}: {token.finding}"
            return Delivery(**base, status=DeliveryStatus.unknown, detail=detail)
        password, oauth = token.value, request.describe()
    else:
        try:
            password = imap.secret.read()
        except SecretError as exc:
            return Delivery(**base, status=DeliveryStatus.unknown, detail=str(exc))
        if imap.oauth2 is not None:
            stale = given_token_expired(password, imap.secret.describe())
            if stale is not None:  # sent, it would only be refused
                detail = f"no OAuth token for IMAP from {imap.secret.describe()}: {stale.finding}"
                return Delivery(**base, status=DeliveryStatus.unknown, detail=detail)
            oauth = f"{imap.secret.describe()} (a token given, not fetched)"
    if secrets is not None:
        # before any connection: the token in every form it travels in (the XOAUTH2 blob)
        secrets.add_login(imap.username, password)
    box = Mailbox(
        imap.host,
        imap.port,
        imap.security,
        imap.username,
        password,
        imap.ca_file,
        timeout_s,
        oauth,
    )
    stop = threading.Event()
    try:
        found = await asyncio.to_thread(
            find_test_message,
            box,
            test_id,
            sent_at=sent_at,
            within_s=verify.within_s,
            keep=keep,
            stop=stop,
        )
    except ImapProblem as exc:
        return Delivery(**base, status=DeliveryStatus.unknown, detail=str(exc))
    finally:
        stop.set()  # cancelled: the thread ends at its next poll, not at the deadline
    if found is None:
        return Delivery(**base, status=DeliveryStatus.not_delivered)
    return _found(
        base, found.folder, found.junk, found.headers, found.delay_s, found.deleted, found.detail
    )


def imap_token_request(oauth2: OAuth2, username: str) -> TokenRequest:
    """The token for IMAP: Exchange Online's scope (Microsoft; the app needs the
    IMAP.AccessAsApp permission), or mail.google.com acting as the mailbox (Google)."""
    return token_request(oauth2, username)


async def _through_graph(
    mailbox: GraphMailbox,
    within_s: float,
    test_id: str,
    *,
    sent_at: float,
    keep: bool,
    timeout_s: float,
    tokens: TokenBroker,
    secrets: Secrets | None,
) -> Delivery:
    base: dict[str, Any] = {
        "method": "graph",
        "mailbox": mailbox.mailbox,
        "test_message_id": test_id,
        "within_s": within_s,
    }
    request = token_request(mailbox.oauth2, mailbox.mailbox, GRAPH_SCOPE)
    token = await tokens.get(request)
    if not isinstance(token, Token):
        detail = f"no Graph token for {request.describe()}: {token.finding}"
        return Delivery(**base, status=DeliveryStatus.unknown, detail=detail)
    if secrets is not None:
        secrets.add(token.value)  # before any request: no output can show it
    try:
        found = await graph.find_test_message(
            mailbox.endpoint,
            mailbox.mailbox,
            token.value,
            test_id,
            sent_at=sent_at,
            within_s=within_s,
            keep=keep,
            timeout_s=timeout_s,
            ca_file=mailbox.ca_file,
        )
    except GraphProblem as exc:
        return Delivery(**base, status=DeliveryStatus.unknown, detail=f"Graph: {exc}")
    if found is None:
        return Delivery(**base, status=DeliveryStatus.not_delivered)
    return _found(
        base, found.folder, found.junk, found.headers, found.delay_s, found.deleted, found.detail
    )


def _found(
    base: dict[str, Any],
    folder: str,
    junk: bool,
    headers: Message,
    delay_s: float,
    deleted: bool,
    detail: str | None,
) -> Delivery:
    """Where it was, and the receiver's verdict from its headers."""
    verdicts = read_verdicts(headers)
    return Delivery(
        **base,
        status=DeliveryStatus.junk if junk else DeliveryStatus.inbox,
        folder=folder,
        delay_s=delay_s,
        spf=verdicts.spf,
        dkim=verdicts.dkim,
        dmarc=verdicts.dmarc,
        compauth=verdicts.compauth
        if verdicts.compauth_reason is None
        else f"{verdicts.compauth} reason={verdicts.compauth_reason}",
        authentication_results=verdicts.header,
        deleted=deleted,
        detail=detail,
    )


class DeliveryOptions:
    """--verify-delivery, and whether the test messages stay (--keep-test-messages)."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
