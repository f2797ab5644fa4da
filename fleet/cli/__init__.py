"""The command line: the only package that reads argv, prints, or exits.

`app` holds the group and the plumbing shared by every command; `sweeping` the commands
that probe (validate, schema, sweep, scan, demo); `history` the ones that read the store
(report, history, diff, ingest, prune); `keys` the central's per-site agent keys; `central` the server and the agents' push.
"""

from __future__ import annotations

from fleet.cli.app import cli, main

# The command modules (central, history, keys, sweeping) load when their command runs
# (fleet/cli/lazy.py): start-up imports only click.
__all__ = ["cli", "main"]
