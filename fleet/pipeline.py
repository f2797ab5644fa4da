"""One sweep end to end: plan -> run -> assess -> store -> changes -> view.

Every command that sweeps (`sweep`, `scan`, `demo`) or reads the history (`report`, `diff`,
`ingest`, `notify`) goes through here; the command line keeps argv, output streams and exit
codes. Failures are ours (`FleetError`): the caller words them for its audience.

Heavy modules (the runner, the probes) load inside the functions that need them, so that
the commands that only read the history start as fast as before.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Protocol

from fleet.errors import IngestError, NotifyError, PreflightError, PushError, StoreError

if TYPE_CHECKING:
    from fleet.agent import SiteKeys
    from fleet.credentials import Secrets
    from fleet.inventory import Inventory, Notifications
    from fleet.plan import SweepPlan
    from fleet.push import Delivery, Spool
    from fleet.results import (
        Change,
        SiteResult,
        SweepInfo,
        SweepReading,
        SweepResult,
        SweepView,
    )
    from fleet.runner import RunStats, SweepOptions
    from fleet.store import Store
    from fleet.verify.delivery import DeliveryOptions

SiteCallback = Callable[["SiteResult"], None]


class Execute(Protocol):
    """What runs the plan: the runner itself (`run_sweep`), or the command line's wrapper
    around it that turns Ctrl-C and SIGTERM into a clean stop."""

    def __call__(self, plan: SweepPlan, options: SweepOptions) -> Awaitable[SweepResult]: ...


@contextlib.contextmanager
def opened_store(db: str | None, *, lock: str | None = None) -> Iterator[Store]:
    """The history store, open until the block ends; locked for `lock` (who takes it, e.g.
    "fleet sweep") when given. Raises StoreError when it cannot be opened or is locked."""
    from fleet.store import Store, default_db_path

    store = Store(db or default_db_path())
    try:
        if lock is not None:
            store.lock(lock)
        yield store
    finally:
        store.close()


def plan_for(
    inventory: Inventory,
    site_ids: Sequence[str] = (),
    client: str | None = None,
    tags: Sequence[str] = (),
) -> SweepPlan:
    """What to probe, from where (PlanError when the filters select nothing)."""
    from fleet.plan import plan_sweep

    return plan_sweep(inventory, tuple(site_ids), client, tuple(tags))


def check_ready(plan: SweepPlan) -> None:
    """Every secret and file the planned sites need can be read, before anything is sent
    (PreflightError lists every one that cannot)."""
    from fleet.inventory import preflight

    problems = preflight(plan.inventory, {s.site.id for s in plan.sites})
    if problems:
        raise PreflightError(problems)


# The records below are NamedTuples, not frozen dataclasses: Python 3.11 compiles six
# methods for each frozen dataclass as the module is imported (about 0.5 ms a class, and
# every command imports this module), a NamedTuple one.
class Swept(NamedTuple):
    """A finished (or stopped) sweep: in memory, or as a view read back from the store.
    `unstored` says why the store could not take (part of) it; the sweep went on anyway."""

    result: SweepReading
    unstored: str | None = None


async def sweep(
    plan: SweepPlan,
    store: Store | None,
    *,
    send_test: bool = False,
    light: bool = True,
    on_site: SiteCallback | None = None,
    inventory_path: str | None = None,
    execute: Execute | None = None,
    secrets: Secrets | None = None,
    delivery: DeliveryOptions | None = None,
) -> Swept:
    """Check secrets, run the plan, store each site soon after it is done (the recorder's
    group commits, flushed on every way out), then the sweep's changes since the previous
    one. With a store the result is a view of the stored sweep:
    `light` (without transcripts), its sites as kept in memory when stored, without them;
    otherwise read back from the store one at a time. Without a store the result is held in
    memory whole."""
    from fleet.runner import SweepOptions
    from fleet.store import SweepRecorder

    check_ready(plan)
    run = execute if execute is not None else run_sweep
    planned = [sp.site.id for sp in plan.sites]
    recorder = SweepRecorder(store, planned, light=light) if store else None
    options = SweepOptions(
        send_test=send_test,
        on_site=on_site or _ignore,
        on_start=recorder.begin if recorder is not None else None,
        retain=recorder.keep if recorder is not None else None,
        inventory_path=inventory_path,
        secrets=secrets,
        delivery=delivery,
    )
    try:
        with _quiet_collector(len(plan.sites)):
            result = await run(plan, options)
    except BaseException:  # a failing callback, a cancel: the finished sites still go in
        if recorder is not None:
            with contextlib.suppress(Exception):  # the sweep's own error is the one to raise
                recorder.flush()
        raise
    if recorder is None:
        return Swept(result)
    return Swept(recorder.finish(result), recorder.failure)


def _ignore(site: SiteResult) -> None:
    return None


async def run_sweep(plan: SweepPlan, options: SweepOptions | None = None) -> SweepResult:
    """The runner with the matrix's judgement: probe every site of the plan, assess each, and
    gather one typed sweep result."""
    from fleet.matrix import assess
    from fleet.runner import run_sweep as run

    return await run(plan, assess=assess, options=options)


async def run_measured(
    plan: SweepPlan, options: SweepOptions | None = None
) -> tuple[SweepResult, RunStats]:
    """`run_sweep`, with what the sweep cost (conversations, DNS queries, AUTH attempts)."""
    from fleet.matrix import assess
    from fleet.runner import run_measured as run

    return await run(plan, assess=assess, options=options)


@contextlib.contextmanager
def _quiet_collector(site_count: int) -> Iterator[None]:
    """The inventory and the plan live as long as the sweep: keep the garbage collector from
    walking those objects again and again while conversations allocate and free their own."""
    if site_count > 50:  # a full collection costs a one-site scan more than it saves
        gc.collect()
    gc.freeze()
    thresholds = gc.get_threshold()
    # Most garbage is freed by reference counting anyway: a young collection every 100,000
    # objects (not the 700 of Python's default, nor the 20,000 before) is one or two in a
    # sweep of 1,000 sites, walking what the running conversations hold (about 8 ms less).
    gc.set_threshold(100_000, 20, 20)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


# ---- after a sweep: the central, then the alerts -----------------------------------------


class Outbox(NamedTuple):
    """Where an agent's results go: the central's results endpoint, and the spool where they
    wait until the central has them."""

    url: str
    spool: Spool


def push_spooled(outbox: Outbox) -> Delivery:
    """Deliver what waits in the spool, oldest first (PushError when it cannot be read)."""
    from fleet.agent import push_headers
    from fleet.push import deliver

    try:
        return deliver(outbox.spool, outbox.url, vouch=push_headers)
    except OSError as exc:
        raise PushError(f"cannot read the spool {outbox.spool.folder}: {exc}") from None


def push_result(result: SweepReading, outbox: Outbox) -> Delivery:
    """Spool the sealed result (PushError when it cannot be written), then deliver the
    spool. A sweep stopped before any site finished has nothing to push: the central
    refuses a result without a site, and the file would wait in the spool for ever."""
    from fleet.agent import seal_reading
    from fleet.push import Delivery
    from fleet.report.json_report import write_json

    if result.site_count == 0:
        return Delivery(
            skipped="nothing swept, nothing pushed", waiting=len(outbox.spool.pending())
        )
    info = seal_reading(result)  # computed once when the JSON report sealed it already
    outbox.spool.add(
        result.sweep.id,
        lambda out: write_json(out, info, result.sites, result.changes, result.previous_sweep),
    )
    return push_spooled(outbox)


class Alerted(NamedTuple):
    """What became of a sweep's alerts: the channels that sent one (none: the `when` rule
    found nothing to say), or why a channel failed (the others were still tried)."""

    sent: list[str]
    failure: str | None = None


async def alert(
    settings: Notifications,
    result: SweepReading,
    *,
    force: bool = False,
    secrets: Secrets | None = None,
) -> Alerted:
    """Send a sweep's alerts on every configured channel."""
    from fleet.notify import notify  # httpx and friends: only when alerting

    try:
        return Alerted(await notify(settings, result, force=force, secrets=secrets))
    except NotifyError as exc:
        return Alerted([], str(exc))


class Published(NamedTuple):
    """What happened after a sweep was stored: its push to the central (None: not an agent
    that pushes), and its alerts (None: none asked for)."""

    pushed: Delivery | None
    alerted: Alerted | None


async def publish(
    result: SweepReading,
    *,
    outbox: Outbox | None = None,
    notifications: Notifications | None = None,
    secrets: Secrets | None = None,
) -> Published:
    """After a sweep is stored: push the sealed result to the central, then send the alerts.
    PushError when the result cannot be spooled (then no alert is sent)."""
    # The push is synchronous: nothing else runs on the loop meanwhile.
    pushed = push_result(result, outbox) if outbox is not None else None
    alerted = (
        await alert(notifications, result, secrets=secrets) if notifications is not None else None
    )
    return Published(pushed, alerted)


# ---- the history ------------------------------------------------------------------------


def chosen_sweep(store: Store, sweep_id: str | None) -> str:
    """The sweep asked for, else the last one (StoreError when the store holds none)."""
    chosen = sweep_id or store.last_id()
    if chosen is None:
        raise StoreError(f"the store {store.path} holds no sweep yet")
    return chosen


def stored_sweep(store: Store, sweep_id: str | None, *, light: bool = True) -> SweepView:
    """The sweep asked for, else the last one, as the reports read it: its sites read from
    the store one at a time as a report reads them (`light`: without their transcripts)."""
    return store.view(chosen_sweep(store, sweep_id), light=light)


class Difference(NamedTuple):
    """What changed from `previous` (None: no earlier complete sweep of these sites) to
    `newer`."""

    newer: SweepInfo
    previous: str | None
    changes: list[Change]


def difference(store: Store, sweep_a: str | None, sweep_b: str | None) -> Difference:
    """SWEEP_A to SWEEP_B; with one sweep, that sweep against the previous complete sweep of
    its sites; with none, the last sweep. From the digests kept beside each site: no full
    result (or transcript) is read."""
    from fleet.changes import compare_digests

    newest = chosen_sweep(store, sweep_b or sweep_a)
    newer, _, _ = store.info(newest)
    if sweep_a and sweep_b:
        store.info(sweep_a)  # a clear error when it is not in the store
        before = store.digests(sweep_a)
        return Difference(newer, sweep_a, compare_digests(before, store.digests(newest)))
    changes, previous = store.stored_changes(newest, newer.started_at)
    return Difference(newer, previous, changes)


class Ingested(NamedTuple):
    result: SweepResult
    previous: str | None
    changes: list[Change]


def ingest(store: Store, text: str, name: str, inventory: Inventory, keys: SiteKeys) -> Ingested:
    """Store one agent's result (IngestError when it must not be: damaged, unsigned, for a
    site the inventory does not know, or already stored)."""
    from fleet.agent import read_agent_result

    result = read_agent_result(text, name, inventory, keys)
    if store.has(result.sweep.id):
        raise IngestError(f"{name}: sweep {result.sweep.id} is already in the store (a duplicate)")
    sweep_info = result.sweep.model_copy(update={"origin": f"ingest:{Path(name).name}"})
    changes, previous = store.save(result.model_copy(update={"sweep": sweep_info}))
    return Ingested(result, previous, changes)
