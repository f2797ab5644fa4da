"""The physical floor for the scanner's CPU: the same SMTP conversations with bare
aiosmtplib (connect, EHLO, STARTTLS, EHLO, AUTH LOGIN, MAIL, RCPT, RSET, QUIT) and nothing
else: no inventory, no classification, no matrix, no store.

    python -m bench.bare CONVERSATIONS.json CONCURRENCY

Run in a child process by bench.run, which reads its CPU time with wait4().
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
from typing import Any

import aiosmtplib


async def one(
    conversation: dict[str, Any], contexts: dict[str, ssl.SSLContext], slots: asyncio.Semaphore
) -> None:
    async with slots:
        smtp = aiosmtplib.SMTP(
            hostname=conversation["host"],
            port=conversation["port"],
            local_hostname=conversation["ehlo"],
            source_address=(conversation["bind"], 0),
            start_tls=False,
            tls_context=contexts[conversation["ca_file"]],
            timeout=30,
        )
        try:
            await smtp.connect()
            await smtp.ehlo()
            await smtp.starttls()
            await smtp.ehlo()
            if conversation.get("username"):
                await smtp.auth_login(conversation["username"], conversation["password"])
            await smtp.mail(conversation["from"])
            try:
                await smtp.rcpt(conversation["to"])
            except aiosmtplib.SMTPRecipientRefused:
                pass  # a dirty site's rejection, as in the sweep
            await smtp.rset()
            await smtp.quit()
        finally:
            smtp.close()


async def main(conversations: list[dict[str, Any]], concurrency: int) -> None:
    # One context per CA file, as any client would keep it (the comprehension over the
    # conversations built one per conversation: 1,000 CA stores loaded, about 0.3 ms each).
    contexts = {
        ca_file: ssl.create_default_context(cafile=ca_file)
        for ca_file in {c["ca_file"] for c in conversations}
    }
    slots = asyncio.Semaphore(concurrency)
    await asyncio.gather(*(one(c, contexts, slots) for c in conversations))


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        items = json.load(handle)
    # The loop fleet runs on (fleet.cli.app.run_async): uvloop when installed, unless
    # FLEET_LOOP=asyncio; the floor is measured on the same loop as the scanner.
    factory = None
    if os.environ.get("FLEET_LOOP", "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main(items, int(sys.argv[2])))
