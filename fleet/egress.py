"""How a site's traffic leaves: from this machine, from a chosen source address, or
through a SOCKS5 proxy at the site. Each way hands a connected socket to the SMTP probe,
or a connection that already speaks fleet's SMTP protocol (`InStepProtocol`).

Failures of the way out are named (`EgressFailure`), not judged: the judgement catalogue
says what each means (fleet.judgement.faults). Those of the way out itself (the proxy is
down, the bind address is not on this machine) say nothing about the mail server.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from aiosmtplib import SMTPResponse, SMTPResponseException
from aiosmtplib.protocol import SMTPProtocol

from fleet.dns import Dns, Outcome
from fleet.errors import EgressError, EgressFailure
from fleet.net import family_of
from fleet.results import EgressTransport

if TYPE_CHECKING:  # annotations only: a scan from the inventory cache imports no pydantic
    from fleet.inventory import SiteEgress


# ---- the SMTP protocol every connection speaks -------------------------------------------
# aiosmtplib hands a command the first complete reply in its buffer and keeps what follows
# for the next command, and takes a multi-line reply's code from its last line. A server
# that sends one reply too many (EHLO capabilities as separate `250 ` lines, an unsolicited
# `250` after MAIL) would then have its 550 to RCPT read as the reply to RSET, and its 250
# to the line before read as the recipient accepted: a false `ok`. fleet never pipelines,
# so anything the server sends beyond one reply per command means the conversation is out
# of step, and every reply after it is suspect: the conversation ends as a protocol error.

OUT_OF_STEP = "the server sent more replies than commands: conversation out of step"


class OutOfStep(SMTPResponseException):
    """The server's replies no longer pair one to one with fleet's commands."""

    def __init__(self, message: str = OUT_OF_STEP) -> None:
        super().__init__(-1, message)  # a negative code: malformed, no reply to judge


def _closing(data: bytes) -> SMTPResponse | None:
    """`data` as a whole 421 reply, or None. RFC 5321 3.8: a server shutting down may say
    421 unasked and close; the client reads it after its next command. Not out of step."""
    lines = data.split(b"\n")
    if lines[-1] or len(lines) < 2:
        return None  # not ending with a whole line
    lines = lines[:-1]
    if not all(line[:3] == b"421" and line[3:4] in (b"-", b" ", b"\r") for line in lines):
        return None
    if lines[-1][3:4] == b"-":
        return None
    text = b"\n".join(line[4:].strip(b" \t\r") for line in lines)
    return SMTPResponse(421, text.decode("utf-8", "surrogateescape"))


class InStepProtocol(SMTPProtocol):
    """Fails a reply whose lines carry different codes, and a command sent after the
    server said more than one reply to the one before (in the same packet as the reply,
    or in a later one: aiosmtplib drops those unseen). An unasked 421 is the exception:
    the next command is answered with it (`closing`)."""

    out_of_step: bool = False
    closing: SMTPResponse | None = None  # an unasked 421: the server is shutting down
    last_reply: SMTPResponse | None = None  # kept when the exchange then fails (STARTTLS)

    def data_received(self, data: bytes) -> None:
        waiter = self._response_waiter
        if data and waiter is not None and (not self._response_pending or waiter.done()):
            # no command is waiting for it: a 421 closing the session, or a reply too many
            self.closing = self.closing or _closing(data)
            if self.closing is None:
                self.out_of_step = True
        super().data_received(data)

    def _read_response_from_buffer(self) -> SMTPResponse | None:
        received = bytes(self._buffer)
        response = super()._read_response_from_buffer()
        if response is None:
            return None
        reply = received[: len(received) - len(self._buffer)]
        # Every reply of every conversation is read here: a one-line reply has one code, and
        # a multi-line one's codes are parsed only when their bytes differ (as aiosmtplib
        # reads them, "025" and "25 " are both 25).
        if reply.count(b"\n") > 1:
            lines = reply.split(b"\n")[:-1]
            if len({line[:3] for line in lines}) > 1:
                codes = list(dict.fromkeys(int(line[:3]) for line in lines))
                if len(codes) > 1:
                    self.out_of_step = True
                    raise OutOfStep(
                        "the lines of one reply carry different codes: "
                        + ", ".join(map(str, codes))
                    )
        if self._buffer:  # more after a complete reply, and no command asked for it
            self.closing = _closing(bytes(self._buffer))
            if self.closing is None:
                self.out_of_step = True
                raise OutOfStep
            del self._buffer[:]
        self.last_reply = response
        return response

    def write(self, data: bytes) -> None:
        if self.out_of_step:
            raise OutOfStep
        if self.closing is not None:  # the server said 421 and is gone: that is the answer
            raise SMTPResponseException(self.closing.code, self.closing.message)
        super().write(data)


@dataclass(frozen=True, slots=True)
class Opened:
    """A connection the loop opened itself; `protocol` has buffered what the server said."""

    transport: asyncio.Transport
    protocol: InStepProtocol


# Opens a TCP connection to (host, port) within a timeout. With `plain` (no TLS at connect)
# the direct way returns `Opened`; otherwise, and through a proxy, a connected socket.
Opener = Callable[[str, int, float, bool], Awaitable[socket.socket | Opened]]

# SOCKS5 reply codes (RFC 1928) that describe the destination, not the proxy.
_DESTINATION_REPLIES = {
    3: "network unreachable from the site",
    4: "host unreachable from the site",
    5: "connection refused (seen from the site)",
    6: "TTL expired on the way from the site",
}


def make_opener(egress: SiteEgress, dns: Dns) -> Opener:
    """The way out for one site's conversations."""
    if egress.transport is EgressTransport.socks5:
        return _socks5_opener(egress.via, egress.bind)
    return _direct_opener(egress.bind, dns)


def _direct_opener(bind: str | None, dns: Dns) -> Opener:
    async def open_direct(
        host: str, port: int, timeout_s: float, plain: bool
    ) -> socket.socket | Opened:
        async with asyncio.timeout(timeout_s):
            answer = await dns.addresses(host)
            if answer.outcome in (Outcome.nxdomain, Outcome.nodata):
                raise EgressError(
                    EgressFailure.host_does_not_resolve, f"{host} does not resolve: {answer.detail}"
                )
            if not answer.ok:  # our resolver's trouble, not a fact about the mail host
                raise EgressError(
                    EgressFailure.resolver_failed, f"cannot look up {host}: {answer.detail}"
                )
            addresses = list(answer.records)
            if bind is not None:
                # Only addresses of the bind address's family can be reached from it.
                family = family_of(bind)
                addresses = [a for a in addresses if family_of(a) == family]
                if not addresses:
                    raise EgressError(
                        EgressFailure.no_address_for_bind,
                        f"{host} has no address of the same IP version as {bind}",
                    )
            last: OSError | None = None
            for address in addresses:
                try:
                    if plain:
                        return await _open(address, port, bind)
                    return await _connect(address, port, bind)
                except OSError as exc:
                    if bind is not None and exc.errno == errno.EADDRNOTAVAIL:
                        raise EgressError(
                            EgressFailure.bind_address_not_here,
                            f"cannot send from {bind}: the address is not on this machine",
                        ) from None
                    last = exc
            assert last is not None  # noqa: S101 - at least one address was tried
            raise last

    return open_direct


async def _connect(address: str, port: int, bind: str | None) -> socket.socket:
    loop = asyncio.get_running_loop()
    family = family_of(address)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if bind is not None:
            sock.bind((bind, 0))
        await loop.sock_connect(sock, (address, port))
    except BaseException:
        sock.close()
        raise
    return sock


async def _open(address: str, port: int, bind: str | None) -> Opened:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        lambda: InStepProtocol(loop=loop),
        host=address,
        port=port,
        family=family_of(address),
        local_addr=(bind, 0) if bind is not None else None,
    )
    return Opened(transport, protocol)


async def _answers(host: str, port: int, bind: str | None, timeout_s: float) -> bool:
    """Does the proxy itself answer a SOCKS5 greeting (no authentication offered) in time?"""
    writer = None
    try:
        async with asyncio.timeout(timeout_s):
            reader, writer = await asyncio.open_connection(
                host, port, local_addr=(bind, 0) if bind else None
            )
            writer.write(b"\x05\x01\x00")
            await writer.drain()
            reply = await reader.readexactly(2)
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return reply[:1] == b"\x05"


@dataclass(frozen=True, slots=True)
class ProxiedOpener:
    """The way out through a SOCKS5 proxy: opens connections, and says afterwards whether
    the proxy itself went away (a conversation cut off mid-way may be its doing)."""

    open: Opener
    via: str
    proxy: tuple[str, int, str | None]  # its host, port, and the bind address to reach it

    def __call__(
        self, host: str, port: int, timeout_s: float, plain: bool
    ) -> Awaitable[socket.socket | Opened]:
        return self.open(host, port, timeout_s, plain)

    async def gone(self, timeout_s: float) -> EgressError | None:
        """The proxy's failure if it no longer answers at all (an `ssh -D` tunnel that
        dropped, a proxy that stopped); None while it answers: then whatever closed the
        conversation was beyond it."""
        host, port, bind = self.proxy
        if await _answers(host, port, bind, timeout_s):
            return None
        return EgressError(
            EgressFailure.proxy_silent,
            f"SOCKS5 proxy {self.via} went away during the conversation: it no longer answers",
        )


def _socks5_opener(via: str, bind: str | None) -> Opener:
    # Imported here: python_socks costs some 12 ms of start-up, and most sites have no proxy.
    from python_socks import ProxyConnectionError, ProxyError, ProxyTimeoutError, ProxyType
    from python_socks.async_.asyncio import Proxy

    parts = urlsplit(via)
    proxy_host, proxy_port = parts.hostname or "", parts.port or 1080

    async def open_socks5(
        host: str, port: int, timeout_s: float, plain: bool
    ) -> socket.socket | Opened:
        # rdns: the proxy resolves the mail host, as the site's own copier would.
        proxy = Proxy(ProxyType.SOCKS5, proxy_host, proxy_port, rdns=True)
        local = (bind, 0) if bind else None
        try:
            sock: socket.socket = await proxy.connect(
                host, port, timeout=timeout_s, local_addr=local
            )
        except ProxyTimeoutError:
            # Either the proxy is not answering (egress trouble) or it is, and the mail host
            # does not answer from the site (a real finding, e.g. port 25 blocked there).
            if not await _answers(proxy_host, proxy_port, bind, min(timeout_s, 3.0)):
                raise EgressError(
                    EgressFailure.proxy_silent, f"SOCKS5 proxy {via} does not answer"
                ) from None
            raise EgressError(
                EgressFailure.no_connection_from_site,
                f"no connection to {host}:{port} from the site (through {via}) in time: a "
                f"firewall at the site, or its ISP, may block port {port}",
            ) from None
        except ProxyConnectionError as exc:
            raise EgressError(
                EgressFailure.proxy_unreachable, f"SOCKS5 proxy {via} unreachable: {exc}"
            ) from None
        except ProxyError as exc:
            code = getattr(exc, "error_code", None)
            if code in _DESTINATION_REPLIES:
                raise EgressError(
                    EgressFailure.destination_refused,
                    f"{host}:{port}: {_DESTINATION_REPLIES[code]} (SOCKS5 reply {code})",
                ) from None
            login = (
                " (it asks for a username and password: fleet offers none, so only a proxy "
                "without authentication, or an ssh -D tunnel, can be used)"
                if "acceptable authentication" in str(exc)
                else ""
            )
            raise EgressError(
                EgressFailure.proxy_failed, f"SOCKS5 proxy {via} failed: {exc}{login}"
            ) from None
        except OSError as exc:
            raise EgressError(EgressFailure.proxy_error, f"SOCKS5 proxy {via}: {exc}") from None
        sock.setblocking(False)
        return sock

    return ProxiedOpener(open_socks5, via, (proxy_host, proxy_port, bind))
