"""c-ares for the sweep's resolver (fleet.dns) behind one small interface: `query` a name,
and a callback on the loop's thread gets (result, None) or (None, c-ares error number).

Where the loop can watch sockets (Linux and macOS, asyncio's loop or uvloop), c-ares is
driven by the loop itself through its socket-state callback (as aiodns does when c-ares
cannot run a thread of its own): no thread, no hand-off per answer, and no aiodns to import
(some 7 ms a process). Where it cannot (Windows's default proactor loop), aiodns's resolver
drives c-ares from its own thread and hands each answer to the loop; aiodns is imported only
there.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import sys
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import pycares

Callback = Callable[[Any, int | None], None]  # (pycares.DNSResult | None, errno | None)

QUERY_TYPES = {
    name: getattr(pycares, f"QUERY_TYPE_{name}")
    for name in ("A", "AAAA", "CNAME", "MX", "NS", "PTR", "SOA", "SRV", "TXT")
}


class Channel(Protocol):
    _closed: bool

    def query(self, name: str, rtype: str, callback: Callback) -> None:
        """Ask; `callback` is called once, later or (for a name c-ares rejects) at once.
        Raises ValueError for a type or a name c-ares will not send."""

    async def close(self) -> None:
        """Stop the questions in flight (their callbacks are not called) and c-ares."""


def open_channel(
    loop: asyncio.AbstractEventLoop,
    nameservers: Sequence[str],
    timeout_s: float,
    tries: int,
    flags: int,
) -> Channel:
    if sys.platform != "win32" and _loop_watches_sockets(loop):
        return LoopChannel(loop, nameservers, timeout_s, tries, flags)
    return ThreadChannel(loop, nameservers, timeout_s, tries, flags)


def _loop_watches_sockets(loop: asyncio.AbstractEventLoop) -> bool:
    """Can the loop watch a socket for c-ares (`add_reader`)? Not a proactor loop (Windows's
    default), nor one that refuses it: there aiodns's own thread drives c-ares."""
    left, right = socket.socketpair()
    try:
        loop.add_reader(left.fileno(), lambda: None)
    except (NotImplementedError, RuntimeError):
        return False
    else:
        loop.remove_reader(left.fileno())
        return True
    finally:
        left.close()
        right.close()


class LoopChannel:
    """c-ares driven by the event loop: the loop watches c-ares's sockets and calls it back
    when one is ready, and a timer (once a second at most, as aiodns's) lets it time out."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        nameservers: Sequence[str],
        timeout_s: float,
        tries: int,
        flags: int,
    ) -> None:
        self._loop = loop
        self._tick = 1.0 if timeout_s > 1 else (timeout_s or 0.1)
        weak = weakref.ref(self)  # no cycle through the channel's callback

        def state(fd: int, readable: bool, writable: bool) -> None:
            this = weak()
            if this is not None:
                this._socket_state(fd, readable, writable)

        self._channel = pycares.Channel(
            sock_state_cb=state, timeout=timeout_s, tries=tries, flags=flags
        )
        if nameservers:
            self._channel.servers = list(nameservers)
        self._read_fds: set[int] = set()
        self._write_fds: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    def query(self, name: str, rtype: str, callback: Callback) -> None:
        qtype = QUERY_TYPES.get(rtype)
        if qtype is None:
            raise ValueError(f"invalid query type: {rtype}")
        called = False

        def once(result: Any, errno: int | None) -> None:
            nonlocal called
            if not called:
                called = True
                callback(result, errno)

        try:
            self._channel.query(name, qtype, callback=once)
        except pycares.AresError as exc:  # e.g. a malformed name, refused before sending
            # (c-ares may have called back already, before pycares raised: once is enough)
            once(None, exc.args[0] if exc.args else pycares.errno.ARES_EFORMERR)

    def _socket_state(self, fd: int, readable: bool, writable: bool) -> None:
        # Each call says what c-ares now wants watched: a watch it no longer wants goes
        # (a TCP socket is writable until it is connected, then only read: a writer left on
        # would call c-ares on every turn of the loop), and none at all: the socket closed.
        if readable:
            self._loop.add_reader(fd, self._channel.process_fd, fd, pycares.ARES_SOCKET_BAD)
            self._read_fds.add(fd)
        elif fd in self._read_fds:
            self._read_fds.discard(fd)
            self._loop.remove_reader(fd)
        if writable:
            self._loop.add_writer(fd, self._channel.process_fd, pycares.ARES_SOCKET_BAD, fd)
            self._write_fds.add(fd)
        elif fd in self._write_fds:
            self._write_fds.discard(fd)
            self._loop.remove_writer(fd)
        if (readable or writable) and self._timer is None:
            self._timer = self._loop.call_later(self._tick, self._on_tick)

    def _on_tick(self) -> None:
        if self._read_fds or self._write_fds:
            self._channel.process_fd(pycares.ARES_SOCKET_BAD, pycares.ARES_SOCKET_BAD)
            self._timer = self._loop.call_later(self._tick, self._on_tick)
        else:
            self._timer = None

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._channel.cancel()  # the callbacks get ARES_ECANCELLED; fleet.dns ignores them
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for fd in self._read_fds:
            self._loop.remove_reader(fd)
        for fd in self._write_fds:
            self._loop.remove_writer(fd)
        self._read_fds.clear()
        self._write_fds.clear()
        self._channel.close()


class ThreadChannel:
    """aiodns's resolver, whose thread drives c-ares: for a loop that cannot watch sockets."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        nameservers: Sequence[str],
        timeout_s: float,
        tries: int,
        flags: int,
    ) -> None:
        import aiodns  # only here: most loops drive c-ares themselves

        self._resolver = aiodns.DNSResolver(
            nameservers=list(nameservers) or None,
            loop=loop,
            timeout=timeout_s,
            tries=tries,
            flags=flags,
        )
        self._closed = False

    def query(self, name: str, rtype: str, callback: Callback) -> None:
        reply = self._resolver.query_dns(name, rtype)  # ValueError for an unknown type
        reply.add_done_callback(functools.partial(_settled, callback))

    async def close(self) -> None:
        self._closed = True
        await self._resolver.close()


def _settled(callback: Callback, reply: asyncio.Future[Any]) -> None:
    if reply.cancelled():
        return
    exc = reply.exception()
    if exc is None:
        callback(reply.result(), None)
        return
    # aiodns's DNSError carries c-ares's (errno, message)
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    callback(None, pycares.errno.ARES_EBADRESP if code is None else code)
