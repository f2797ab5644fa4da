"""A lean SMTP responder for the load lab: speaks like Microsoft 365 (banner, EHLO that
echoes the client IP, STARTTLS, AUTH LOGIN/PLAIN after TLS, 5.7.606 for banned IPs at RCPT)
and waits `delay` seconds before every reply, to emulate a WAN round trip.

It is deliberately cheaper than aiosmtpd, so that on a 2-core machine the load lab does not
starve the scanner being measured. Replies are scheduled with call_later (no task per
reply); TLS uses the same trustme-issued certificates as the test lab.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast

# The test lab's Microsoft 365 wording, so the scanner classifies the same replies.
from fleet.lab.smtp import MX_EXTENSIONS, TAIL_EXTENSIONS, banned_ip_reply


class Responder(asyncio.Protocol):
    def __init__(
        self,
        *,
        delay: float,
        context: ssl.SSLContext,
        submission: bool,
        banned: set[str],
        stats: dict[str, int],
    ) -> None:
        self.delay = delay
        self.context = context
        self.submission = submission
        self.banned = banned
        self.stats = stats
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.peer = "?"
        self.tls = False
        self.awaiting_password = False
        self.upgrading = False
        self.upgrade_task: asyncio.Future[None] | None = None

    # -- wire -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None:
            self.stats["connections"] += 1
            self.transport = cast(asyncio.Transport, transport)
            peer = transport.get_extra_info("peername")
            self.peer = peer[0] if peer else "?"
            self.reply(
                "220 BY2NAM01FT030.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready"
            )

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\n" in self.buffer:
            line, self.buffer = self.buffer.split(b"\n", 1)
            self.command(line.rstrip(b"\r").decode("ascii", "replace"))

    def reply(self, text: str, then_upgrade: bool = False, then_close: bool = False) -> None:
        # Same delay for every reply, so call_later keeps them in order.
        self.loop.call_later(self.delay, self._write, text, then_upgrade, then_close)

    def _write(self, text: str, then_upgrade: bool, then_close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(text.encode() + b"\r\n")
        if then_upgrade:
            self.upgrading = True
            self.upgrade_task = asyncio.ensure_future(self._upgrade(transport))
        if then_close:
            transport.close()

    async def _upgrade(self, transport: asyncio.Transport) -> None:
        try:
            upgraded = await self.loop.start_tls(transport, self, self.context, server_side=True)
        except (OSError, ssl.SSLError, ConnectionError):
            transport.close()
            return
        if upgraded is None:
            transport.close()
            return
        self.transport = upgraded
        self.tls = True
        self.upgrading = False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgrading:
            self.transport = None

    # -- SMTP -----------------------------------------------------------------------------

    def command(self, line: str) -> None:
        if self.awaiting_password:
            self.awaiting_password = False
            self.reply("235 2.7.0 Authentication successful")
            return
        verb = line[:4].upper()
        if verb in ("EHLO", "HELO"):
            # The client may speak before start_tls() has returned here: upgrading is TLS.
            tls = self.tls or self.upgrading
            lines = [f"LO4P302CA0005.outlook.office365.com Hello [{self.peer}]", *MX_EXTENSIONS]
            if not tls:
                lines.append("STARTTLS")
            elif self.submission:
                lines.append("AUTH LOGIN PLAIN XOAUTH2")
            lines.extend(TAIL_EXTENSIONS)
            self.reply("\r\n".join(f"250-{x}" for x in lines[:-1]) + f"\r\n250 {lines[-1]}")
        elif verb == "STAR":
            self.reply("220 2.0.0 SMTP server ready", then_upgrade=True)
        elif verb == "AUTH":
            parts = line.split()
            if len(parts) >= 2 and parts[1].upper() == "LOGIN":
                self.awaiting_password = True
                self.reply("334 UGFzc3dvcmQ6")
            else:
                self.reply("235 2.7.0 Authentication successful")
        elif verb == "MAIL":
            self.reply("250 2.1.0 Sender OK")
        elif verb == "RCPT":
            if self.peer in self.banned:
                self.reply(banned_ip_reply(self.peer))
            else:
                self.reply("250 2.1.5 Recipient OK")
        elif verb == "RSET":
            self.reply("250 2.0.0 Resetting")
        elif verb == "QUIT":
            self.reply("221 2.0.0 Service closing transmission channel", then_close=True)
        elif verb == "NOOP":
            self.reply("250 2.0.0 OK")
        else:
            self.reply("500 5.3.3 Unrecognized command")


async def serve(
    *,
    delay: float,
    context: ssl.SSLContext,
    submission: bool,
    banned: set[str],
    stats: dict[str, int],
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: Responder(
            delay=delay, context=context, submission=submission, banned=banned, stats=stats
        ),
        host="127.0.0.1",
        port=0,
        backlog=4096,
    )
