"""Wait for one test message in the recipient's mailbox and say where it went."""

from __future__ import annotations

import asyncio
import threading

from fleet.errors import SecretError
from fleet.inventory import Verify
from fleet.results import Delivery, DeliveryStatus
from fleet.verify.imap import ImapProblem, Mailbox, find_test_message
from fleet.verify.verdicts import read_verdicts


async def verify_delivery(
    verify: Verify,
    test_id: str,
    *,
    sent_at: float,
    keep: bool,
    timeout_s: float,
) -> Delivery:
    """Look for the test message until `sent_at` (monotonic) + `within_s`; never raises for
    what the mailbox or the network does (that is status `unknown` with the reason)."""
    imap = verify.imap
    if imap is None:  # the inventory allows no other mailbox yet
        raise ValueError("verify without a mailbox")
    base = {
        "method": "imap",
        "mailbox": imap.username,
        "test_message_id": test_id,
        "within_s": verify.within_s,
    }
    try:
        password = imap.secret.read()
    except SecretError as exc:
        return Delivery(**base, status=DeliveryStatus.unknown, detail=str(exc))
    box = Mailbox(
        imap.host, imap.port, imap.security, imap.username, password, imap.ca_file, timeout_s
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
    verdicts = read_verdicts(found.headers)
    return Delivery(
        **base,
        status=DeliveryStatus.junk if found.junk else DeliveryStatus.inbox,
        folder=found.folder,
        delay_s=found.delay_s,
        spf=verdicts.spf,
        dkim=verdicts.dkim,
        dmarc=verdicts.dmarc,
        compauth=verdicts.compauth
        if verdicts.compauth_reason is None
        else f"{verdicts.compauth} reason={verdicts.compauth_reason}",
        authentication_results=verdicts.header,
        deleted=found.deleted,
        detail=found.detail,
    )


class DeliveryOptions:
    """--verify-delivery, and whether the test messages stay (--keep-test-messages)."""

    def __init__(self, *, keep: bool = False) -> None:
        self.keep = keep
