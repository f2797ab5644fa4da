"""`fleet scan` shows the full transcript: every line of a long multi-line reply, and every
character of a long one (Microsoft's 5.7.606 with its delisting address and server id),
wrapped to be read, never cut."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, banned_ip_reply

from .conftest import run_fleet_async
from .inventory_builder import InventoryBuilder, device, lab_defaults

SITE_IP = "127.0.0.61"
POLICY = [f"this is line {n} of the relay's policy notice" for n in range(1, 20)]


class LongRefusal:
    """An MX that refuses every recipient with twenty lines, the last one 5.7.606's."""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, *args: Any) -> str:
        last = banned_ip_reply(SITE_IP).removeprefix("550 ")
        return "\r\n".join([*(f"550-{line}" for line in POLICY), f"550 {last}"])


async def test_scan_shows_every_line_and_character_of_a_long_reply(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    server = LabSmtpServer(
        LongRefusal(), hostname="mx.contoso.test", tls_context=certs.server_context()
    )
    await server.start()
    try:
        built = InventoryBuilder(
            defaults=lab_defaults(lab_dns, connect_s=5, command_s=5, site_s=20)
        )
        built.site("long", device(server.port, str(certs.ca_file)), egress={"bind": SITE_IP})
        inventory = write_inventory(built.yaml())
        scan = await run_fleet_async(
            "scan", "long", "-i", str(inventory), "--db", str(tmp_path / "fleet.db"), "-q"
        )
    finally:
        await server.stop()

    assert scan.code == 2, scan.stderr
    transcript = scan.stdout.split("\n\n")[0]  # then come the table and what to do
    assert transcript.startswith("long: mfp -> ")
    shown = " ".join(transcript.split())  # the lines as wrapped, run together again
    for line in POLICY:
        assert line in shown
    assert banned_ip_reply(SITE_IP).removeprefix("550 5.7.606 ") in shown
    assert "…" not in transcript
    replies = [line for line in transcript.splitlines() if line.lstrip().startswith("<- ")]
    assert max(len(line) for line in replies) <= 120
