"""Per-site agent keys on the central machine: the master key option, and `fleet agent-key`."""

from __future__ import annotations

import os
from collections.abc import Callable

import click

from fleet.agent import KEY_ENV, MASTER_KEY_ENV, SiteKeys, derive_site_key, load_master_key
from fleet.cli.app import Failure, cli, command_secrets, inventory_option, load_or_fail
from fleet.errors import AgentKeyError

master_key_option: Callable[[Callable[..., int]], Callable[..., int]] = click.option(
    "--master-key-file",
    metavar="FILE",
    help=f"The agents' master key (default: ${MASTER_KEY_ENV}); site keys derive from it.",
)


def _master_key(master_key_file: str | None) -> bytes | None:
    """The master key, registered with this command's secrets (never in its log)."""
    try:
        master = load_master_key(master_key_file)
    except AgentKeyError as exc:
        raise Failure(str(exc)) from None
    if master is not None:
        command_secrets().add(master.decode("utf-8"))
    return master


def central_keys(master_key_file: str | None, *, warn: bool) -> SiteKeys:
    """The central's site keys; without a master key, say loudly (when `warn`) that agent
    signatures are not checked."""
    keys = SiteKeys(_master_key(master_key_file))
    if warn and not keys.checks:
        click.echo(
            f"fleet: WARNING: no agent master key (${MASTER_KEY_ENV} or --master-key-file): "
            "agent signatures are NOT checked, so any file with a valid digest is accepted "
            "for any site",
            err=True,
        )
        if os.environ.get(KEY_ENV):
            click.echo(
                f"fleet: WARNING: ${KEY_ENV} is an agent's own site key and verifies nothing "
                f"on the central; set ${MASTER_KEY_ENV} here instead",
                err=True,
            )
    return keys


@cli.command(name="agent-key")
@click.argument("site_id")
@inventory_option
@master_key_option
def agent_key(site_id: str, inventory: str | None, master_key_file: str | None) -> int:
    """Print the key to install at SITE_ID's agent (as FLEET_AGENT_KEY)."""
    _, inv = load_or_fail(inventory)
    if site_id not in {site.id for site in inv.sites}:
        raise Failure(f"site '{site_id}' is not in the inventory")
    master = _master_key(master_key_file)
    if master is None:
        raise Failure(
            f"no master key: set ${MASTER_KEY_ENV} or give --master-key-file "
            "(e.g. the output of `openssl rand -hex 32`, kept only on this machine)"
        )
    click.echo(derive_site_key(master, site_id))
    return 0
