"""The command group and the plumbing every command shares.

Exit codes follow the monitoring-plugin convention: 0 ok, 1 warn, 2 critical, 3 unknown
or the tool could not run (bad inventory, bad arguments, unwritable output).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

import click

from fleet import __version__
from fleet.cli.lazy import LazyGroup
from fleet.console import tolerate_legacy_code_pages

if TYPE_CHECKING:
    # Loaded where they are used: `fleet --version` and `fleet --help` load none of them.
    import asyncio

    from fleet.credentials import Secrets
    from fleet.inventory import Inventory, Notifications
    from fleet.pipeline import Alerted
    from fleet.plan import SweepPlan
    from fleet.results import SiteResult, SweepReading, SweepResult
    from fleet.runner import SweepOptions
    from fleet.store import Store

EXIT_UNKNOWN = 3
T = TypeVar("T")
log = logging.getLogger("fleet")


class Failure(click.ClickException):
    """The tool could not run: a short message, exit 3."""

    exit_code = EXIT_UNKNOWN

    def show(self, file: Any = None) -> None:
        click.echo(f"fleet: {self.message}", err=True)


# ---- plumbing -------------------------------------------------------------------------


# This command's secrets: every secret it reads, in every form, scrubbed from its log and
# its messages. One book per command run (set by `cli`), never shared between two runs.
_secrets: Secrets | None = None


def command_secrets() -> Secrets:
    """The book of the command being run: sweeps and alerts add what they read to it."""
    global _secrets
    if _secrets is None:
        from fleet.credentials import Secrets

        _secrets = Secrets()
    return _secrets


def setup_logging(debug: bool, log_file: str | None, secrets: Secrets) -> None:
    from fleet.credentials import ScrubFilter

    logger = logging.getLogger()
    for handler in list(logger.handlers):
        if getattr(handler, "_fleet", False):
            logger.removeHandler(handler)
    level = logging.DEBUG if debug else logging.WARNING
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        try:
            handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
        except OSError as exc:  # e.g. the scheduled task's log folder was removed
            raise Failure(f"cannot write the log file {log_file}: {exc.strerror or exc}") from None
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(ScrubFilter(secrets))
        handler._fleet = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    # aiosmtpd and asyncio are chatty at INFO; the probe's own debug is what helps.
    # aiosmtpd (the demo lab's servers) logs its own deprecations at WARNING; httpx logs
    # every request's URL at INFO, and a webhook URL is a secret.
    logging.getLogger("mail.log").setLevel(logging.INFO if debug else logging.ERROR)
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def load_or_fail(path: str | None) -> tuple[str, Inventory]:
    from fleet.errors import InventoryError
    from fleet.inventory import load_inventory, resolve_inventory_path

    chosen = resolve_inventory_path(path)
    try:
        return chosen, load_inventory(chosen)
    except InventoryError as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        n = len(exc.errors)
        raise Failure(f"{chosen}: {n} problem{'s' * (n != 1)}; nothing was probed") from None


def write_output(text: str, output: str | None, *, bom: bool = False) -> None:
    """To stdout, or atomically to a file (a crash never leaves half a report)."""
    write_stream(lambda handle: handle.write(text), output, bom=bom)


def write_stream(
    writer: Callable[[TextIO], object], output: str | None, *, bom: bool = False
) -> None:
    """Let `writer` write a report to stdout, or atomically to a file."""
    if output is None or output == "-":
        writer(sys.stdout)
        sys.stdout.flush()
        return
    from fleet.atomic_file import replacing_text

    target = Path(output)
    encoding = "utf-8-sig" if bom else "utf-8"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with replacing_text(target, prefix=f".{target.name}.", encoding=encoding) as handle:
            writer(handle)
    except OSError as exc:
        raise Failure(f"cannot write {output}: {exc.strerror or exc}") from None


def progress_bar(
    total: int, quiet: bool
) -> tuple[Callable[[SiteResult], None], Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; silent under cron."""
    if quiet or not sys.stderr.isatty():
        return (lambda _site: None), (lambda: None)
    from tqdm import tqdm

    from fleet.results import Verdict

    bar = tqdm(total=total, unit="site", file=sys.stderr, leave=False, dynamic_ncols=True)
    failing = 0

    def update(site: SiteResult) -> None:
        nonlocal failing
        if site.verdict in (Verdict.critical, Verdict.unknown):
            failing += 1
        bar.set_postfix(failing=failing, refresh=False)
        bar.update(1)

    return update, bar.close


async def sweep_with_signals(plan: SweepPlan, options: SweepOptions) -> SweepResult:
    """Run a sweep; Ctrl-C (SIGINT, Ctrl-Break, SIGTERM) stops new work, keeping what
    finished and marking the sweep incomplete; a second one cancels running work."""
    import dataclasses

    from fleet.interrupts import on_stop_signals
    from fleet.pipeline import run_sweep
    from fleet.runner import Control

    control = Control()

    def on_signal(name: str) -> None:
        if control.stop.is_set():
            control.abort.set()
            click.echo(f"fleet: {name} again: cancelling running conversations", err=True)
            return
        control.reason = f"interrupted by {name}"
        control.stop.set()
        click.echo(f"fleet: {name}: finishing running sites, starting no new ones", err=True)

    with on_stop_signals(on_signal):
        return await run_sweep(
            plan, dataclasses.replace(options, secrets=command_secrets(), control=control)
        )


def colour_wanted(output: str | None) -> bool:
    return output in (None, "-") and sys.stdout.isatty() and "NO_COLOR" not in os.environ


def check_notifications(inventory: Inventory) -> None:
    """Before sweeping with --notify: the inventory must say where alerts go, with secrets."""
    from fleet.inventory import notification_problems

    if inventory.notifications is None or not (
        inventory.notifications.email or inventory.notifications.webhook
    ):
        raise Failure("--notify, but the inventory has no notifications section (email or webhook)")
    problems = notification_problems(inventory.notifications)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise Failure("alerts could not be sent; nothing was probed")


def send_alerts(
    settings: Notifications,
    result: SweepReading,
    *,
    force: bool = False,
    stored: bool = True,
) -> bool:
    """Send a sweep's alerts through the pipeline; False (said on stderr) when a channel
    failed."""
    from fleet.pipeline import alert

    alerted = run_async(alert(settings, result, force=force, secrets=command_secrets()))
    return say_alerted(alerted, settings, stored=stored)


def say_alerted(alerted: Alerted, settings: Notifications, *, stored: bool = True) -> bool:
    """Say what became of a sweep's alerts; False when a channel failed."""
    if alerted.failure is not None:
        where = (
            "the sweep is stored; `fleet notify --last` re-sends it"
            if stored
            else "the sweep was not stored (--no-store): its report above is all there is"
        )
        click.echo(f"fleet: alert not delivered: {alerted.failure} ({where})", err=True)
        return False
    if alerted.sent:
        click.echo(f"fleet: alert sent: {', '.join(alerted.sent)}", err=True)
    else:
        click.echo(f"fleet: no alert (when: {settings.when}, and nothing to report)", err=True)
    return True


# Start-up (imports, the models, the inventory, the plan) builds objects that live as long as
# the command: the collector walked them again and again for nothing (about 10 ms of a
# one-site scan, 25 ms with a 1,000-site inventory). The process starts with a collection
# only every STARTUP_GC_OBJECTS new objects; when the command's own work begins, what
# start-up built is frozen (never walked again) and the collector returns to its pace.
STARTUP_GC_OBJECTS = 100_000
_thresholds_after_startup: tuple[int, int, int] | None = None


def _quiet_startup() -> None:
    global _thresholds_after_startup
    _thresholds_after_startup = gc.get_threshold()
    gc.set_threshold(STARTUP_GC_OBJECTS, *_thresholds_after_startup[1:])


def end_of_startup() -> None:
    """The command's work begins (a sweep, a server): freeze what start-up built and collect
    at the usual pace again. Nothing to do in a process whose start-up fleet did not run."""
    global _thresholds_after_startup
    if _thresholds_after_startup is not None:
        gc.freeze()
        gc.set_threshold(*_thresholds_after_startup)
        _thresholds_after_startup = None


LOOP_ENV = "FLEET_LOOP"


# A sweep of this many sites or fewer (a technician's `fleet scan`) is over before its
# garbage matters: its work keeps start-up's pace of collection (about 20 collections, 4 ms
# of a one-site scan's CPU, otherwise).
FEW_SITES = 10


def run_async(main: Coroutine[Any, Any, T], *, sites: int | None = None) -> T:
    """Run a coroutine on uvloop when it is installed (libuv: a sweep spends most of its CPU
    in the event loop and sockets), else on asyncio's own loop; FLEET_LOOP=asyncio forces
    the latter. `sites`: how many sites it sweeps, when it sweeps."""
    import asyncio

    if sites is None or sites > FEW_SITES:
        end_of_startup()

    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    if os.environ.get(LOOP_ENV, "uvloop") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def open_store(db: str | None) -> Store:
    from fleet.errors import StoreError
    from fleet.store import Store, default_db_path

    try:
        return Store(db or default_db_path())
    except StoreError as exc:
        raise Failure(str(exc)) from None


@contextlib.contextmanager
def store_for(db: str | None, *, lock: str | None = None) -> Iterator[Store]:
    """The history store for one command, closed at the end (locked for `lock` when given):
    a StoreError anywhere in the block (opening, locking, reading) ends the command with its
    message, exit 3."""
    from fleet.errors import StoreError
    from fleet.pipeline import opened_store

    try:
        with opened_store(db, lock=lock) as store:
            yield store
    except StoreError as exc:
        raise Failure(str(exc)) from None


@contextlib.contextmanager
def history_store(use: bool, db: str | None, *, lock: str) -> Iterator[Store | None]:
    """`store_for` a sweep, or None without the history (`--no-store`)."""
    if not use:
        yield None
        return
    with store_for(db, lock=lock) as store:
        yield store


# ---- commands -------------------------------------------------------------------------

db_option = click.option(
    "--db",
    metavar="PATH",
    help="The history store (default: $FLEET_DB, else fleet.db in the user's data folder).",
)

spool_option: Callable[[Callable[..., int]], Callable[..., int]] = click.option(
    "--spool",
    metavar="DIR",
    help="Where results wait until the central has them (default: the data folder's spool).",
)

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory",
    metavar="PATH",
    help="The inventory (default: $FLEET_INVENTORY, else ./inventory.yaml).",
)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="fleet")
@click.option("--debug", is_flag=True, help="Debug logging on stderr (secrets are redacted).")
@click.option("--log-file", metavar="FILE", help="Also append the log to FILE.")
def cli(debug: bool, log_file: str | None) -> None:
    """Find out, before the client calls, which office copiers will fail to scan-to-email."""
    from fleet.credentials import AGENT_KEY_ENV, AGENT_MASTER_KEY_ENV, Secrets, SecretSource

    global _secrets
    _secrets = Secrets()
    # the agent keys, when they are set: never shown by any command
    _secrets.add_sources(
        (None, SecretSource(env=name)) for name in (AGENT_KEY_ENV, AGENT_MASTER_KEY_ENV)
    )
    setup_logging(debug, log_file, _secrets)


# ---- entry point ----------------------------------------------------------------------


def _is_store_error(exc: Exception) -> bool:
    """A StoreError, asked without loading the store: only a loaded store raises one."""
    store = sys.modules.get("fleet.store")
    return store is not None and isinstance(exc, store.StoreError)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run a command and exit with its code."""
    if argv is None:  # the process itself: its start-up is ours (see STARTUP_GC_OBJECTS)
        _quiet_startup()
        # pydantic looks for plugins of every installed distribution (their entry points)
        # when it builds its first validator: about 5 ms of a one-site scan. fleet uses
        # none; PYDANTIC_DISABLE_PLUGINS set to anything else (even empty) is kept.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    tolerate_legacy_code_pages()
    try:
        code = cli.main(args=argv, prog_name="fleet", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        code = EXIT_UNKNOWN
    except click.Abort:
        click.echo("fleet: aborted", err=True)
        code = EXIT_UNKNOWN
    except KeyboardInterrupt:
        click.echo("fleet: interrupted", err=True)
        code = EXIT_UNKNOWN
    except Exception as exc:
        code = EXIT_UNKNOWN
        if _is_store_error(exc):  # a damaged or unwritable store, wherever it showed
            click.echo(f"fleet: {command_secrets().scrub(str(exc))}", err=True)
        else:  # a bug: say so plainly; the trace is for --debug
            log.debug("internal error", exc_info=True)
            said = command_secrets().scrub(f"fleet: internal error: {type(exc).__name__}: {exc}")
            click.echo(said, err=True)
            if "--debug" not in (argv if argv is not None else sys.argv):
                click.echo("fleet: run again with --debug for the trace", err=True)
    if argv is None:  # the process itself (console script, python -m fleet), not a caller
        # It ends now: the collector need not walk every object once more on the way out
        # (modules, models, the inventory: about 40 ms of a one-site scan's CPU). Exit
        # handlers still run, and the streams and the log are flushed and closed as before.
        gc.freeze()
    sys.exit(code if isinstance(code, int) else 0)
