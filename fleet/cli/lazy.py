"""The command group loads a command's module only when that command runs.

`fleet --version` and `fleet --help` import click and this table, nothing else: no
pydantic models, no resolver, no HTTP or crypto libraries (issue 20: start-up under
0.15 s). `fleet validate` loads the inventory's modules, not the probes or the server.
tests/test_startup.py checks that this table names every command, in the module that
defines it, with the summary its own help starts with.
"""

from __future__ import annotations

import importlib

import click

# command -> (module that defines it, the first paragraph of its help for `fleet --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "agent-key": (
        "fleet.cli.keys",
        "Print the key to install at SITE_ID's agent (as FLEET_AGENT_KEY).",
    ),
    "demo": (
        "fleet.cli.sweeping",
        "Offline demo: start a Microsoft 365-like lab on loopback and sweep five sites.",
    ),
    "diff": ("fleet.cli.history", "What changed from SWEEP_A to SWEEP_B."),
    "history": (
        "fleet.cli.history",
        "Past sweeps, or one site's verdict, IP, flags and listings over time.",
    ),
    "ingest": (
        "fleet.cli.history",
        "Store results that `fleet sweep --format json` produced at sites (agent mode).",
    ),
    "notify": ("fleet.cli.history", "(Re-)send the alerts for a stored sweep."),
    "prune": ("fleet.cli.history", "Delete sweeps older than N days from the history."),
    "push": (
        "fleet.cli.central",
        "Deliver the spooled results to the central at URL, oldest first.",
    ),
    "report": (
        "fleet.cli.history",
        "Re-render a stored sweep without probing again (the CSV for account managers).",
    ),
    "scan": (
        "fleet.cli.sweeping",
        "Rescan one site now and show every stage of its conversations.",
    ),
    "schema": (
        "fleet.cli.sweeping",
        "Print the inventory's JSON Schema (for editor completion of the YAML).",
    ),
    "serve": (
        "fleet.cli.central",
        "Receive the agents' results (POST /api/v1/results) and show the latest of every site.",
    ),
    "sweep": (
        "fleet.cli.sweeping",
        "Sweep the inventory's sites: SMTP conversations from each site's egress, and blocklists.",
    ),
    "validate": (
        "fleet.cli.sweeping",
        "Check an inventory; exit 0 with a summary, or 3 with every problem found.",
    ),
}


class LazyGroup(click.Group):
    """A group whose commands register themselves when their module is first imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMANDS, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            importlib.import_module(COMMANDS[cmd_name][0])  # its @cli.command registers it
        return self.commands.get(cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list of `fleet --help`, from the table: no command module loaded."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in COMMANDS:
                # click's own shortening, on a stand-in that has only the help text
                summary = click.Command(name, help=COMMANDS[name][1])
                rows.append((name, summary.get_short_help_str(limit)))
            else:  # registered by a module loaded anyway (an extension, a test)
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)
