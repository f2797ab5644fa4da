"""Run a sweep plan: every site from its own egress, concurrently and politely.

A fixed pool of site workers pulls sites from the plan (memory grows with results, not
with sites waiting). Each conversation holds, in this order, a slot of its site, of its
destination host, and of the whole sweep; only running conversations hold global slots.
The site's time budget (site_s) pauses while a conversation waits for the sweep's caps.
Stopping is clean: `stop` ends the pulling of new sites and lets running stages end or
time out; `abort` cancels what is running. Either way, finished sites are returned.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Protocol

from msgspec import structs

from fleet import __version__
from fleet.credentials import Secrets
from fleet.dns import Dns, nameserver_addresses
from fleet.egress import Opener, make_opener
from fleet.errors import NameserverError
from fleet.judgement.flag_texts import flag_text
from fleet.oauth import TokenBroker
from fleet.once import Once
from fleet.plan import PlannedConversation, SitePlan, SweepPlan
from fleet.probes.direct_send import DirectSendProbe, DirectSendTarget
from fleet.probes.dnsbl import BlocklistProbe
from fleet.probes.smtp import AuthGate, ProbeSettings, TlsContexts, converse, use_small_tls_buffers
from fleet.probes.spec import ConversationSpec
from fleet.results import (
    Category,
    Conversation,
    Delivery,
    DeviceObservation,
    Egress,
    EgressTransport,
    Flag,
    FlagCode,
    Mode,
    Severity,
    SiteObservation,
    SiteResult,
    SweepInfo,
    SweepResult,
    Verdict,
)

if TYPE_CHECKING:
    # Delivery verification loads its HTTP and IMAP clients only when a sweep verifies.
    from fleet.verify.delivery import DeliveryOptions

SiteCallback = Callable[[SiteResult], None]
log = logging.getLogger("fleet.runner")


def new_sweep_id(now: datetime) -> str:
    # 48 random bits: hundreds of site agents start in the same second every night, and
    # two results with one id at the central would leave one stuck in its spool.
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:12]}"


@dataclass
class RunStats:
    conversations: int = 0
    dns_queries: int = 0
    dns_by_type: dict[str, int] = field(default_factory=dict)
    auth_attempts: int = 0


@dataclass
class Control:
    """How the caller stops a sweep: `stop` (finish running sites), `abort` (cancel them)."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    abort: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None


class _Caps:
    """Conversations at once, in all and to one host (no per-host cap when it is None).
    The sweep has one; each site has its own within it."""

    def __init__(self, total: int, per_host: int | None) -> None:
        self.slots = asyncio.Semaphore(total)
        self.per_host = per_host
        self.hosts: dict[str, asyncio.Semaphore] = {}

    def host(self, name: str) -> asyncio.Semaphore | contextlib.nullcontext[None]:
        if self.per_host is None:
            return contextlib.nullcontext()
        slot = self.hosts.get(name)
        if slot is None:
            slot = self.hosts[name] = asyncio.Semaphore(self.per_host)
        return slot


class _SiteClock:
    """A site's time budget, paused while its conversations wait for the sweep's caps."""

    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.budget_s = budget_s
        self.paused_s = 0.0

    def deadline(self) -> float:
        # asyncio.timeout_at uses the loop clock, which is time.monotonic on every loop here.
        return asyncio.get_running_loop().time() + (
            self.start + self.budget_s + self.paused_s - time.monotonic()
        )


# How a site's observations become its verdict and flags: the matrix's `assess`, handed in by
# the pipeline (the runner gathers facts; judging them is not its business).
Assess = Callable[[SiteObservation, date], SiteResult]


class Converse(Protocol):
    """The conversation probe as the runner calls it: `fleet.probes.smtp.converse`."""

    def __call__(
        self,
        spec: ConversationSpec,
        opener: Opener,
        settings: ProbeSettings,
        tls: TlsContexts,
        gate: AuthGate,
        *,
        deadline: float | None = None,
        site_ip: str | None = None,
        label: str = "",
        tokens: TokenBroker | None = None,
        secrets: Secrets | None = None,
    ) -> Awaitable[Conversation]: ...


# How the runner probes one site: `Sweeper.site`.
SiteProbe = Callable[["Sweeper", SitePlan], Awaitable[SiteResult]]


@dataclass(frozen=True, kw_only=True)
class SweepOptions:
    """How to run a plan (see `run_measured`); every field has the default of a plain sweep."""

    send_test: bool = False
    control: Control | None = None
    on_site: SiteCallback | None = None
    on_start: Callable[[SweepInfo], None] | None = None
    retain: Callable[[SiteResult], SiteResult | None] | None = None
    sweep_id: str | None = None
    inventory_path: str | None = None
    secrets: Secrets | None = None
    delivery: DeliveryOptions | None = None
    # Seams: the probes the runner calls, the real ones unless a test hands in its own
    # (to make one conversation or one site fail without patching this module).
    converse: Converse = converse
    probe_site: SiteProbe | None = None  # None: Sweeper.site


class Sweeper:
    """Everything one sweep shares: resolver, blocklists, TLS contexts, the AUTH gate, caps."""

    def __init__(
        self,
        plan: SweepPlan,
        *,
        assess: Assess,
        options: SweepOptions | None = None,
        today: datetime | None = None,
    ) -> None:
        options = options or SweepOptions()
        self.plan = plan
        self.assess = assess
        self.delivery = options.delivery  # --verify-delivery
        self.converse = options.converse
        # Every secret of the sweep, known before any site is probed: a server may repeat
        # what another site's conversation sent (see `finish`).
        self.secrets = options.secrets if options.secrets is not None else Secrets()
        self.secrets.add_sources(plan.inventory.secret_sources())
        use_small_tls_buffers()
        defaults = plan.inventory.defaults
        self.send_test = options.send_test
        self.today = (today or datetime.now(UTC)).date()
        self.dns = Dns(
            nameserver_addresses(defaults.dns.nameservers),  # NameserverError: before probing
            defaults.dns.timeout_s,
            defaults.dns.tries,
            defaults.dns.concurrency,
        )
        self.blocklists = BlocklistProbe(self.dns, list(plan.zones), self.secrets)
        self.direct_send = DirectSendProbe(self.dns)
        self.tls = TlsContexts()
        self.gate = AuthGate()
        # OAuth tokens: fetched once per app and tenant per sweep, each request waiting at
        # most command_s like an SMTP command
        self.tokens = TokenBroker(defaults.timeouts.command_s)
        self.caps = _Caps(defaults.concurrency.global_, defaults.concurrency.per_host)
        self.stats = RunStats()
        self._public_ip: Once[str, str | None] = Once()
        # Resolved here, with the main nameservers: never a blocking lookup mid-sweep.
        self._public_ip_server: str | None = None
        lookup = defaults.public_ip_lookup
        if lookup is not None:
            try:
                (self._public_ip_server,) = nameserver_addresses([lookup.nameserver])
            except NameserverError as exc:
                log.warning("public IP lookup: %s", exc)

    async def close(self) -> None:
        self._public_ip.cancel()
        await self.dns.close()

    async def public_ip(self) -> str | None:
        """This machine's public IP from a "what is my IP" resolver, asked once per sweep."""
        lookup = self.plan.inventory.defaults.public_ip_lookup
        if lookup is None or self._public_ip_server is None:
            return None
        server = self._public_ip_server
        return await self._public_ip.get(
            lookup.name, lambda: self._ask_public_ip(lookup.name, server)
        )

    async def _ask_public_ip(self, name: str, nameserver: str) -> str | None:
        defaults = self.plan.inventory.defaults.dns
        resolver = Dns([nameserver], defaults.timeout_s, defaults.tries)
        try:
            answer = await resolver.query(name, "A")
        finally:
            await resolver.close()
        if not answer.ok:
            log.warning("public IP lookup of %s at %s failed: %s", name, nameserver, answer.detail)
            return None
        return answer.records[0]

    async def site(self, site_plan: SitePlan) -> SiteResult:
        """Probe one site: its conversations first (they may reveal its IP), then blocklists."""
        site = site_plan.site
        started_at = datetime.now(UTC)
        clock = _SiteClock(site_plan.site_s)
        opener = make_opener(site.egress, self.dns)
        settings = ProbeSettings(site_plan.connect_s, site_plan.command_s, self.send_test)
        # A lone conversation (issue 20: the common site) is never held by its site's own
        # caps (at least one each): it waits only for the sweep's.
        lone = len(site_plan.conversations) == 1
        site_caps = None if lone else _Caps(site_plan.per_site, site_plan.per_host)

        ended: dict[int, float] = {}  # when each conversation ended (monotonic): after DATA

        async def one(index: int) -> Conversation:
            try:
                return await converse_one(index)
            finally:
                ended[index] = time.monotonic()

        async def converse_one(index: int) -> Conversation:
            planned = site_plan.conversations[index]
            if site_caps is None:
                return await capped(planned)
            async with site_caps.slots, site_caps.host(planned.spec.host):
                return await capped(planned)

        async def capped(planned: PlannedConversation) -> Conversation:
            waited = time.monotonic()
            async with self.caps.host(planned.spec.host), self.caps.slots:
                clock.paused_s += time.monotonic() - waited
                self.stats.conversations += 1
                return await self.converse(
                    planned.spec,
                    opener,
                    settings,
                    self.tls,
                    self.gate,
                    deadline=clock.deadline(),
                    site_ip=site.egress.ip,
                    label=f"{site.id}/{'+'.join(d.id for d in planned.devices)}",
                    tokens=self.tokens,
                    secrets=self.secrets,
                )

        if lone:
            # The common case (issue 20): one conversation has no siblings to stop, so no
            # task group and no task of its own (a bug raises here as it would from one).
            conversations = [await one(0)]
        else:
            try:
                # A task group, so that a bug in one conversation stops its siblings instead
                # of leaving them running after the site has been given up.
                async with asyncio.TaskGroup() as group:
                    count = len(site_plan.conversations)
                    tasks = [group.create_task(one(i)) for i in range(count)]
            except ExceptionGroup as failures:
                raise failures.exceptions[0] from None  # the first bug is the one to report
            conversations = [task.result() for task in tasks]
        if self.delivery is None:  # no mailbox to watch: no task for it
            return await self._assess(site_plan, started_at, conversations, None)
        # The mailboxes are watched while the blocklists are looked up.
        watching = asyncio.ensure_future(self._deliveries(site_plan, conversations, ended))
        try:
            return await self._assess(site_plan, started_at, conversations, watching)
        finally:
            watching.cancel()

    async def _deliveries(
        self, site_plan: SitePlan, conversations: list[Conversation], ended: dict[int, float]
    ) -> dict[str, Delivery]:
        """--verify-delivery: each accepted test message looked for in its device's mailbox
        (devices that share a conversation share its one message), all at once."""
        if self.delivery is None:
            return {}
        work: list[Awaitable[Delivery]] = []
        checked: list[list[str]] = []  # the devices each check answers for
        for index, (planned, conversation) in enumerate(
            zip(site_plan.conversations, conversations, strict=True)
        ):
            test_id = conversation.test_message_id
            if test_id is None or conversation.category is not Category.ok:
                continue  # refused: the conversation's own flag says so
            watched = [d for d in planned.devices if d.verify is not None]
            mailbox = next((d.verify for d in watched if d.verify is not None), None)
            if mailbox is None:
                continue
            # One message, one look (the first device's mailbox): two looks at it would race
            # each other's delete and report a message found once as not delivered.
            from fleet.verify.delivery import verify_delivery

            work.append(
                verify_delivery(
                    mailbox,
                    test_id,
                    sent_at=ended[index],
                    keep=self.delivery.keep,
                    timeout_s=site_plan.command_s,
                    tokens=self.tokens,
                    secrets=self.secrets,
                )
            )
            checked.append([d.id for d in watched])
        results = await asyncio.gather(*work)
        return {
            device: delivery
            for devices, delivery in zip(checked, results, strict=True)
            for device in devices
        }

    async def _assess(
        self,
        site_plan: SitePlan,
        started_at: datetime,
        conversations: list[Conversation],
        watching: asyncio.Future[dict[str, Delivery]] | None,
    ) -> SiteResult:
        site = site_plan.site
        echoed: list[str | None] = [c.observed_ip for c in conversations]
        if site_plan.transport is EgressTransport.direct:
            echoed.append(await self.public_ip())
        observed = list(dict.fromkeys(ip for ip in echoed if ip))
        declared = site.egress.ip
        ips = list(dict.fromkeys([*([declared] if declared else []), *observed]))
        blocklists = await self.blocklists.check(ips) if ips and self.plan.zones else []
        checks = await self.direct_send.check(direct_send_targets(site_plan), ips)
        egress = _egress(site_plan, observed)
        devices = []
        for planned, conversation in zip(site_plan.conversations, conversations, strict=True):
            for device in planned.devices:
                auth = device.smtp.auth
                devices.append(
                    DeviceObservation(
                        device=device.id,
                        model=device.model,
                        location=device.location,
                        mode=device.smtp.effective_mode,
                        authenticated=auth is not None,
                        uses_password=auth is not None and auth.uses_password,
                        tls_max=device.smtp.tls_max,
                        conversation=conversation,
                        mailbox=auth.username if auth is not None else None,
                        login=None
                        if auth is None
                        else "password"
                        if auth.uses_password
                        else "oauth2",
                    )
                )
        deliveries = await watching if watching is not None else {}
        devices = [
            dataclasses.replace(d, delivery=deliveries[d.device]) if d.device in deliveries else d
            for d in devices
        ]
        order = {d.id: i for i, d in enumerate(site.devices)}
        devices.sort(key=lambda d: order[d.device])
        observation = SiteObservation(
            site=site.id,
            client=site.client,
            name=site.name,
            tags=list(site.tags),
            egress=egress,
            devices=devices,
            blocklists=blocklists,
            checks=checks,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            zones=len(self.plan.zones),
        )
        return self.assess(observation, self.today)

    def finish(self, result: SiteResult) -> SiteResult:
        """The boundary every site result passes before it is stored, rendered or logged:
        every string in it (replies, details, findings, evidence, transcripts) without any
        secret of the sweep, in any form it took on the wire, whole or in pieces. Except the
        names the operator wrote in the inventory (client, site, its name and tags, each
        device's name, model and location), which no server wrote: a password made of the
        client's name ("Riverside2024!") must not rename the client or its site, under
        which the result is stored, compared and pushed."""
        clean = self.secrets.scrub_model(result)
        if clean is result:
            return result
        devices = [
            structs.replace(
                after, device=before.device, model=before.model, location=before.location
            )
            for before, after in zip(result.devices, clean.devices, strict=True)
        ]
        return structs.replace(
            clean,
            site=result.site,
            client=result.client,
            name=result.name,
            tags=result.tags,
            devices=devices,
        )


def direct_send_targets(site_plan: SitePlan) -> list[DirectSendTarget]:
    """The site's copiers that send unauthenticated on port 25 (Direct Send, connector relay):
    the ones whose MX and SPF readiness is checked."""
    targets = []
    for planned in site_plan.conversations:
        spec = planned.spec
        if spec.username is not None or spec.mode not in (Mode.direct_send, Mode.relay):
            continue
        for device in planned.devices:
            targets.append(
                DirectSendTarget(
                    device=device.id,
                    mode=spec.mode,
                    host=spec.host,
                    sender=spec.mail_from,
                    recipient=spec.rcpt_to,
                    helo=spec.ehlo_name,
                )
            )
    return targets


def _egress(site_plan: SitePlan, observed: list[str]) -> Egress:
    """How the site left, and the IP servers saw (else the one it declared)."""
    egress = site_plan.site.egress
    return Egress(
        transport=site_plan.transport,
        via=egress.via,
        bind=egress.bind,
        declared_ip=egress.ip,
        observed_ips=observed,
        egress_ip=observed[0] if observed else egress.ip,
    )


def internal_error(site_plan: SitePlan, exc: Exception) -> SiteResult:
    """A site that fleet itself failed on: accounted for, never silently missing."""
    site = site_plan.site
    now = datetime.now(UTC)
    code = FlagCode.INTERNAL_ERROR
    return SiteResult(
        site=site.id,
        client=site.client,
        name=site.name,
        tags=list(site.tags),
        verdict=Verdict.unknown,
        flags=[
            Flag(
                code=code,
                severity=Severity.unknown,
                devices=[d.id for d in site.devices],
                # scrubbed by Sweeper.finish
                evidence=flag_text(code, "evidence", kind=type(exc).__name__, error=exc)[:500],
                remediation=flag_text(code, "fix"),
            )
        ],
        egress=_egress(site_plan, []),
        started_at=now,
        finished_at=now,
    )


async def run_sweep(
    plan: SweepPlan, *, assess: Assess, options: SweepOptions | None = None
) -> SweepResult:
    """Probe every site of the plan and gather one typed sweep result (see `run_measured`)."""
    result, _ = await run_measured(plan, assess=assess, options=options)
    return result


class _Aborted(Exception):
    """The caller asked to cancel running work (a second Ctrl-C)."""


async def run_measured(
    plan: SweepPlan, *, assess: Assess, options: SweepOptions | None = None
) -> tuple[SweepResult, RunStats]:
    """Probe every site of the plan and gather one typed sweep result, with what it cost
    (conversations, DNS queries, AUTH attempts).

    `options.on_start` sees the sweep's info before anything is probed, `on_site` each site
    as soon as it is done (the store writes it there); an exception in either stops the
    sweep. `retain` decides what of each site stays in memory for the returned result: the
    whole site by default; None keeps nothing (the caller reads the sites back from the
    store). `secrets` is the book the caller's log scrubs with: the sweep adds every secret
    it reads.
    """
    options = options or SweepOptions()
    control = options.control or Control()
    on_site, on_start, retain = options.on_site, options.on_start, options.retain
    probe_site = options.probe_site or Sweeper.site
    started_at = datetime.now(UTC)
    sweep_id = options.sweep_id or new_sweep_id(started_at)
    info = SweepInfo(
        id=sweep_id,
        started_at=started_at,
        complete=False,
        tool_version=__version__,
        inventory=options.inventory_path,
        filters=list(plan.filters),
        sites_planned=len(plan.sites),
        send_test=options.send_test,
        origin="local",
    )
    sweeper = Sweeper(plan, assess=assess, options=options, today=started_at)  # may refuse
    if on_start is not None:
        try:
            on_start(info)
        except BaseException:
            await sweeper.close()
            raise
    done: dict[int, SiteResult] = {}
    finished: set[int] = set()
    pending = iter(enumerate(plan.sites))

    async def worker() -> None:
        while not control.stop.is_set() and not control.abort.is_set():
            try:
                index, site_plan = next(pending)
            except StopIteration:
                return
            try:
                result = await probe_site(sweeper, site_plan)
            except Exception as exc:  # a bug must cost one site, never the sweep
                log.exception("internal error while sweeping %s", site_plan.site.id)
                result = internal_error(site_plan, exc)
            result = sweeper.finish(result)
            if on_site is not None:
                on_site(result)
            kept = retain(result) if retain is not None else result
            finished.add(index)
            if kept is not None:
                done[index] = kept

    n_workers = max(1, min(plan.inventory.defaults.concurrency.global_, len(plan.sites)))
    running = n_workers

    async def supervised_worker() -> None:
        nonlocal running
        try:
            await worker()
        finally:
            running -= 1
            if running == 0:
                watcher.cancel()  # every worker is done: nothing left to abort

    async def watch_abort() -> None:
        await control.abort.wait()
        raise _Aborted

    try:
        # A failing site never gets here (the worker turns it into a result); what does is a
        # failing store or callback, which stops the sweep, or the caller's abort.
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(watch_abort())
            for _ in range(n_workers):
                group.create_task(supervised_worker())
    except BaseExceptionGroup as failures:
        failure = next((e for e in failures.exceptions if not isinstance(e, _Aborted)), None)
        if failure is not None:
            raise failure from None
    finally:  # even when cancelled: no resolver or socket left open
        stats = RunStats(
            conversations=sweeper.stats.conversations,
            dns_queries=sweeper.dns.stats.queries,
            dns_by_type=dict(sweeper.dns.stats.by_type),
            auth_attempts=sum(sweeper.gate.attempts.values()),
        )
        await sweeper.close()
    sites = [done[i] for i in sorted(done)]
    missing = [sp.site.id for i, sp in enumerate(plan.sites) if i not in finished]
    complete = not missing
    result = SweepResult(
        sweep=info.model_copy(
            update={
                "finished_at": datetime.now(UTC),
                "complete": complete,
                # A stop that came once every site had started cut nothing short (running
                # sites finish): the sweep is complete, and still says the stop came.
                "interrupted": (control.reason if control.stop.is_set() else None)
                if complete
                else (control.reason or "stopped before every site was swept"),
                "sites_missing": missing,
                "dns_retries": sweeper.dns.stats.retries,
                "dns_retries_answered": sweeper.dns.stats.retries_answered,
            }
        ),
        sites=sites,
    )
    return result, stats
