"""A small authoritative DNS server for the loopback lab (dnslib for the wire format),
serving blocklist zones, MX/TXT/A records, and chosen faults per name or zone: timeouts,
SERVFAIL, REFUSED, truncation, wrong record types, slow answers. It counts every query
it receives, so tests can prove what the probe asked and how often."""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import random
import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import cast

from dnslib import AAAA, MX, QTYPE, RCODE, RR, TXT, A, DNSRecord


def listed_name(ip: str) -> str:
    """The name a blocklist lists an IP under (RFC 5782), written out here on its own so
    that the lab does not share the probe's code it is testing."""
    address = ipaddress.ip_address(ip)
    if address.version == 4:
        return ".".join(reversed(str(address).split(".")))
    nibbles = address.exploded.replace(":", "")
    return ".".join(reversed(nibbles))


# truncate: TC over UDP and no answer over TCP (the answer never arrives);
# truncate_udp: TC over UDP, the full answer over TCP (what a big TXT record gets).
FAULTS = (
    "timeout",
    "servfail",
    "refused",
    "truncate",
    "truncate_udp",
    "wrong_type",
    "echo_client",
)


@dataclass
class QueryLog:
    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    transports: Counter[str] = field(default_factory=Counter)  # "udp" / "tcp"
    in_flight: int = 0  # questions being answered right now (slow answers pile up here)
    max_in_flight: int = 0
    dropped: int = 0  # queries dropped on purpose (LabDns.lose)

    def count(self, name: str, rtype: str = "A") -> int:
        return self.counts[(name.lower().rstrip("."), rtype)]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def names(self) -> set[str]:
        """Every name asked about, whatever the type."""
        return {name for name, _ in self.counts}


class Loss:
    """Which queries a lossy lab server drops (see LabDns.lose)."""

    def __init__(self, share: float, first: int | None, seed: int, under: str | None) -> None:
        self.under = under
        self.share = share
        self.first = first
        self.seed = seed
        self._random = random.Random(seed)  # noqa: S311 - a lab's loss, not a secret

    def drops(self, name: str, rtype: str, asked: int) -> bool:
        """Whether to drop this query, the `asked`-th of (name, rtype)."""
        if self.under is not None and name != self.under and not name.endswith(f".{self.under}"):
            return False
        if self.first is None:
            return self._random.random() < self.share
        if asked > self.first:
            return False
        digest = hashlib.sha256(f"{self.seed}/{name}/{rtype}".encode()).digest()
        return int.from_bytes(digest[:8], "big") < self.share * 2**64


class LabDns:
    """Records by (name, type); faults by name or by zone (a suffix)."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.faults: dict[str, str] = {}
        self.typed_faults: dict[tuple[str, str], str] = {}  # (name or zone, type) -> fault
        self.delays: dict[str, float] = {}
        self.loss: Loss | None = None
        self.log = QueryLog()
        self.host = "127.0.0.1"
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Transport] = set()

    # -- content ----------------------------------------------------------------------

    def add(self, name: str, rtype: str, *values: str) -> None:
        self.records.setdefault((_norm(name), rtype), []).extend(values)

    def remove(self, name: str, rtype: str | None = None) -> None:
        for key in list(self.records):
            if key[0] == _norm(name) and (rtype is None or key[1] == rtype):
                del self.records[key]

    def list_ip(self, zone: str, ip: str, *codes: str, reason: str | None = None) -> None:
        """List an IP on a blocklist zone with return codes and an optional TXT reason."""
        name = f"{listed_name(ip)}.{zone}"
        self.remove(name)
        self.add(name, "A", *codes)
        if reason is not None:
            self.add(name, "TXT", reason.replace("$", ip))

    def delist_ip(self, zone: str, ip: str) -> None:
        self.remove(f"{listed_name(ip)}.{zone}")

    def blocklist(self, zone: str, listed: dict[str, tuple[str, ...]] | None = None) -> None:
        """A working blocklist zone: its RFC 5782 test entry plus the given listings."""
        self.list_ip(zone, "127.0.0.2", "127.0.0.2", reason="RFC 5782 test entry")
        for ip, codes in (listed or {}).items():
            self.list_ip(
                zone, ip, *codes, reason=f"Listed by lab, see https://lab.test/query/ip/{ip}"
            )

    def fault(self, name_or_zone: str, kind: str, rtype: str | None = None) -> None:
        """Misbehave for a name and every name under it; only for `rtype` if given."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULTS}")
        if rtype is None:
            self.faults[_norm(name_or_zone)] = kind
        else:
            self.typed_faults[(_norm(name_or_zone), rtype)] = kind

    def clear_faults(self) -> None:
        self.faults.clear()
        self.typed_faults.clear()

    def delay(self, name_or_zone: str, seconds: float) -> None:
        self.delays[_norm(name_or_zone)] = seconds

    def lose(
        self, share: float, first: int | None = None, seed: int = 0, under: str | None = None
    ) -> None:
        """Drop a share of queries (for names `under` a zone, or all), as a loaded resolver
        or a lossy path does: each query with probability `share`, or (with `first`) the
        first `first` queries of a fixed share of names, so that every name is answered if
        it is asked often enough."""
        if not 0.0 <= share <= 1.0:
            raise ValueError("share is between 0 and 1")
        self.loss = Loss(share, first, seed, _norm(under) if under else None)

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    # -- serving ----------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        for _ in range(20):
            udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            chosen = udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await loop.create_server(lambda: _Tcp(self), host=host, port=chosen)
            except OSError:
                udp.close()
                if port:
                    raise
                continue
            self._udp = udp
            self.host, self.port = host, chosen
            return int(chosen)
        raise OSError("no free port for the lab DNS server")

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            # Clients keep TCP connections open; close them, or wait_closed would wait.
            for connection in list(self._connections):
                connection.close()
            await self._tcp.wait_closed()
            self._tcp = None

    def _match(self, table: dict[str, str] | dict[str, float], name: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts)):
            suffix = ".".join(parts[i:])
            if suffix in table:
                return suffix
        return None

    def _fault_for(self, name: str, rtype: str) -> str | None:
        parts = name.split(".")
        for i in range(len(parts)):
            suffix = ".".join(parts[i:])
            kind = self.typed_faults.get((suffix, rtype)) or self.faults.get(suffix)
            if kind is not None:
                return kind
        return None

    async def answer(self, data: bytes, client: str, over_tcp: bool) -> bytes | None:
        try:
            request = DNSRecord.parse(data)
        except Exception:  # a malformed packet gets no answer, as from many servers
            return None
        question = request.q
        name = _norm(str(question.qname))
        rtype = QTYPE.get(question.qtype, str(question.qtype))
        self.log.counts[(name, rtype)] += 1
        self.log.transports["tcp" if over_tcp else "udp"] += 1
        if self.loss is not None and self.loss.drops(name, rtype, self.log.counts[(name, rtype)]):
            self.log.dropped += 1
            return None
        self.log.in_flight += 1
        self.log.max_in_flight = max(self.log.max_in_flight, self.log.in_flight)
        try:
            delayed = self._match(self.delays, name)
            if delayed is not None:
                await asyncio.sleep(self.delays[delayed])
            return self._reply(request, name, rtype, client, over_tcp)
        finally:
            self.log.in_flight -= 1

    def _reply(
        self, request: DNSRecord, name: str, rtype: str, client: str, over_tcp: bool
    ) -> bytes | None:
        question = request.q
        reply = request.reply()
        kind = self._fault_for(name, rtype)
        if kind == "truncate_udp":
            if not over_tcp:
                reply.header.tc = 1
                return _pack(reply)
            kind = None  # over TCP the whole answer
        if kind == "timeout":
            return None
        if kind == "servfail":
            reply.header.rcode = RCODE.SERVFAIL
            return _pack(reply)
        if kind == "refused":
            reply.header.rcode = RCODE.REFUSED
            return _pack(reply)
        if kind == "truncate":
            if over_tcp:
                return None  # and over TCP, nothing either: the answer never arrives
            reply.header.tc = 1
            return _pack(reply)
        if kind == "wrong_type":
            # An answer of another type than asked: TXT for anything, A for TXT.
            if rtype == "TXT":
                reply.add_answer(RR(question.qname, QTYPE.A, rdata=A("127.0.0.2"), ttl=60))
            else:
                reply.add_answer(
                    RR(question.qname, QTYPE.TXT, rdata=TXT("not the type you asked"), ttl=60)
                )
            return _pack(reply)
        if kind == "echo_client" and rtype == "A":
            reply.add_answer(RR(question.qname, QTYPE.A, rdata=A(client), ttl=0))
            return _pack(reply)
        values = self.records.get((name, rtype))
        if values:
            for value in values:
                reply.add_answer(
                    RR(question.qname, QTYPE.reverse[rtype], rdata=_rdata(rtype, value), ttl=60)
                )
        elif not any(key[0] == name for key in self.records):
            reply.header.rcode = RCODE.NXDOMAIN
        return _pack(reply)


def _pack(reply: DNSRecord) -> bytes:
    return bytes(reply.pack())


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def _rdata(rtype: str, value: str) -> A | AAAA | MX | TXT:
    if rtype == "A":
        return A(value)
    if rtype == "AAAA":
        return AAAA(value)
    if rtype == "MX":
        preference, _, exchange = value.partition(" ")
        return MX(exchange, int(preference))
    if rtype == "TXT":
        # Strings over 255 bytes go out as several character-strings, as in real zones.
        raw = value.encode()
        return TXT([raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""])
    raise ValueError(f"the lab DNS server does not serve {rtype}")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: LabDns) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        answer = await self.server.answer(data, str(addr[0]), over_tcp=False)
        if answer is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(answer, addr)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._connections.discard(self.transport)
        for task in self.tasks:
            task.cancel()


class _Tcp(asyncio.Protocol):
    def __init__(self, server: LabDns) -> None:
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server._connections.add(self.transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # A client may send several queries on one connection, even in one segment.
        while len(self.buffer) >= 2:
            (length,) = struct.unpack("!H", self.buffer[:2])
            if len(self.buffer) < 2 + length:
                break
            message, self.buffer = self.buffer[2 : 2 + length], self.buffer[2 + length :]
            task = asyncio.ensure_future(self._reply(message))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _reply(self, message: bytes) -> None:
        assert self.transport is not None  # noqa: S101
        peer = self.transport.get_extra_info("peername")
        answer = await self.server.answer(message, str(peer[0]) if peer else "?", over_tcp=True)
        if answer is None:
            self.transport.close()
        elif not self.transport.is_closing():
            self.transport.write(struct.pack("!H", len(answer)) + answer)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.server._connections.discard(self.transport)
        for task in self.tasks:
            task.cancel()
