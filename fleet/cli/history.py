"""Commands that read the store: report, history, diff, ingest, prune."""

from __future__ import annotations

import json
import logging

import click

from fleet.agent import MAX_FILE_MB
from fleet.cli.app import (
    EXIT_UNKNOWN,
    Failure,
    check_notifications,
    cli,
    db_option,
    inventory_option,
    load_or_fail,
    send_alerts,
    store_for,
)
from fleet.cli.keys import central_keys, master_key_option
from fleet.cli.output import emit, readiness_option
from fleet.errors import IngestError, StoreError
from fleet.report import FORMATS
from fleet.report.sanitize import for_terminal
from fleet.report.summary import exit_code, only_client
from fleet.report.table import render_changes, tabulate_rows

log = logging.getLogger("fleet.ingest")


@cli.command()
@db_option
@click.option("--sweep", "sweep_id", metavar="ID", help="The stored sweep to show.")
@click.option("--last", is_flag=True, help="The most recent sweep (the default).")
@click.option(
    "--format", "result_format", type=click.Choice(FORMATS), default="table", show_default=True
)
@click.option("--output", "-o", metavar="FILE", help="Write the report to FILE instead of stdout.")
@click.option("--detail", is_flag=True, help="Table: one row per device.")
@click.option("--per-site", is_flag=True, help="CSV: one row per site.")
@click.option("--client", metavar="NAME", help="Only this client's sites (one client's page).")
@readiness_option
def report(
    db: str | None,
    sweep_id: str | None,
    last: bool,
    result_format: str,
    output: str | None,
    detail: bool,
    per_site: bool,
    client: str | None,
    readiness_view: bool,
) -> int:
    """Re-render a stored sweep without probing again (the CSV for account managers)."""
    if sweep_id and last:
        raise Failure("give --sweep ID or --last, not both")
    from fleet.pipeline import stored_sweep

    with store_for(db) as store:
        # sites are read one at a time as the report is written; JSON and HTML carry
        # transcripts
        view = stored_sweep(store, sweep_id, light=result_format not in ("json", "html"))
        if client is not None:
            chosen = view.sweep.id
            view = only_client(view, client)
            if not view.site_count:
                raise Failure(f"sweep {chosen} has no site of client '{for_terminal(client)}'")
        emit(
            view,
            result_format,
            output,
            detail=detail,
            per_site=per_site,
            store=store,
            readiness_view=readiness_view,
        )
    return exit_code(view)


@cli.command()
@db_option
@click.option("--site", metavar="ID", help="One site's verdict over time.")
@click.option("--limit", default=30, show_default=True, help="How many sweeps to show.")
def history(db: str | None, site: str | None, limit: int) -> int:
    """Past sweeps, or one site's verdict, IP, flags and listings over time."""
    with store_for(db) as store:
        if site is None:
            headers = ["sweep", "started (UTC)", "complete", "origin", "sites", "verdicts"]
            rows = [
                [
                    for_terminal(r.id),
                    r.started_at[:19].replace("T", " "),
                    "yes"
                    if r.complete
                    else f"no ({for_terminal(r.interrupted) or 'unfinished or killed'})",
                    for_terminal(r.origin),
                    r.sites,
                    ", ".join(f"{n} {v}" for v, n in sorted(r.verdicts.items())),
                ]
                for r in store.sweeps(limit)
            ]
        else:
            headers = ["sweep", "started (UTC)", "verdict", "egress IP", "listed", "flags", ""]
            rows = [
                [
                    for_terminal(r.sweep_id),
                    r.started_at[:19].replace("T", " "),
                    r.verdict,
                    for_terminal(r.egress_ip) or "?",
                    for_terminal("; ".join(r.listed)) or "-",
                    for_terminal(" ".join(r.flags)),
                    "" if r.complete else "incomplete sweep",
                ]
                for r in store.site_history(site, limit)
            ]
            if not rows:
                raise Failure(f"no stored result for site '{site}'")
    if not rows:
        click.echo("no sweeps stored yet")
        return 0
    click.echo(tabulate_rows(rows, headers))
    return 0


@cli.command()
@db_option
@click.argument("sweep_a", required=False)
@click.argument("sweep_b", required=False)
@click.option(
    "--format",
    "result_format",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
)
def diff(db: str | None, sweep_a: str | None, sweep_b: str | None, result_format: str) -> int:
    """What changed from SWEEP_A to SWEEP_B.

    With one sweep: that sweep against the previous complete sweep of its sites; with none:
    the last sweep.
    """
    from fleet.pipeline import difference

    with store_for(db) as store:
        found = difference(store, sweep_a, sweep_b)
    newer, previous, changes = found.newer, found.previous, found.changes
    if result_format == "json":
        document = {
            "from": previous,
            "to": newer.id,
            "changes": [c.model_dump(mode="json") for c in changes],
        }
        click.echo(json.dumps(document, indent=2))
    elif previous is None:
        click.echo(f"sweep {newer.id}: no earlier complete sweep of these sites to compare with")
    elif not changes:
        click.echo(f"no changes from sweep {previous} to {newer.id}")
    else:
        click.echo(f"From sweep {previous} to {newer.id}:")
        click.echo(render_changes(changes, None).removeprefix("Changes:\n"))
    return 0


@cli.command()
@db_option
@inventory_option
@master_key_option
@click.option(
    "--max-size",
    type=click.IntRange(min=1),
    default=MAX_FILE_MB,
    show_default=True,
    metavar="MB",
    help="Refuse a file larger than this (an agent's result is far smaller).",
)
@click.argument("files", nargs=-1, required=True, metavar="RESULT.json...")
def ingest(
    db: str | None,
    inventory: str | None,
    master_key_file: str | None,
    max_size: int,
    files: tuple[str, ...],
) -> int:
    """Store results that `fleet sweep --format json` produced at sites (agent mode)."""
    _, inv = load_or_fail(inventory)
    keys = central_keys(master_key_file, warn=True)
    from fleet.pipeline import ingest as ingest_result

    refused = 0
    with store_for(db) as store:
        for name in files:
            # Each file on its own: one bad file is told and refused, the others go on.
            try:
                text = read_capped(name, max_size * 1024 * 1024)
                stored = ingest_result(store, text, name, inv, keys)
            except (OSError, UnicodeDecodeError) as exc:
                click.echo(f"fleet: {name}: cannot read: {exc}", err=True)
                refused += 1
                continue
            except (IngestError, StoreError) as exc:
                click.echo(f"fleet: {exc}", err=True)
                refused += 1
                continue
            except Exception as exc:  # a file fleet did not foresee costs that file only
                log.debug("ingest of %s failed", name, exc_info=True)
                said = for_terminal(f"{type(exc).__name__}: {exc}", 300)
                click.echo(f"fleet: {name}: cannot be ingested ({said})", err=True)
                refused += 1
                continue
            click.echo(
                f"{name}: stored sweep {stored.result.sweep.id} ({len(stored.result.sites)} "
                f"site(s)); {len(stored.changes)} change(s) since the previous sweep"
            )
            if stored.changes:
                click.echo(render_changes(stored.changes, stored.previous))
    if refused:
        raise Failure(f"{refused} of {len(files)} file(s) refused; nothing of theirs was stored")
    return 0


def read_capped(name: str, limit: int) -> str:
    """A file's text, refused (IngestError) when it is larger than `limit` bytes: never read
    whole into memory first."""
    with open(name, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise IngestError(
            f"{name}: larger than {limit // (1024 * 1024)} MB, more than an agent's result "
            "(raise the cap with --max-size if it really is one)"
        )
    return data.decode("utf-8")


@cli.command(name="notify")
@db_option
@inventory_option
@click.option("--sweep", "sweep_id", metavar="ID", help="The stored sweep to alert about.")
@click.option("--last", is_flag=True, help="The most recent sweep (the default).")
@click.option("--force", is_flag=True, help="Send even when the `when` rule would not.")
def notify_command(
    db: str | None, inventory: str | None, sweep_id: str | None, last: bool, force: bool
) -> int:
    """(Re-)send the alerts for a stored sweep."""
    if sweep_id and last:
        raise Failure("give --sweep ID or --last, not both")
    _, inv = load_or_fail(inventory)
    check_notifications(inv)
    assert inv.notifications is not None  # noqa: S101 - checked above
    from fleet.pipeline import stored_sweep

    with store_for(db) as store:
        sent = send_alerts(inv.notifications, stored_sweep(store, sweep_id), force=force)
    return 0 if sent else EXIT_UNKNOWN


@cli.command()
@db_option
@click.option(
    "--keep-days",
    type=click.IntRange(min=0),
    required=True,
    metavar="N",
    help="Keep the sweeps of the last N days.",
)
def prune(db: str | None, keep_days: int) -> int:
    """Delete sweeps older than N days from the history."""
    # The sweep's lock: a running sweep's row (and its sites) never vanish under it.
    with store_for(db, lock="fleet prune") as store:
        removed = store.prune(keep_days)
    click.echo(f"removed {removed} sweep(s) older than {keep_days} days")
    return 0
