"""Every exception of ours, under one root.

`FleetError` is what the tool raises when it cannot do its job (a bad inventory, an
unwritable store, a secret that cannot be read); catching it says "one of ours" without
swallowing a bug. Network outcomes are not exceptions: probes return them as data.
`EgressError` and `ProbeTimeout` only travel between the egress, the probes and the
classifier, which turns them into a stage result.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


# NamedTuples, not frozen dataclasses: Python 3.11 compiles six methods for each frozen
# dataclass at import (about 0.5 ms a class of every command's start-up), a NamedTuple one.
class Position(NamedTuple):
    line: int  # 1-based
    column: int  # 1-based


class SourceError(NamedTuple):
    """One problem found in a source file, already in words a technician understands."""

    file: str
    position: Position | None
    path: str  # e.g. sites[2].devices[0].smtp.port ("" for the whole file)
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.position is not None:
            where = f"{where}:{self.position.line}:{self.position.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FleetError(Exception):
    """The root of every exception fleet raises on purpose."""


class SourceErrors(FleetError):
    """A source file could not be used; `errors` lists every problem found, with positions."""

    def __init__(self, errors: list[SourceError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


class YamlLoadError(SourceErrors):
    """The YAML itself is broken (syntax, duplicate keys, anchors we refuse)."""


class InventoryError(SourceErrors):
    """The inventory could not be used; `errors` lists every problem found."""


class SecretError(FleetError):
    """A configured secret could not be read (unset variable, missing file)."""


class NameserverError(FleetError, ValueError):
    """A nameserver given by name that the system resolver cannot turn into an address."""


class PreflightError(FleetError):
    """Secrets or files the planned sites need cannot be read; `problems` names each one.
    Raised before anything is sent."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(f"{len(problems)} secret(s) or file(s) missing")
        self.problems = problems


class PlanError(FleetError):
    """The filters select nothing, or name sites that do not exist."""


class StoreError(FleetError):
    """The store cannot be used (unwritable, corrupt, locked, a duplicate)."""


class Refusal(StrEnum):
    """Why a result is refused; the central server answers each with its own HTTP status."""

    invalid = "invalid"  # not a fleet result, damaged, or not acceptable as it is
    unsigned = "unsigned"  # no signature, and the central has a master key
    bad_signature = "bad_signature"  # signed, but not with the key of any site it names
    wrong_site = "wrong_site"  # signed with another site's key
    unknown_site = "unknown_site"  # a site (or client) the inventory does not know


class LockHeld(StoreError):
    """Another process holds the store's sweep lock; the message says who (pid, what, since when)."""


class IngestError(FleetError):
    """An agent result that must not be stored, with the reason."""

    def __init__(self, message: str, refusal: Refusal = Refusal.invalid) -> None:
        super().__init__(message)
        self.refusal = refusal


class AgentKeyError(FleetError):
    """The central's master key cannot be read or is unusable."""


class NotifyError(FleetError):
    """An alert could not be delivered (the sweep itself is already stored)."""


class PushError(FleetError):
    """The push cannot be attempted at all (a bad URL, an unusable spool folder)."""


class ListenError(FleetError, ValueError):
    """A --listen value that is not HOST:PORT."""


class ImapProblem(FleetError):
    """--verify-delivery: the mailbox could not be checked: why, in words (no secret)."""


class GraphProblem(FleetError):
    """--verify-delivery: the mailbox could not be checked through Graph: why, in words (no token)."""


class EgressFailure(StrEnum):
    """What went wrong on the way out, as the egress saw it; what each means (its category)
    is the judgement's (fleet.judgement.rule_ids.EGRESS_RULES, fleet.judgement.faults)."""

    host_does_not_resolve = "host_does_not_resolve"
    resolver_failed = "resolver_failed"
    no_address_for_bind = "no_address_for_bind"  # none of the bind address's IP version
    bind_address_not_here = "bind_address_not_here"
    proxy_silent = "proxy_silent"
    no_connection_from_site = "no_connection_from_site"  # the proxy answers; the host does not
    proxy_unreachable = "proxy_unreachable"
    destination_refused = "destination_refused"  # SOCKS5 replies 3-6: about the destination
    proxy_failed = "proxy_failed"
    proxy_error = "proxy_error"


class EgressError(FleetError):
    """The site's egress (SOCKS5 proxy, bind address) failed, or reported the target unreachable."""

    def __init__(self, failure: EgressFailure, detail: str) -> None:
        super().__init__(detail)
        self.failure = failure
        self.detail = detail


class ProbeTimeout(FleetError):
    """A stage or the site ran out of its time budget."""
