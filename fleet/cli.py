"""The command line: the only module that reads argv, prints, or exits.

Exit codes follow the monitoring-plugin convention: 0 ok, 1 warn, 2 critical, 3 unknown
or the tool could not run (bad inventory, bad arguments, unwritable output).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from fleet import __version__
from fleet.credentials import ScrubFilter
from fleet.inventory import (
    Inventory,
    InventoryError,
    inventory_schema,
    load_inventory,
    preflight,
    resolve_inventory_path,
)
from fleet.plan import PlanError, SweepPlan, describe, plan_sweep
from fleet.report import FORMATS, render
from fleet.report.summary import exit_code, headline
from fleet.report.table import render_transcript
from fleet.results import SiteResult, SweepResult, Verdict
from fleet.runner import Control, run_sweep

EXIT_UNKNOWN = 3
log = logging.getLogger("fleet")


class Failure(click.ClickException):
    """The tool could not run: a short message, exit 3."""

    exit_code = EXIT_UNKNOWN

    def show(self, file: Any = None) -> None:
        click.echo(f"fleet: {self.message}", err=True)


# ---- plumbing -------------------------------------------------------------------------


def _setup_logging(debug: bool, log_file: str | None) -> None:
    logger = logging.getLogger()
    for handler in list(logger.handlers):
        if getattr(handler, "_fleet", False):
            logger.removeHandler(handler)
    level = logging.DEBUG if debug else logging.WARNING
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(ScrubFilter())
        handler._fleet = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level)
    # aiosmtpd and asyncio are chatty at INFO; the probe's own debug is what helps.
    # aiosmtpd (the demo lab's servers) logs its own deprecations at WARNING.
    logging.getLogger("mail.log").setLevel(logging.INFO if debug else logging.ERROR)


def _load(path: str | None) -> tuple[str, Inventory]:
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
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    target = Path(output)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8-sig" if bom else "utf-8", newline="") as handle:
            handle.write(text)
        os.replace(temp, target)
    except OSError as exc:
        raise Failure(f"cannot write {output}: {exc.strerror or exc}") from None


def _progress(total: int, quiet: bool) -> tuple[Callable[[SiteResult], None], Callable[[], None]]:
    """A progress bar on stderr when it is a terminal; silent under cron."""
    if quiet or not sys.stderr.isatty():
        return (lambda _site: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=total, unit="site", file=sys.stderr, leave=False, dynamic_ncols=True)
    failing = 0

    def update(site: SiteResult) -> None:
        nonlocal failing
        if site.verdict in (Verdict.critical, Verdict.unknown):
            failing += 1
        bar.set_postfix(failing=failing, refresh=False)
        bar.update(1)

    return update, bar.close


async def sweep_with_signals(
    plan: SweepPlan,
    *,
    send_test: bool,
    on_site: Callable[[SiteResult], None],
    inventory_path: str | None,
) -> SweepResult:
    """Run a sweep; SIGINT/SIGTERM stop new work (a second one cancels running work)."""
    control = Control()
    loop = asyncio.get_running_loop()

    def on_signal(name: str) -> None:
        if control.stop.is_set():
            control.abort.set()
            click.echo(f"fleet: {name} again: cancelling running conversations", err=True)
            return
        control.reason = f"interrupted by {name}"
        control.stop.set()
        click.echo(f"fleet: {name}: finishing running sites, starting no new ones", err=True)

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, on_signal, sig.name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or no signals here
            pass
    try:
        return await run_sweep(
            plan,
            send_test=send_test,
            control=control,
            on_site=on_site,
            inventory_path=inventory_path,
        )
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _colour(output: str | None) -> bool:
    return output in (None, "-") and sys.stdout.isatty() and "NO_COLOR" not in os.environ


# ---- commands -------------------------------------------------------------------------

inventory_option = click.option(
    "-i",
    "--inventory",
    "inventory",
    metavar="PATH",
    help="The inventory (default: $FLEET_INVENTORY, else ./inventory.yaml).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="fleet")
@click.option("--debug", is_flag=True, help="Debug logging on stderr (secrets are redacted).")
@click.option("--log-file", metavar="FILE", help="Also append the log to FILE.")
def cli(debug: bool, log_file: str | None) -> None:
    """Find out, before the client calls, which office copiers will fail to scan-to-email."""
    _setup_logging(debug, log_file)


@cli.command()
@click.argument("inventory_arg", metavar="[INVENTORY]", required=False)
@inventory_option
def validate(inventory_arg: str | None, inventory: str | None) -> int:
    """Check an inventory; exit 0 with a summary, or 3 with every problem found."""
    path, inv = _load(inventory_arg or inventory)
    click.echo(f"{path}: valid: {inv.summary()}")
    for problem in preflight(inv):
        click.echo(f"note: a sweep here would stop on: {problem}", err=True)
    return 0


@cli.command()
def schema() -> int:
    """Print the inventory's JSON Schema (for editor completion of the YAML)."""
    click.echo(json.dumps(inventory_schema(), indent=2))
    return 0


def _sweep_options(func: Callable[..., int]) -> Callable[..., int]:
    options = [
        click.option(
            "--format",
            "result_format",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="table for people, csv for account managers, json for machines.",
        ),
        click.option(
            "--output", "-o", metavar="FILE", help="Write the report to FILE instead of stdout."
        ),
        click.option("--detail", is_flag=True, help="Table: one row per device."),
        click.option("--per-site", is_flag=True, help="CSV: one row per site."),
        click.option(
            "--send-test",
            is_flag=True,
            help="Also send DATA: a small, labelled test message (its id is in the report).",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        inventory_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@_sweep_options
@click.option(
    "--site", "site_ids", multiple=True, metavar="ID", help="Only this site (repeatable)."
)
@click.option("--client", metavar="NAME", help="Only this client's sites.")
@click.option(
    "--tag", "tags", multiple=True, metavar="T", help="Only sites with this tag (repeatable)."
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be probed, from where; send nothing."
)
def sweep(
    inventory: str | None,
    site_ids: tuple[str, ...],
    client: str | None,
    tags: tuple[str, ...],
    dry_run: bool,
    result_format: str,
    output: str | None,
    detail: bool,
    per_site: bool,
    send_test: bool,
    quiet: bool,
) -> int:
    """Sweep the inventory's sites: SMTP conversations from each site's egress, and blocklists."""
    path, inv = _load(inventory)
    try:
        plan = plan_sweep(inv, site_ids, client, tags)
    except PlanError as exc:
        raise Failure(str(exc)) from None
    if dry_run:
        write_output(describe(plan) + "\n", output)
        return 0
    return _run_and_report(
        path,
        plan,
        result_format,
        output,
        detail=detail,
        per_site=per_site,
        send_test=send_test,
        quiet=quiet,
    )


@cli.command()
@click.argument("site_id")
@_sweep_options
def scan(
    site_id: str,
    inventory: str | None,
    result_format: str,
    output: str | None,
    detail: bool,
    per_site: bool,
    send_test: bool,
    quiet: bool,
) -> int:
    """Rescan one site now and show every stage of its conversations."""
    path, inv = _load(inventory)
    try:
        plan = plan_sweep(inv, (site_id,))
    except PlanError as exc:
        raise Failure(str(exc)) from None
    return _run_and_report(
        path,
        plan,
        result_format,
        output,
        detail=detail,
        per_site=per_site,
        send_test=send_test,
        quiet=quiet,
        transcript=True,
    )


def _run_and_report(
    path: str | None,
    plan: SweepPlan,
    result_format: str,
    output: str | None,
    *,
    detail: bool,
    per_site: bool,
    send_test: bool,
    quiet: bool,
    transcript: bool = False,
) -> int:
    selected = plan.inventory.model_copy(update={"sites": [s.site for s in plan.sites]})
    problems = preflight(selected)
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        raise Failure(f"{len(problems)} secret(s) or file(s) missing; nothing was probed")
    update, close = _progress(len(plan.sites), quiet)
    try:
        result = asyncio.run(
            sweep_with_signals(plan, send_test=send_test, on_site=update, inventory_path=path)
        )
    finally:
        close()
    if transcript and result_format == "table" and output in (None, "-"):
        click.echo(render_transcript(result))
    text = render(result_format, result, detail=detail, per_site=per_site, colour=_colour(output))
    write_output(text, output, bom=result_format == "csv")
    if output not in (None, "-"):
        click.echo(headline(result), err=True)
    return exit_code(result)


@cli.command()
@click.option(
    "--csv",
    "csv_path",
    default="fleet-demo.csv",
    show_default=True,
    metavar="FILE",
    help="Where to write the account managers' CSV.",
)
@click.option("--keep", metavar="DIR", help="Keep the lab's files (inventory, CA) in DIR.")
def demo(csv_path: str, keep: str | None) -> int:
    """Offline demo: start a Microsoft 365-like lab on loopback and sweep four sites."""
    from fleet.lab.demo import DemoLab

    async def run(folder: Path) -> SweepResult:
        lab = DemoLab(folder)
        inventory_path = await lab.start()
        try:
            inv = load_inventory(str(inventory_path))
            plan = plan_sweep(inv)
            return await run_sweep(plan, inventory_path=str(inventory_path))
        finally:
            await lab.stop()

    if keep:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        result = asyncio.run(run(folder))
    else:
        with tempfile.TemporaryDirectory(prefix="fleet-demo-") as temp:
            result = asyncio.run(run(Path(temp)))
    click.echo("fleet demo: a Microsoft 365-like MX and submission endpoint, and a blocklist,")
    click.echo("on 127.0.0.1; four sites, each sending from its own 127.0.0.x address.\n")
    click.echo(render("table", result, colour=_colour(None)), nl=False)
    write_output(render("csv", result), csv_path, bom=True)
    click.echo(f"\nCSV for account managers: {csv_path}")
    click.echo(
        f"(a real sweep would exit {exit_code(result)}: 0 ok, 1 warn, 2 critical, 3 unknown)"
    )
    return 0


# ---- entry point ----------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run a command and exit with its code."""
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
    sys.exit(code if isinstance(code, int) else 0)
