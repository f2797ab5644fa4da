"""Facts about a sweep that every report shows the same way."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from fleet.report.sanitize import for_terminal
from fleet.results import (
    VERDICT_RANK,
    BlocklistStatus,
    DirectSendCheck,
    Flag,
    MxCheck,
    MxResult,
    Severity,
    SiteResult,
    SpfCheck,
    SpfResult,
    SweepReading,
    SweepView,
    Verdict,
)


def exit_code(result: SweepReading) -> int:
    """Monitoring-plugin convention: 0 ok, 1 warn, 2 critical, 3 unknown (or incomplete).

    A critical finding outranks an unknown one: it is the thing to act on. An incomplete
    sweep is at least unknown: what was not swept cannot be called fine.
    """
    verdicts = {verdict for verdict, count in result.counts.items() if count}
    if Verdict.critical in verdicts:
        return 2
    if Verdict.unknown in verdicts or not result.sweep.complete:
        return 3
    if Verdict.warn in verdicts:
        return 1
    return 0


def verdict_counts(sweep: SweepReading) -> str:
    counts = sweep.counts
    ordered = sorted((v for v in counts if counts[v]), key=lambda v: -VERDICT_RANK[v])
    return ", ".join(f"{counts[v]} {v.value}" for v in ordered) or "no sites"


def headline(result: SweepReading) -> str:
    sweep = result.sweep
    when = sweep.started_at.strftime("%Y-%m-%d %H:%M UTC")
    if not sweep.complete:
        state = (
            f" INCOMPLETE ({for_terminal(sweep.interrupted)}; "
            f"{len(sweep.sites_missing)} sites not swept)"
        )
    elif sweep.interrupted:  # the stop came once every site had started: all finished
        state = f" ({for_terminal(sweep.interrupted)} once every site had started: all finished)"
    else:
        state = ""
    return f"fleet sweep {for_terminal(sweep.id)} at {when}: {result.site_count} sites: {verdict_counts(result)}{state}"


def blocklist_summary(site: SiteResult) -> str:
    """`clean`, `listed: XBL (zen.spamhaus.org)`, `unknown (2)`, or `-` when not checked."""
    if not site.blocklists:
        return "-"
    listed = [b for b in site.blocklists if b.status is BlocklistStatus.listed]
    unknown = [b for b in site.blocklists if b.status is BlocklistStatus.unknown]
    parts = []
    if listed:
        parts.append(
            "listed: " + ", ".join(f"{'/'.join(b.lists) or b.name} ({b.zone})" for b in listed)
        )
    if unknown:
        parts.append(f"unknown ({len(unknown)})")
    return "; ".join(parts) or "clean"


def top(site: SiteResult) -> Flag | None:
    """The flag to act on first: flags are sorted worst first, info last."""
    return next((f for f in site.flags if f.severity is not Severity.info), None)


def top_flag(site: SiteResult) -> str:
    flag = top(site)
    return flag.code if flag else ""


def device_counts(site: SiteResult) -> str:
    """`direct_send 2 (1 failing), submission 1`."""
    by_mode: dict[str, list[int]] = {}
    for device in site.devices:
        total_failing = by_mode.setdefault(device.mode.value, [0, 0])
        total_failing[0] += 1
        if device.verdict in (Verdict.critical, Verdict.unknown):
            total_failing[1] += 1
    parts = []
    for mode, (total, failing) in sorted(by_mode.items()):
        parts.append(f"{mode} {total}" + (f" ({failing} failing)" if failing else ""))
    return ", ".join(parts)


def check_results(site: SiteResult, kind: Literal["mx", "spf"], device: str | None = None) -> str:
    """`softfail (127.0.0.24)` for spf, `mismatch` for mx; `-` when nothing was checked.

    Distinct results only, so fifty copiers that share one result show it once.
    """
    checks = [c for c in site.checks if c.kind == kind and device in (None, c.device)]
    if not checks:
        return "-"
    parts = [
        f"{c.result} ({c.ip})" if isinstance(c, SpfCheck) and c.ip else c.result for c in checks
    ]
    return ", ".join(dict.fromkeys(parts))


def checks_summary(site: SiteResult, device: str | None = None) -> str:
    """For the table: `ok`, or what is wrong (`spf softfail`, `mx mismatch; spf fail`);
    `-` when nothing was checked."""
    checks = [c for c in site.checks if device in (None, c.device)]
    if not checks:
        return "-"
    wrong = [f"{c.kind} {c.result}" for c in checks if not _fine(c)]
    return "; ".join(dict.fromkeys(wrong)) or "ok"


def _fine(check: DirectSendCheck) -> bool:
    """Needs no action: "none" is fine for MX (nothing to compare with), not for SPF."""
    if isinstance(check, MxCheck):
        return check.result in (MxResult.match, MxResult.none)
    return check.result is SpfResult.pass_


def only_client(result: SweepReading, client: str) -> SweepView:
    """The sweep with one client's sites only (its changes too); verdicts counted again."""
    counts: dict[Verdict, int] = {}
    for site in result.sites:
        if site.client == client:
            counts[site.verdict] = counts.get(site.verdict, 0) + 1

    def sites() -> Iterator[SiteResult]:
        return (site for site in result.sites if site.client == client)

    changes = [c for c in result.changes if c.client == client]
    return SweepView(result.sweep, changes, result.previous_sweep, counts, sites)
