"""Agents and the central server: `fleet serve`, `fleet push`, and `fleet sweep --push`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import click

from fleet.agent import KEY_ENV
from fleet.cli.app import (
    EXIT_UNKNOWN,
    Failure,
    cli,
    db_option,
    end_of_startup,
    inventory_option,
    load_or_fail,
    open_store,
    spool_option,
)
from fleet.cli.keys import central_keys, master_key_option
from fleet.errors import PushError, StoreError
from fleet.pipeline import Outbox, push_spooled
from fleet.push import STUCK_AFTER_S, Delivery, Spool, default_spool_dir, results_url
from fleet.report.sanitize import for_terminal
from fleet.store import default_db_path

# The contract's defaults. fleet.serve (Starlette, uvicorn) is imported only by `fleet serve`:
# `sweep --push` and `push` start without it.
LISTEN_DEFAULT = "127.0.0.1:8025"
MAX_BODY_BYTES_DEFAULT = 8 * 1024 * 1024  # one site's result is tens of kilobytes


@cli.command()
@inventory_option
@db_option
@click.option(
    "--listen",
    default=LISTEN_DEFAULT,
    show_default=True,
    metavar="HOST:PORT",
    help="Where to listen ([::1]:PORT for IPv6); keep loopback behind a reverse proxy.",
)
@click.option("--tls-cert", metavar="FILE", help="Serve HTTPS with this certificate (PEM).")
@click.option("--tls-key", metavar="FILE", help="The certificate's private key (PEM).")
@master_key_option
@click.option(
    "--max-body-bytes",
    type=click.IntRange(min=1024),
    default=MAX_BODY_BYTES_DEFAULT,
    show_default=True,
    help="Larger results are refused (413).",
)
def serve(
    inventory: str | None,
    db: str | None,
    listen: str,
    tls_cert: str | None,
    tls_key: str | None,
    master_key_file: str | None,
    max_body_bytes: int,
) -> int:
    """Receive the agents' results (POST /api/v1/results) and show the latest of every site."""
    from fleet.errors import ListenError
    from fleet.serve import Central, ensure_tls_files, parse_listen, run_central

    inventory_file, inv = load_or_fail(inventory)
    keys = central_keys(master_key_file, warn=False)
    if not keys.checks:
        raise Failure(
            "fleet serve needs the agents' master key ($FLEET_AGENT_MASTER_KEY or "
            "--master-key-file): without it anyone who can reach the server could write "
            "any site's results"
        )
    try:
        host, port = parse_listen(listen)
    except ListenError as exc:
        raise Failure(str(exc)) from None
    problem = ensure_tls_files(tls_cert, tls_key)
    if problem:
        raise Failure(problem)
    # The access log is the server's output: shown without --debug, scrubbed like the rest.
    logging.getLogger("fleet.access").setLevel(logging.INFO)
    logging.getLogger("uvicorn.error").setLevel(logging.INFO)
    db_path = db or default_db_path()
    open_store(db_path).close()  # an unusable store is a clear error before serving
    central = Central(
        inv, db_path, keys, max_body_bytes=max_body_bytes, inventory_file=inventory_file
    )
    scheme = "https" if tls_cert else "http"
    shown = f"[{host}]" if ":" in host else host
    click.echo(
        f"fleet serve: {len(inv.sites)} site(s), store {db_path}, "
        f"agents push to {scheme}://{shown}:{port}",
        err=True,
    )
    end_of_startup()  # it serves until stopped: the collector's usual pace from here
    try:
        run_central(central, host, port, tls_cert=tls_cert, tls_key=tls_key)
    except StoreError as exc:
        raise Failure(str(exc)) from None
    return 0


@cli.command()
@click.argument("url")
@spool_option
def push(url: str, spool: str | None) -> int:
    """Deliver the spooled results to the central at URL, oldest first.

    Exit 0 when the spool is empty afterwards, 3 while results wait (the central refused
    one, or could not be reached)."""
    agent = _agent_push(url, spool, sealing=False)
    if not agent.spool.pending():
        click.echo(f"nothing to deliver: the spool {agent.spool.folder} is empty", err=True)
        return 0
    agent.deliver()
    # Exit 3 while anything is left (refused, or the central unreachable): a job running
    # `fleet push` on its own then shows that the results have not arrived.
    return EXIT_UNKNOWN if agent.spool.pending() else 0


@dataclass
class AgentPush:
    """An agent's way home in one run: the central's endpoint and the spool (the pipeline
    pushes through them), and whether a person must look: the central refused a result,
    its certificate is not trusted, or results have waited for days (Delivery.needs_a_person)."""

    outbox: Outbox
    refused: bool = False

    @property
    def spool(self) -> Spool:
        return self.outbox.spool

    def deliver(self) -> None:
        """Deliver what waits in the spool, oldest first, and say what became of it."""
        try:
            outcome = push_spooled(self.outbox)
        except PushError as exc:
            raise Failure(str(exc)) from None
        self.say(outcome)

    def say(self, outcome: Delivery) -> None:
        """Say what became of the spool in one push."""
        _say(outcome, self.spool)
        self.refused = self.refused or outcome.needs_a_person


def check_push(url: str | None, spool: str | None) -> AgentPush | None:
    """For `sweep --push`: the endpoint and the spool, checked before anything is probed."""
    return None if url is None else _agent_push(url, spool, sealing=True)


def describe_push(url: str, spool: str | None) -> str:
    """For `sweep --push --dry-run`: where the result would go, the URL checked as a real
    push checks it; the spool folder is named, not created."""
    try:
        endpoint = results_url(url)
    except PushError as exc:
        raise Failure(str(exc)) from None
    folder = Path(spool) if spool else default_spool_dir()
    return f"then push the sealed result to {endpoint}, spooled in {folder} until delivered"


def _agent_push(url: str, spool: str | None, *, sealing: bool) -> AgentPush:
    try:
        folder = Path(spool) if spool else default_spool_dir()
        agent = AgentPush(Outbox(results_url(url), Spool(folder)))
    except PushError as exc:
        raise Failure(str(exc)) from None
    # Only a sweep signs: `fleet push` sends files sealed when they were swept.
    if sealing and not os.environ.get(KEY_ENV):
        click.echo(
            f"fleet: warning: ${KEY_ENV} is not set: results go unsigned, and a central with "
            "a master key refuses them",
            err=True,
        )
    return agent


def _say(outcome: Delivery, queue: Spool) -> None:
    if outcome.skipped:
        click.echo(f"fleet: {outcome.skipped}", err=True)
    for path, status in outcome.delivered:
        verb = "stored" if status == 201 else "already stored"
        click.echo(f"delivered {path.name} to the central ({status} {verb})", err=True)
    for path, status, reason in outcome.refused:
        click.echo(
            f"fleet: the central refused {path.name} ({status}): {for_terminal(reason, 500)}; "
            f"it stays in {queue.folder}",
            err=True,
        )
    if outcome.unreachable:
        click.echo(
            f"fleet: {for_terminal(outcome.unreachable, 500)}: {outcome.waiting} result(s) wait "
            f"in the spool {queue.folder}; the next run (or `fleet push`) delivers them",
            err=True,
        )
    if outcome.lasting:
        click.echo(
            "fleet: the central's certificate is not trusted here: this will not pass by "
            "itself (a TLS-inspecting firewall, or an expired or renamed certificate?)",
            err=True,
        )
    if outcome.waiting and outcome.oldest_waiting_s > STUCK_AFTER_S:
        click.echo(
            f"fleet: the oldest has waited {outcome.oldest_waiting_s / 3600:.0f} h in the "
            f"spool {queue.folder}: the central has not had this site's results for days",
            err=True,
        )
