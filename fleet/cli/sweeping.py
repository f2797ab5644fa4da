"""Commands that read an inventory and probe: validate, schema, sweep, scan, demo."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from fleet.cli.app import (
    EXIT_UNKNOWN,
    Failure,
    check_notifications,
    cli,
    colour_wanted,
    command_secrets,
    db_option,
    history_store,
    inventory_option,
    load_or_fail,
    progress_bar,
    run_async,
    say_alerted,
    spool_option,
    sweep_with_signals,
    write_output,
)
from fleet.cli.output import emit, readiness_option
from fleet.report import FORMATS

if TYPE_CHECKING:
    # Loaded by the commands that use them: `fleet validate` loads the inventory's
    # modules only, not the probes, the store, the reports or the agent's HTTP client.
    from fleet.inventory import Inventory
    from fleet.plan import SweepPlan
    from fleet.results import SweepReading
    from fleet.store import Store
    from fleet.verify.delivery import DeliveryOptions


@cli.command()
@click.argument("inventory_arg", metavar="[INVENTORY]", required=False)
@inventory_option
def validate(inventory_arg: str | None, inventory: str | None) -> int:
    """Check an inventory; exit 0 with a summary, or 3 with every problem found."""
    from fleet.inventory import preflight

    path, inv = load_or_fail(inventory_arg or inventory)
    click.echo(f"{path}: valid: {inv.summary()}")
    for problem in preflight(inv):
        click.echo(f"note: a sweep here would stop on: {problem}", err=True)
    return 0


# The demo lab's servers: the `lab` extra, not installed with a plain `pip install fleet`.
LAB_LIBRARIES = ("aiosmtpd", "dnslib", "trustme")


@cli.command()
def schema() -> int:
    """Print the inventory's JSON Schema (for editor completion of the YAML)."""
    from fleet.inventory import inventory_schema

    click.echo(json.dumps(inventory_schema(), indent=2))
    return 0


def _report_options(func: Callable[..., int]) -> Callable[..., int]:
    options = [
        click.option(
            "--format",
            "result_format",
            type=click.Choice(FORMATS),
            default="table",
            show_default=True,
            help="table for people, csv for account managers, json for machines, html for a "
            "page to read, print or mail.",
        ),
        click.option(
            "--output", "-o", metavar="FILE", help="Write the report to FILE instead of stdout."
        ),
        click.option("--detail", is_flag=True, help="Table: one row per device."),
        click.option("--per-site", is_flag=True, help="CSV: one row per site."),
        readiness_option,
        click.option(
            "--send-test",
            is_flag=True,
            help="Also send DATA: a small, labelled test message (its id is in the report).",
        ),
        click.option(
            "--verify-delivery",
            is_flag=True,
            help="With --send-test: find each test message in its device's `verify` mailbox "
            "(Inbox or Junk), record where and the receiver's verdict, then delete it.",
        ),
        click.option(
            "--keep-test-messages",
            is_flag=True,
            help="With --verify-delivery: leave the test messages in the mailbox.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
        click.option("--no-store", is_flag=True, help="Do not keep this sweep in the history."),
        db_option,
        inventory_option,
    ]
    for option in reversed(options):
        func = option(func)
    return func


@cli.command()
@_report_options
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
@click.option(
    "--notify", is_flag=True, help="After the sweep is stored, send the inventory's alerts."
)
@click.option(
    "--push",
    "push_url",
    metavar="URL",
    help="Deliver the sealed result to the central server at URL (agent mode).",
)
@spool_option
def sweep(
    inventory: str | None,
    site_ids: tuple[str, ...],
    client: str | None,
    tags: tuple[str, ...],
    dry_run: bool,
    notify: bool,
    push_url: str | None,
    spool: str | None,
    result_format: str,
    output: str | None,
    detail: bool,
    per_site: bool,
    readiness_view: bool,
    send_test: bool,
    verify_delivery: bool,
    keep_test_messages: bool,
    quiet: bool,
    no_store: bool,
    db: str | None,
) -> int:
    """Sweep the inventory's sites: SMTP conversations from each site's egress, and blocklists."""
    from fleet.plan import describe

    path, inv, plan = _plan_or_fail(inventory, site_ids, client, tags)
    delivery = _delivery_options(plan, send_test, verify_delivery, keep_test_messages)
    agent = None
    push_note = ""
    if push_url is not None:  # the server and HTTP modules load only for agents that push
        from fleet.cli.central import check_push, describe_push

        if dry_run:  # checked, described, and nothing created (not even the spool)
            push_note = describe_push(push_url, spool) + "\n"
        else:
            agent = check_push(push_url, spool)  # a bad URL stops before anything is probed
    if dry_run and result_format == "json":
        document = _dry_run_document(plan, send_test, delivery is not None, push_url is not None)
        write_output(json.dumps(document, indent=2, ensure_ascii=False) + "\n", output)
        return 0
    if dry_run:
        test_note = ""
        if send_test:
            from fleet.plan import describe_test_message

            described = describe_test_message(
                plan, verify=delivery is not None, keep=keep_test_messages
            )
            test_note = described + "\n"
        write_output(describe(plan) + "\n" + test_note + push_note, output)
        return 0
    if notify:
        check_notifications(inv)
        when = inv.notifications.when if inv.notifications is not None else "changes"
        if no_store and when != "always":
            # Changes are measured against the stored history: without it, `changes` and
            # `critical` alerts would never be sent, and nobody would know why.
            raise Failure(
                f"--notify with --no-store: `notifications.when: {when}` needs the history to "
                "see what changed; keep the store, or set `when: always`"
            )
    from fleet.errors import PushError
    from fleet.pipeline import Published, publish

    if agent is not None and agent.spool.pending():
        agent.deliver()  # what earlier runs could not deliver goes first, oldest first
    with history_store(not no_store, db, lock="fleet sweep") as store:
        # JSON, HTML (and the pushed result) carry every transcript
        light = result_format not in ("json", "html") and agent is None
        result, unstored = _probe(
            path, plan, store, send_test=send_test, quiet=quiet, light=light, delivery=delivery
        )
        code = _report(
            result,
            result_format,
            output,
            detail=detail,
            per_site=per_site,
            store=store,
            readiness_view=readiness_view,
        )
        alerts = inv.notifications if notify else None
        published = Published(None, None)
        if agent is not None or alerts is not None:  # else no loop is worth starting
            try:
                published = run_async(
                    publish(
                        result,
                        outbox=agent.outbox if agent is not None else None,
                        notifications=alerts,
                        secrets=command_secrets() if alerts is not None else None,
                    )
                )
            except PushError as exc:
                raise Failure(str(exc)) from None
        if agent is not None and published.pushed is not None:
            agent.say(published.pushed)
            if agent.refused and code < 2:
                code = EXIT_UNKNOWN  # refused, untrusted, or waiting for days: a person must look
        if unstored is not None:
            _say_unstored(unstored)
            code = EXIT_UNKNOWN
        stored = store is not None and unstored is None
        if (
            alerts is not None
            and published.alerted is not None
            and not say_alerted(published.alerted, alerts, stored=stored)
        ):
            return EXIT_UNKNOWN
    return code


def _say_unstored(why: str) -> None:
    click.echo(
        f"fleet: the store could not be written ({why}); the sweep went on and its report is "
        "complete, but the history lacks (part of) this sweep",
        err=True,
    )


@cli.command()
@click.argument("site_id")
@_report_options
def scan(
    site_id: str,
    inventory: str | None,
    result_format: str,
    output: str | None,
    detail: bool,
    per_site: bool,
    readiness_view: bool,
    send_test: bool,
    verify_delivery: bool,
    keep_test_messages: bool,
    quiet: bool,
    no_store: bool,
    db: str | None,
) -> int:
    """Rescan one site now and show every stage of its conversations."""
    from fleet.report.table import render_transcript

    path, _, plan = _plan_or_fail(inventory, (site_id,))
    delivery = _delivery_options(plan, send_test, verify_delivery, keep_test_messages)
    with history_store(not no_store, db, lock="fleet sweep") as store:
        result, unstored = _probe(
            path, plan, store, send_test=send_test, quiet=quiet, light=False, delivery=delivery
        )
        if result_format == "table" and output in (None, "-"):
            click.echo(render_transcript(result))
        code = _report(
            result,
            result_format,
            output,
            detail=detail,
            per_site=per_site,
            store=store,
            readiness_view=readiness_view,
        )
        if unstored is not None:
            _say_unstored(unstored)
            return EXIT_UNKNOWN
        return code


def _delivery_options(
    plan: SweepPlan, send_test: bool, verify_delivery: bool, keep: bool
) -> DeliveryOptions | None:
    """--verify-delivery needs a test message to look for, and a mailbox to look in."""
    if keep and not verify_delivery:
        raise Failure("--keep-test-messages goes with --verify-delivery")
    if not verify_delivery:
        return None
    if not send_test:
        raise Failure(
            "--verify-delivery needs --send-test: without a test message there is "
            "nothing to look for"
        )
    if not any(d.verify is not None for sp in plan.sites for d in sp.site.devices):
        raise Failure(
            "--verify-delivery: no selected device has a `verify` mailbox in the "
            "inventory; nothing was probed"
        )
    # Its HTTP and IMAP clients load only for a sweep that verifies delivery.
    from fleet.verify.delivery import DeliveryOptions

    return DeliveryOptions(keep=keep)


def _dry_run_document(
    plan: SweepPlan, send_test: bool, verify: bool, push: bool
) -> dict[str, object]:
    """`--dry-run --format json`: what the text says, for scripts (nothing is sent)."""
    concurrency = plan.inventory.defaults.concurrency
    return {
        "dry_run": True,
        "filters": list(plan.filters),
        "counts": plan.counts()._asdict(),
        "concurrency": {
            "global": concurrency.global_,
            "per_site": concurrency.per_site,
            "per_host": concurrency.per_host,
        },
        "blocklists": [{"zone": z.display, "name": z.name} for z in plan.zones],
        "send_test": send_test,
        "verify_delivery": verify,
        "push": push,
        "sites": [
            {
                "site": sp.site.id,
                "client": sp.site.client,
                "via": sp.site.egress.via,
                "bind": sp.site.egress.bind,
                "expected_ip": sp.site.egress.ip,
                "conversations": [
                    {
                        "mode": c.spec.mode.value,
                        "host": c.spec.host,
                        "port": c.spec.port,
                        "security": c.spec.security.value,
                        "username": c.spec.username,
                        "oauth2": c.spec.token_request.describe()
                        if c.spec.token_request is not None
                        else None,
                        "mail_from": c.spec.mail_from,
                        "rcpt_to": c.spec.rcpt_to,
                        "devices": [d.id for d in c.devices],
                    }
                    for c in sp.conversations
                ],
            }
            for sp in plan.sites
        ],
    }


def _plan_or_fail(
    inventory: str | None,
    site_ids: tuple[str, ...] = (),
    client: str | None = None,
    tags: tuple[str, ...] = (),
) -> tuple[str, Inventory, SweepPlan]:
    from fleet.errors import PlanError
    from fleet.pipeline import plan_for

    path, inv = load_or_fail(inventory)
    try:
        return path, inv, plan_for(inv, site_ids, client, tags)
    except PlanError as exc:
        raise Failure(str(exc)) from None


def _probe(
    path: str | None,
    plan: SweepPlan,
    store: Store | None,
    *,
    send_test: bool,
    quiet: bool,
    light: bool,
    delivery: DeliveryOptions | None = None,
) -> tuple[SweepReading, str | None]:
    """The sweep through the pipeline, with a progress bar and Ctrl-C handling; the second
    value says why the store could not take (part of) it, when it could not."""
    # The sweep's own modules (the runner, the matrix) load now, before the loop starts:
    # still start-up, collected rarely and then frozen with the rest of it
    # (app.end_of_startup), not walked by some twenty collections at the usual pace as the
    # sweep began (about 4 ms of CPU).
    from fleet import matrix, runner  # noqa: F401
    from fleet.errors import NameserverError, PreflightError
    from fleet.pipeline import sweep

    update, close = progress_bar(len(plan.sites), quiet)
    try:
        swept = run_async(
            sweep(
                plan,
                store,
                send_test=send_test,
                light=light,
                on_site=update,
                inventory_path=path,
                execute=sweep_with_signals,
                delivery=delivery,
            ),
            sites=len(plan.sites),
        )
    except PreflightError as exc:  # the pipeline checks every secret before it probes
        close()
        for problem in exc.problems:
            click.echo(problem, err=True)
        raise Failure(f"{exc}; nothing was probed") from None
    except NameserverError as exc:
        raise Failure(f"{exc}; nothing was probed") from None
    finally:
        close()
    return swept.result, swept.unstored


def _report(
    result: SweepReading,
    result_format: str,
    output: str | None,
    *,
    detail: bool,
    per_site: bool,
    store: Store | None = None,
    readiness_view: bool = False,
) -> int:
    from fleet.report.summary import exit_code, headline

    emit(
        result,
        result_format,
        output,
        detail=detail,
        per_site=per_site,
        store=store,
        readiness_view=readiness_view,
    )
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
@click.option(
    "--html",
    "html_path",
    default="fleet-demo.html",
    show_default=True,
    metavar="FILE",
    help="Where to write the HTML report.",
)
@click.option("--keep", metavar="DIR", help="Keep the lab's files (inventory, CA) in DIR.")
def demo(csv_path: str, html_path: str, keep: str | None) -> int:
    """Offline demo: start a Microsoft 365-like lab on loopback and sweep five sites."""
    import tempfile

    from fleet.inventory import load_inventory

    try:
        from fleet.lab.demo import INTRO, DemoLab
    except ModuleNotFoundError as exc:
        if exc.name not in LAB_LIBRARIES:
            raise
        raise Failure(
            f"the demo lab needs {exc.name}, which is not installed: "
            "pip install 'fleet[lab]' (a sweep does not need it)"
        ) from None
    from fleet.pipeline import plan_for, sweep
    from fleet.report import render
    from fleet.report.summary import exit_code

    async def run(folder: Path) -> SweepReading:
        lab = DemoLab(folder)
        inventory_path = await lab.start()
        try:
            plan = plan_for(load_inventory(str(inventory_path)))
            swept = await sweep(
                plan, None, inventory_path=str(inventory_path), secrets=command_secrets()
            )
            return swept.result
        finally:
            await lab.stop()

    if keep:
        folder = Path(keep)
        folder.mkdir(parents=True, exist_ok=True)
        result = run_async(run(folder))
    else:
        with tempfile.TemporaryDirectory(prefix="fleet-demo-") as temp:
            result = run_async(run(Path(temp)))
    click.echo(INTRO)
    click.echo(render("table", result, colour=colour_wanted(None)), nl=False)
    write_output(render("csv", result), csv_path, bom=True)
    write_output(render("html", result), html_path)
    click.echo(f"\nCSV for account managers: {csv_path}")
    click.echo(f"HTML report (open it in a browser): {Path(html_path).resolve()}")
    click.echo(
        f"(a real sweep would exit {exit_code(result)}: 0 ok, 1 warn, 2 critical, 3 unknown)"
    )
    return 0
