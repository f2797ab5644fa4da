"""The direct way out against a real loopback server, on asyncio's loop and on uvloop: a
plain start gets the loop's own connection (`Opened`, greeting already being read), implicit
TLS a connected socket; both bind the site's source address and name the same failures."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from fleet.dns import Dns
from fleet.egress import Opened, make_opener
from fleet.errors import EgressError, EgressFailure
from fleet.inventory import SiteEgress

SOURCE = "127.0.0.9"
NOT_HERE = "10.255.255.1"  # not on this machine: the bind fails, nothing is sent

RUNNERS: dict[str, Callable[[Coroutine[Any, Any, None]], None]] = {
    "asyncio": asyncio.run,
    "uvloop": uvloop.run,
}


async def _greeting_server() -> asyncio.Server:
    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 lab ready\r\n")
        writer.close()
        await writer.wait_closed()

    return await asyncio.start_server(greet, "127.0.0.1", 0)


async def _ways_out() -> None:
    server = await _greeting_server()
    port = server.sockets[0].getsockname()[1]
    opener = make_opener(SiteEgress(bind=SOURCE), Dns())
    async with server:
        opened = await opener("127.0.0.1", port, 2.0, True)
        assert isinstance(opened, Opened)
        assert opened.transport.get_extra_info("sockname")[0] == SOURCE
        assert opened.transport.get_extra_info("peername") == ("127.0.0.1", port)
        greeting = await opened.protocol.read_response(timeout=2.0)
        assert (greeting.code, greeting.message) == (220, "lab ready")
        opened.transport.close()

        sock = await opener("127.0.0.1", port, 2.0, False)  # implicit TLS: a socket
        assert isinstance(sock, socket.socket)
        assert sock.getsockname()[0] == SOURCE
        sock.close()

        for plain in (True, False):
            with pytest.raises(EgressError) as caught:
                await make_opener(SiteEgress(bind=NOT_HERE), Dns())("127.0.0.1", port, 2.0, plain)
            assert caught.value.failure is EgressFailure.bind_address_not_here
            with pytest.raises(EgressError) as caught:
                await opener("::1", port, 2.0, plain)
            assert caught.value.failure is EgressFailure.no_address_for_bind

    for plain in (True, False):  # nothing listens any more: refused, as before
        with pytest.raises(ConnectionRefusedError):
            await opener("127.0.0.1", port, 2.0, plain)
    await asyncio.sleep(0.05)  # let the closed transports go before the loop closes


@pytest.mark.parametrize("loop", sorted(RUNNERS))
def test_direct_way_out(loop: str) -> None:
    RUNNERS[loop](_ways_out())
