"""Replay of the reply corpus (tests/corpus/): a loopback SMTP server that answers each entry's
words at that entry's stage, and an inventory with one site per entry.

The server picks the entry from the client's source address (each site sends from its own
127.0.x.y through `egress.bind`), plays an ordinary server up to the entry's stage (STARTTLS
with the lab CA and a login where the stage is AUTH), and answers there with the entry's code
and text. A refusal in the greeting is followed by what a real server does next: it waits for
QUIT (5xx) or closes the channel (421).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from fleet.classify import Context, provider_of
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.results import Mode, Stage

from .hostile import Conn, Handler, dialogue, publish_contoso, reply
from .inventory_builder import InventoryBuilder, device, lab_defaults

CORPUS = Path(__file__).resolve().parent / "corpus"
PASSWORD_ENV = "FLEET_REPLAY_PASSWORD"
# The name copiers typically give: a bare device name (what `helo_rejected` is about).
EHLO_NAME = "mfp-3f"

# The verb whose answer is the entry's reply, by stage (the banner has none).
_VERBS = {
    "ehlo": "EHLO",
    "starttls": "STARTTLS",
    "auth": "AUTH",
    "mail": "MAIL",
    "rcpt": "RCPT",
    "data": "DATA",
}


@dataclass(frozen=True)
class Entry:
    id: str
    system: str
    stage: str
    code: int
    text: str
    category: str
    about_site_ip: bool | None = None

    @property
    def wire(self) -> bytes:
        """The reply as a server sends it (the corpus keeps it on one line)."""
        return f"{self.code} {self.text}\r\n".encode()

    @property
    def banner(self) -> bytes:
        """What a server of this system says when it greets (the classifier may read it)."""
        system = self.system.lower()
        if system in ("microsoft365", "microsoft", "outlook", "exchange"):
            host = "BN8NAM11FT012.mail.protection.outlook.com"
            return f"220 {host} Microsoft ESMTP MAIL Service ready\r\n".encode()
        if system in ("google", "gmail"):
            return b"220 mx.google.com ESMTP a1-20020a05 - gsmtp\r\n"
        return f"220 mx.{system or 'unknown'}.test ESMTP\r\n".encode()


def load(name: str) -> list[Entry]:
    path = CORPUS / f"{name}.yaml"
    raw: list[dict[str, Any]] = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    return [
        Entry(
            id=str(e["id"]),
            system=str(e.get("system", "")),
            stage=str(e["stage"]),
            code=int(e["code"]),
            text=str(e["text"]),
            category=str(e["category"]),
            about_site_ip=e.get("about_site_ip"),
        )
        for e in raw
    ]


def replay_context(entry: Entry, text: str) -> Context:
    """The context a reply of `entry` (worded as `text`) is read in when replayed: what the
    replay's copier sent and the greeting it got at that stage."""
    stage = Stage(entry.stage)
    said = [] if stage is Stage.banner else [entry.banner.decode()[4:].strip()]
    said.append(text)
    return Context(
        mode=Mode.submission if stage in (Stage.auth, Stage.starttls) else Mode.direct_send,
        host="localhost",
        port=25,
        authenticated=stage is Stage.auth,
        ip="127.0.0.1",
        username="replay@contoso.test" if stage is Stage.auth else None,
        sender="scanner@contoso.test",
        provider=provider_of("localhost", said),
        ehlo_name=EHLO_NAME,
    )


def address(index: int) -> str:
    """The source address of the site that replays entry `index`."""
    return f"127.0.{5 + index // 250}.{index % 250 + 1}"


def _auth_then(answer: bytes) -> Handler:
    """Take the whole AUTH exchange (PLAIN with or without an initial response, LOGIN), then
    answer with the entry's reply."""

    async def handler(conn: Conn, line: bytes) -> bool:
        parts = line.split()
        if len(parts) >= 2 and parts[1].upper() == b"LOGIN":
            if len(parts) == 2:
                await conn.send(b"334 VXNlcm5hbWU6\r\n")
                await conn.line()
            await conn.send(b"334 UGFzc3dvcmQ6\r\n")
            await conn.line()
        elif len(parts) == 2:
            await conn.send(b"334 \r\n")
            await conn.line()
        await conn.send(answer)
        return True

    return handler


async def _hang_up(conn: Conn, line: bytes) -> bool:
    return False


@dataclass
class ReplayServer:
    """One loopback server for every entry, chosen by the client's source address."""

    entries: list[Entry]
    certs: LabCertificates
    host: str = "127.0.0.1"
    port: int = 0
    lines: list[bytes] = field(default_factory=list)  # every command line (Conn records them)
    quits_after_greeting: set[str] = field(default_factory=set)  # entries whose client said QUIT
    _server: asyncio.Server | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _context: ssl.SSLContext | None = None

    def context(self, kind: str) -> ssl.SSLContext:
        if self._context is None:
            self._context = self.certs.server_context()
        return self._context

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=65536)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    def entry_for(self, peer: str) -> Entry:
        for index, entry in enumerate(self.entries):
            if address(index) == peer:
                return entry
        raise LookupError(f"no corpus entry sends from {peer}")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        conn = Conn(self, reader, writer)  # type: ignore[arg-type]  # Conn needs lines + context
        try:
            await self._play(conn, self.entry_for(conn.peer))
        except (ConnectionError, ssl.SSLError, OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._tasks.discard(task)
            with contextlib.suppress(Exception):
                writer.transport.abort()

    async def _play(self, conn: Conn, entry: Entry) -> None:
        if entry.stage == "banner":
            await conn.send(entry.wire)
            if entry.code == 421:
                return  # RFC 5321 3.8: 421 closes the channel
            line = await conn.line()  # RFC 5321 3.1: after a 554 greeting, wait for QUIT
            if line is not None and line.strip().upper() == b"QUIT":
                self.quits_after_greeting.add(entry.id)
                await conn.send(b"221 2.0.0 Bye\r\n")
            return
        verb = _VERBS[entry.stage]
        handler = _auth_then(entry.wire) if verb == "AUTH" else reply(entry.wire)
        on: dict[str, Handler] = {verb: handler}
        if entry.code == 421:
            # 421 closes the channel after the reply.
            async def then_close(conn: Conn, line: bytes, answer: Handler = handler) -> bool:
                await answer(conn, line)
                return False

            on[verb] = then_close
        tls = "valid" if entry.stage in ("starttls", "auth") else None
        await dialogue(conn, banner=entry.banner, tls=tls, on=on)


def replay_device(entry: Entry, index: int, port: int, ca_file: str) -> dict[str, Any]:
    """The copier that meets the entry at its stage: Direct Send for the envelope stages
    (where DIRECT_SEND_DIRTY_IP is at stake), a login over verified STARTTLS for AUTH, and
    STARTTLS for a STARTTLS refusal."""
    smtp: dict[str, Any] = {"ehlo_name": EHLO_NAME}
    if entry.stage == "auth":
        login = {"username": f"replay-{index}@contoso.test", "password_env": PASSWORD_ENV}
        smtp.update(mode="submission", auth=login)
    elif entry.stage != "starttls":
        smtp["mode"] = "direct_send"
    tls = entry.stage in ("starttls", "auth")
    return device(
        port,
        ca_file if tls else None,
        host="localhost",
        security="starttls" if tls else "none",
        to="alice@contoso.test",
        **smtp,
    )


def inventory(entries: list[Entry], dns: LabDns, port: int, ca_file: str) -> InventoryBuilder:
    """One site per entry, each sending from its own address."""
    publish_contoso(dns)
    built = InventoryBuilder(
        lab_defaults(dns, connect_s=5, command_s=5, site_s=30, dns_timeout_s=2)
    )
    for index, entry in enumerate(entries):
        mfp = replay_device(entry, index, port, ca_file)
        built.site(f"e{index:03d}", mfp, client="Corpus", name=entry.id, bind=address(index))
    return built
