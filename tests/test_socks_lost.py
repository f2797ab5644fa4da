"""A site's SOCKS5 proxy (or `ssh -D` tunnel) that goes away in the middle of a conversation
is the site's egress failing, not the mail server closing the connection: a real
microsocks, killed (by its PID) while a loopback mail server takes its time over RCPT."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleet.lab.dns import LabDns

from .conftest import eventually, free_port, require_binary, run_fleet_async, wait_for_port
from .hostile import lab_inventory
from .inventory_builder import device, site


class SlowRcptServer:
    """Answers like a mail server, but holds RCPT until the client hangs up (or hangs up
    itself at RCPT)."""

    def __init__(self, *, hang_up: bool = False) -> None:
        self.hang_up = hang_up  # hang up at RCPT instead
        self.rcpt_seen = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 mail.example ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb == b"EHLO":
                    writer.write(b"250-mail.example\r\n250 8BITMIME\r\n")
                elif verb == b"RCPT":
                    self.rcpt_seen += 1
                    if self.hang_up:
                        return
                    await reader.read()  # no answer until the other end is gone
                    return
                elif verb == b"QUIT":
                    writer.write(b"221 bye\r\n")
                    return
                else:
                    writer.write(b"250 ok\r\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
def microsocks() -> Iterator[Callable[..., tuple[str, subprocess.Popen[bytes]]]]:
    binary = require_binary("microsocks")
    started: list[subprocess.Popen[bytes]] = []

    def start(*login: str) -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        process = subprocess.Popen(
            [binary, "-i", "127.0.0.1", "-p", str(port), *login],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        wait_for_port(port, "127.0.0.1")
        return f"socks5://127.0.0.1:{port}", process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_a_proxy_that_dies_mid_conversation_is_the_egress_not_the_server(
    microsocks: Callable[..., tuple[str, subprocess.Popen[bytes]]],
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a site that leaves through microsocks, to a server slow to answer RCPT
    server = SlowRcptServer()
    await server.start()
    via, proxy = microsocks()
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=3, command_s=20, site_s=40).add(
            site(
                "tunnel",
                device(server.port, security="none", ident="mfp"),
                egress={"via": via},
            )
        )
    )
    try:
        sweep = asyncio.create_task(
            run_fleet_async("sweep", "-i", str(inventory), "--no-store", "--format", "json")
        )
        # When the proxy goes away while the server is deciding about RCPT
        await eventually(lambda: server.rcpt_seen > 0)
        proxy.kill()
        run = await sweep
    finally:
        await server.stop()

    # Then the finding is the site's egress, not the mail server's protocol
    found = json.loads(run.stdout)["sites"][0]["devices"][0]
    assert found["category"] == "egress_unreachable", found
    assert f"SOCKS5 proxy {via} went away during the conversation" in found["finding"]
    assert "tell the server's administrator" not in found["remediation"]
    assert found["verdict"] == "unknown"  # nothing known about RCPT: not a critical finding


async def test_a_server_that_hangs_up_through_a_live_proxy_is_still_the_servers(
    microsocks: Callable[..., tuple[str, subprocess.Popen[bytes]]],
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given the same site, whose proxy stays up, and a server that hangs up at RCPT
    server = SlowRcptServer(hang_up=True)
    await server.start()
    via, _ = microsocks()
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=3, command_s=20, site_s=40).add(
            site(
                "tunnel",
                device(server.port, security="none", ident="mfp"),
                egress={"via": via},
            )
        )
    )
    try:
        run = await run_fleet_async("sweep", "-i", str(inventory), "--no-store", "--format", "json")
    finally:
        await server.stop()

    # Then it is the server closing the connection, as before
    found = json.loads(run.stdout)["sites"][0]["devices"][0]
    assert found["category"] == "protocol_error", found
    assert "the server closed the connection at rcpt" in found["finding"]


async def test_a_proxy_that_asks_for_a_login_says_so(
    microsocks: Callable[..., tuple[str, subprocess.Popen[bytes]]],
    lab_dns: LabDns,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a site whose proxy requires a username and password (fleet sends none)
    server = SlowRcptServer()
    await server.start()
    via, _ = microsocks("-u", "fleet", "-P", "not-in-the-inventory")
    inventory = write_inventory(
        lab_inventory(lab_dns, connect_s=3, command_s=5, site_s=20).add(
            site("tunnel", device(server.port, security="none", ident="mfp"), egress={"via": via})
        )
    )
    try:
        run = await run_fleet_async("sweep", "-i", str(inventory), "--no-store", "--format", "json")
    finally:
        await server.stop()

    found = json.loads(run.stdout)["sites"][0]["devices"][0]
    assert found["category"] == "egress_unreachable", found
    assert "it asks for a username and password: fleet offers none" in found["finding"]
