"""The central server (`fleet serve`): agents POST their sealed results, it checks each with
its site's key, stores it in the history, and shows the latest result of every site.

Starlette on uvicorn. The store is used from two threads of our own, each with its own
SQLite connection: one writes (SQLite takes one writer at a time anyway, and one thread
makes "already stored?" and "store it" a single step), one reads for the page. The event
loop only receives bodies, and at most `max_inflight` of them are held at once (and as many
again from pushes that prove their site's key before the body, see PUSH_HEADER): the other
agents wait in their sockets, so a night's 300 pushes are never in memory together. The
pushes that arrive while the writer stores others are stored next, together, in one
transaction (one commit, not one a push); each push is all of it or nothing. A result is
answered 201 only after its transaction committed; a push cut off mid-body or a central
killed mid-request stores nothing, and the agent keeps its file until it sees 2xx.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleet import __version__
from fleet.agent import PUSH_HEADER, SiteKeys, read_agent_result
from fleet.errors import IngestError, InventoryError, ListenError, Refusal, StoreError
from fleet.inventory import Inventory, load_inventory
from fleet.net import split_host_port
from fleet.report.html import TREND_LENGTH, content_security_policy, render_html
from fleet.report.sanitize import for_terminal
from fleet.results import SiteResult, SweepInfo, SweepResult, SweepView, Verdict
from fleet.store import SiteHistoryRow, Store

RESULTS_PATH = "/api/v1/results"
DEFAULT_MAX_INFLIGHT = 16
BODY_TIMEOUT_S = 60.0  # an agent that stops sending mid-body does not hold a slot for ever
BODY_TOTAL_S = 600.0  # nor one that sends a byte a minute
PAGE_REFRESH_S = 60
HEALTH_WAIT_MS = 1000
STALE_AFTER = timedelta(hours=48)  # a site's latest result older than this is stale
PAGE_MAX_AGE_S = 600  # the page is drawn again this often anyway: results go stale

access_log = logging.getLogger("fleet.access")
log = logging.getLogger("fleet.serve")
T = TypeVar("T")

STATUS_FOR_REFUSAL = {
    Refusal.invalid: 422,
    Refusal.unsigned: 401,
    Refusal.bad_signature: 401,
    Refusal.wrong_site: 403,
    Refusal.unknown_site: 403,
}


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT, with an IPv6 host in brackets ([::1]:8025)."""
    if not value.startswith("[") and value.count(":") > 1:
        raise ListenError(f"--listen {value!r}: put an IPv6 address in brackets, e.g. [::1]:8025")
    try:
        host, port = split_host_port(value)
    except ValueError:
        host, port = "", None
    if not host or port is None or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"--listen {value!r}: expected HOST:PORT, e.g. 127.0.0.1:8025")
    return host, int(port)


@dataclass(frozen=True)
class Outcome:
    """What the central answers one push, and the line its access log gets."""

    status: int
    body: dict[str, str]
    note: str


@dataclass
class Central:
    """The server's state: the inventory and site keys, the store's two threads, and the
    page, cached until the store changes."""

    inventory: Inventory
    db_path: str
    keys: SiteKeys
    max_body_bytes: int
    max_inflight: int = DEFAULT_MAX_INFLIGHT
    body_timeout_s: float = BODY_TIMEOUT_S
    body_total_s: float = BODY_TOTAL_S
    inventory_file: str | None = None  # read again when it changes (None: never)
    _watched: WatchedInventory | None = field(init=False, default=None)
    _writer: ThreadPoolExecutor = field(init=False)
    _reader: ThreadPoolExecutor = field(init=False)
    _stores: dict[str, Store] = field(init=False, default_factory=dict)
    _slots: asyncio.Semaphore = field(init=False)
    _vouched: asyncio.Semaphore = field(init=False)
    _page: tuple[tuple[int, int, int], str] | None = field(init=False, default=None)
    # Pushes read whole and waiting for the writer, and the task that hands them over.
    _waiting: list[tuple[bytes, str, asyncio.Future[Outcome]]] = field(
        init=False, default_factory=list
    )
    _committer: asyncio.Task[None] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="fleet-store-writer")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="fleet-store-reader")
        self._slots = asyncio.Semaphore(self.max_inflight)
        self._vouched = asyncio.Semaphore(self.max_inflight)
        if self.inventory_file is not None:
            self._watched = WatchedInventory(self.inventory_file, self.inventory)

    def _inventory(self) -> tuple[int, Inventory]:
        """The inventory as its file is now, and how many times it was read again."""
        if self._watched is None:
            return 0, self.inventory
        return self._watched.current()

    # -- the ASGI application ----------------------------------------------------------

    def app(self) -> ASGIApp:
        routes = [
            Route(RESULTS_PATH, self._post_result, methods=["POST"]),
            Route("/healthz", self._healthz, methods=["GET"]),
            Route("/", self._report_page, methods=["GET"]),
        ]
        return AccessLog(Starlette(routes=routes, lifespan=self._lifespan))

    @asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        # Each thread opens its own connection: an sqlite3 connection stays in its thread.
        await self._on(self._writer, self._open, "writer")
        await self._on(self._reader, self._open, "reader")
        try:
            yield
        finally:
            await self._on(self._writer, self._close, "writer")
            await self._on(self._reader, self._close, "reader")
            self._writer.shutdown()
            self._reader.shutdown()

    def _open(self, role: str) -> None:
        self._stores[role] = Store(self.db_path)

    def _close(self, role: str) -> None:
        store = self._stores.pop(role, None)
        if store is not None:
            store.close()

    async def _on(self, thread: ThreadPoolExecutor, func: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(thread, func, *args)

    # -- POST /api/v1/results ----------------------------------------------------------

    async def _post_result(self, request: Request) -> Response:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._answer(request, self._too_large())
        # A push that proves its site's key takes one of `max_inflight` slots kept for such
        # pushes; one that does not (an agent older than the header, or a stranger who may
        # send nothing) one of as many others: strangers never hold the agents' slots.
        vouched = self.keys.vouches(request.headers.get(PUSH_HEADER, ""), time.time())
        async with self._vouched if vouched else self._slots:
            try:
                async with asyncio.timeout(self.body_total_s):
                    body = await self._read_body(request)
            except ClientDisconnect:
                request.state.note = "the agent went away mid-body; nothing stored"
                return Response(status_code=400)
            except TimeoutError:
                outcome = Outcome(
                    408,
                    {"status": "refused", "reason": "the body did not arrive in time"},
                    "body timed out; nothing stored",
                )
                return self._answer(request, outcome, close=True)
            if body is None:
                return self._answer(request, self._too_large(), close=True)
            outcome = await self._stored(body, peer_address(request.client))
        return self._answer(request, outcome)

    async def _stored(self, body: bytes, peer: str) -> Outcome:
        """Hand a push to the writer. The pushes that arrive while it writes a group are its
        next group: one transaction, one commit for all of them (at most 2 x `max_inflight`,
        since each holds its slot until answered); one push alone waits for nothing."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._waiting.append((body, peer, future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_waiting())
        return await future

    async def _commit_waiting(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    outcomes = await self._on(
                        self._writer, self._accept_group, [(body, peer) for body, peer, _ in group]
                    )
                except BaseException as exc:  # a bug: every push of the group meets it
                    for *_, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    if not isinstance(exc, Exception):
                        raise
                    continue
                for (*_, future), outcome in zip(group, outcomes, strict=True):
                    if not future.done():  # else its request was cancelled: stored anyway
                        future.set_result(outcome)
        finally:
            self._committer = None
            left, self._waiting = self._waiting, []  # stopped by a cancel (shutdown)
            for *_, future in left:
                future.cancel()  # no request waits for ever on a writer that is gone

    async def _read_body(self, request: Request) -> bytes | None:
        """The whole body, or None as soon as it passes the size limit; TimeoutError when
        nothing of it arrives for `body_timeout_s` (a slow but steady body is read)."""
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.body_timeout_s) as stall:
            async for chunk in request.stream():
                stall.reschedule(loop.time() + self.body_timeout_s)
                size += len(chunk)
                if size > self.max_body_bytes:
                    return None
                chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self) -> Outcome:
        reason = f"the result is larger than this central takes ({self.max_body_bytes} bytes)"
        return Outcome(413, {"status": "refused", "reason": reason}, "too large; nothing stored")

    def _accept_group(self, pushes: list[tuple[bytes, str]]) -> list[Outcome]:
        """Check and store pushes that arrived together (on the writer thread): each push
        all of it or nothing, all of them in one transaction, every answer given after its
        commit. A push the store refuses is undone alone (Store.save's savepoint). A group
        that fails once begun (a full disk) is stored push by push, as when each push was
        a commit of its own, so that the store keeps what it can still take; a push not
        stored is answered 503 (its agent keeps the file and sends it again)."""
        checked = [(self._checked(body), peer) for body, peer in pushes]  # before the lock
        sound = sum(isinstance(item, SweepResult) for item, _ in checked)
        try:
            return self._store_group(checked)
        except _GroupFailed as failed:
            log.error("cannot store %d push(es): %s", sound, failed.error)
            if not failed.begun or sound < 2:  # e.g. locked: one push alone would wait too
                return [_unstored(item, failed.error) for item, _ in checked]
        return [self._store_alone(item, peer) for item, peer in checked]

    def _store_alone(self, item: SweepResult | Outcome, peer: str) -> Outcome:
        if isinstance(item, Outcome):
            return item
        try:
            return self._store_group([(item, peer)])[0]
        except _GroupFailed as failed:
            return _unwritable(failed.error)

    def _store_group(self, checked: list[tuple[SweepResult | Outcome, str]]) -> list[Outcome]:
        """Store the checked results in one transaction; _GroupFailed when it fails."""
        store = self._stores["writer"]
        outcomes: list[Outcome] = []
        begun = False
        try:
            with store.group():
                begun = True
                for item, peer in checked:
                    if isinstance(item, Outcome):  # refused by the checks
                        outcomes.append(item)
                        continue
                    outcomes.append(self._store(store, item, peer))
                    if not store.in_group:  # SQLite rolled the whole group back
                        raise StoreError(f"the store {store.path} undid the transaction")
        except StoreError as exc:
            raise _GroupFailed(exc, begun=begun) from None
        return outcomes

    def _checked(self, body: bytes) -> SweepResult | Outcome:
        """The push's result, read and checked (signature, sites), or its refusal."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            reason = "push: not UTF-8 JSON"
            return Outcome(422, {"status": "refused", "reason": reason}, reason)
        try:
            return read_agent_result(text, "push", self._inventory()[1], self.keys)
        except IngestError as exc:
            status = STATUS_FOR_REFUSAL[exc.refusal]
            return Outcome(status, {"status": "refused", "reason": str(exc)}, str(exc))
        except Exception:  # a bug met by this push alone: it must not sink its group
            log.exception("cannot check a push")
            return _internal_error()

    def _store(self, store: Store, result: SweepResult, peer: str) -> Outcome:
        """Store one checked result in the group's transaction, or say why it is not."""
        sweep_id = result.sweep.id
        sites = ",".join(site.site for site in result.sites)
        try:
            if store.has(sweep_id):
                stored, _, _ = store.info(sweep_id)
                if stored.digest != result.sweep.digest:
                    reason = f"push: another result with sweep id {sweep_id} is already stored"
                    return Outcome(422, {"status": "refused", "reason": reason}, reason)
                body_out = {"status": "already_stored", "sweep": sweep_id}
                return Outcome(200, body_out, f"sweep {sweep_id} ({sites}) already stored")
            sweep = result.sweep.model_copy(update={"origin": f"push:{peer}"})
            store.save(result.model_copy(update={"sweep": sweep}))
        except StoreError as exc:
            log.error("cannot store sweep %s: %s", sweep_id, exc)
            return _unwritable(exc)
        except Exception:  # a bug met by this push alone (its savepoint undid its rows)
            log.exception("cannot store sweep %s", sweep_id)
            return _internal_error()
        return Outcome(
            201, {"status": "stored", "sweep": sweep_id}, f"stored sweep {sweep_id} ({sites})"
        )

    def _answer(self, request: Request, outcome: Outcome, *, close: bool = False) -> Response:
        request.state.note = outcome.note
        headers = {"Connection": "close"} if close else None
        return JSONResponse(outcome.body, status_code=outcome.status, headers=headers)

    # -- GET /healthz ------------------------------------------------------------------

    async def _healthz(self, request: Request) -> Response:
        problem = await self._on(self._writer, self._writable)
        if problem is None:
            return JSONResponse({"status": "ok"})
        request.state.note = problem
        return JSONResponse({"status": "error", "reason": problem}, status_code=503)

    def _writable(self) -> str | None:
        """None when a write transaction can be opened on the store, else why not."""
        store = self._stores["writer"]
        if not os.access(store.path, os.W_OK):
            return f"the store {store.path} is not writable"
        # A health check answers within its prober's timeout: wait for a writer at most 1 s.
        waited_ms = int(store.db.execute("PRAGMA busy_timeout").fetchone()[0])
        store.db.execute(f"PRAGMA busy_timeout = {HEALTH_WAIT_MS}")
        try:
            store.db.execute("BEGIN IMMEDIATE")
            store.db.execute("ROLLBACK")
        except Exception as exc:  # any failure means "not writable", and says why
            return f"the store cannot be written: {exc}"
        finally:
            store.db.execute(f"PRAGMA busy_timeout = {waited_ms}")
        return None

    # -- GET / -------------------------------------------------------------------------

    async def _report_page(self, request: Request) -> Response:
        page = await self._on(self._reader, self._current_page)
        headers = {
            "Refresh": str(PAGE_REFRESH_S),
            "Content-Security-Policy": content_security_policy(),
            "Cache-Control": "no-store",
        }
        return HTMLResponse(page, headers=headers)

    def _current_page(self) -> str:
        """The page, rendered again only when the store changed since (a push, or an
        ingest or sweep writing to the same store: SQLite's data_version sees them all)."""
        store = self._stores["reader"]
        generation, inventory = self._inventory()
        version = (
            int(store.db.execute("PRAGMA data_version").fetchone()[0]),
            int(time.time() // PAGE_MAX_AGE_S),
            generation,
        )
        if self._page is None or self._page[0] != version:
            page = render_html(
                latest_view(inventory, store),
                history=lambda site: _before_latest(store, site),
                title="fleet: the latest result of every site",
            )
            self._page = (version, page)
        return self._page[1]


class WatchedInventory:
    """The central's inventory, read again when its file changes (a site added is taken
    without a restart). A file that cannot be read or is not valid keeps the inventory the
    central has, and the log says why. Used from the writer and reader threads."""

    def __init__(self, path: str, inventory: Inventory) -> None:
        self.path = path
        self._inventory = inventory
        self._stamp = self._stat()
        self._generation = 0
        self._lock = threading.Lock()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            found = os.stat(self.path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_size, found.st_ino

    def current(self) -> tuple[int, Inventory]:
        """How many times the file was read again, and the inventory."""
        stamp = self._stat()
        with self._lock:
            if stamp is not None and stamp != self._stamp:
                self._stamp = stamp
                self._read_again()
            return self._generation, self._inventory

    def _read_again(self) -> None:
        try:
            inventory = load_inventory(self.path)
        except InventoryError as exc:
            why = "; ".join(str(error) for error in exc.errors[:5]) or str(exc)
            log.error("%s changed: the central keeps the inventory it has: %s", self.path, why)
            return
        except OSError as exc:
            log.error("%s changed: the central keeps the inventory it has: %s", self.path, exc)
            return
        self._inventory = inventory
        self._generation += 1
        log.warning(
            "%s changed: read the inventory again: %d site(s)", self.path, len(inventory.sites)
        )


class _GroupFailed(Exception):
    """A group of pushes not stored: why, and whether its transaction had begun."""

    def __init__(self, error: StoreError, *, begun: bool) -> None:
        super().__init__(str(error))
        self.error, self.begun = error, begun


def _unstored(item: SweepResult | Outcome, error: StoreError) -> Outcome:
    """A push's answer when its group was not stored: its refusal, else 503."""
    return item if isinstance(item, Outcome) else _unwritable(error)


def _internal_error() -> Outcome:
    reason = "the central failed on this push; try again later"
    return Outcome(500, {"status": "error", "reason": reason}, "internal error; nothing stored")


def _unwritable(exc: StoreError) -> Outcome:
    reason = "the store cannot be written; try again later"
    return Outcome(503, {"status": "error", "reason": reason}, f"store error: {exc}")


def _before_latest(store: Store, site: str) -> list[SiteHistoryRow]:
    """The site's trend without the sweep of its latest result: the page shows that one."""
    latest = store.latest_site_sweep(site)
    rows = store.site_history(site, TREND_LENGTH + 1)
    return [row for row in rows if row.sweep_id != latest][:TREND_LENGTH]


def latest_view(inventory: Inventory, store: Store) -> SweepView:
    """The latest stored result of every inventory site, as one sweep for the reports; a
    site never heard from is listed as missing. Sites are read one at a time."""
    site_ids = [site.id for site in inventory.sites]
    counts: dict[Verdict, int] = {}
    missing: list[str] = []
    stale: list[str] = []
    now = datetime.now(UTC)
    for site_id in site_ids:
        latest = store.latest_site(site_id)
        if latest is None:
            missing.append(site_id)
            continue
        counts[latest.verdict] = counts.get(latest.verdict, 0) + 1
        if now - latest.started_at.replace(tzinfo=latest.started_at.tzinfo or UTC) > STALE_AFTER:
            stale.append(f"{site_id}, last {latest.started_at:%Y-%m-%d %H:%M} UTC")
            missing.append(site_id)
    info = SweepInfo(
        id="latest",
        started_at=now,
        finished_at=now,
        complete=not missing,
        # A site whose agent stopped pushing is shown with its old result, and counted as
        # not swept: an old "ok" cannot be called fine.
        interrupted=f"no result for over 48 h from {'; '.join(stale)}" if stale else None,
        tool_version=__version__,
        sites_planned=len(site_ids),
        sites_missing=missing,
        origin="latest result of every site",
    )

    def sites() -> Any:
        for site_id in site_ids:
            latest: SiteResult | None = store.latest_site(site_id)
            if latest is not None:
                yield latest

    return SweepView(info, [], None, counts, sites)


PATH_SAFE = "/:@!$&'()*+,;=-._~"  # RFC 3986's pchar: kept as it came


def peer_address(client: tuple[str, int] | None) -> str:
    """The peer's address, or "-" when it is not one: uvicorn takes it from X-Forwarded-For
    when the proxy connects from 127.0.0.1, and that header is whatever the client sent."""
    if client is None:
        return "-"
    try:
        return str(ipaddress.ip_address(client[0]))
    except ValueError:
        return "-"


class AccessLog:
    """One line per request: peer, method, path (never the query string), status, bytes
    received, time, and what became of a push. Never a body, a header or a key."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 0
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        finally:
            note = scope.get("state", {}).get("note")
            access_log.info(
                '%s "%s %s" %s %dB %.0fms%s',
                peer_address(scope.get("client")),
                scope["method"],
                # decoded by the server: quoted again, so a %0A cannot start a line of its own
                quote(scope["path"], safe=PATH_SAFE),
                status or "-",
                received,
                (time.monotonic() - started) * 1000,
                f" {for_terminal(note, 1000)}" if note else "",  # reasons quote the body
            )


def run_central(
    central: Central,
    host: str,
    port: int,
    *,
    tls_cert: str | None = None,
    tls_key: str | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes the requests in flight first)."""
    config = uvicorn.Config(
        central.app(),
        host=host,
        port=port,
        ssl_certfile=tls_cert,
        ssl_keyfile=tls_key,
        log_config=None,  # fleet's own logging (scrubbed); our AccessLog, not uvicorn's
        access_log=False,
        server_header=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    uvicorn.Server(config).run()


def ensure_tls_files(tls_cert: str | None, tls_key: str | None) -> str | None:
    """Why the TLS options cannot be used, or None."""
    if (tls_cert is None) != (tls_key is None):
        return "give --tls-cert and --tls-key together"
    for path in (tls_cert, tls_key):
        if path is not None and not Path(path).is_file():
            return f"cannot read {path}"
    return None
