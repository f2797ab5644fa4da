"""The morning table: one row per site (or per device with --detail), then what to do."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from fleet.readiness import readiness
from fleet.report.sanitize import for_terminal
from fleet.report.summary import (
    blocklist_summary,
    checks_summary,
    device_counts,
    headline,
    top_flag,
)
from fleet.results import (
    Change,
    Delivery,
    DeliveryStatus,
    Severity,
    SweepReading,
    Verdict,
)

_COLOURS = {
    Verdict.critical: "\x1b[1;31m",
    Verdict.unknown: "\x1b[1;35m",
    Verdict.warn: "\x1b[33m",
    Verdict.ok: "\x1b[32m",
}
_RESET = "\x1b[0m"


def tabulate_rows(rows: Sequence[Sequence[object]], headers: list[str]) -> str:
    """A plain text table (numbers left as written)."""
    from tabulate import tabulate  # imported when a table is rendered, not for CSV or JSON

    return tabulate(rows, headers=headers, tablefmt="simple", disable_numparse=True)


def _verdict(verdict: Verdict, colour: bool) -> str:
    return f"{_COLOURS[verdict]}{verdict.value}{_RESET}" if colour else verdict.value


def render_table(
    result: SweepReading, *, detail: bool = False, colour: bool = False, width: int = 100
) -> str:
    """The sweep as text for people: changes first, the matrix, then the findings."""
    out = [headline(result)]
    cutoff = readiness(result.sites)
    if cutoff.at_risk:
        out.append(cutoff.headline + " (fleet report --last --readiness)")
    if result.changes:
        out += ["", render_changes(result.changes, result.previous_sweep)]
    out.append("")
    if detail:
        out.append(_device_rows(result, colour))
    else:
        out.append(_site_rows(result, colour))
    findings = _findings(result, width)
    if findings:
        out += ["", findings]
    return "\n".join(out) + "\n"


def _site_rows(result: SweepReading, colour: bool) -> str:
    rows = [
        [
            for_terminal(site.client, 30),
            for_terminal(site.site),
            for_terminal(site.egress_ip) or "?",
            for_terminal(blocklist_summary(site), 50),
            for_terminal(checks_summary(site), 50),
            device_counts(site),
            _verdict(site.verdict, colour),
            for_terminal(top_flag(site)),
        ]
        for site in result.sites
    ]
    headers = [
        "client",
        "site",
        "egress IP",
        "blocklists",
        "mx / spf",
        "devices",
        "verdict",
        "top flag",
    ]
    return tabulate_rows(rows, headers)


def _device_rows(result: SweepReading, colour: bool) -> str:
    rows = []
    for site in result.sites:
        for device in site.devices:
            reply = device.reply
            said = (
                f"{reply.code} {reply.text}"
                if reply and reply.code
                else (device.finding if device.category.value != "ok" else "")
            )
            rows.append(
                [
                    for_terminal(site.client, 24),
                    for_terminal(site.site),
                    for_terminal(device.device),
                    device.mode.value,
                    _verdict(device.verdict, colour),
                    device.category.value,
                    device.failed_stage.value if device.failed_stage else "",
                    for_terminal(said, 70),
                    for_terminal(checks_summary(site, device.device), 40),
                ]
            )
    headers = [
        "client",
        "site",
        "device",
        "mode",
        "verdict",
        "category",
        "failed at",
        "reply",
        "mx / spf",
    ]
    return tabulate_rows(rows, headers)


def _findings(result: SweepReading, width: int) -> str:
    blocks = []
    for site in result.sites:
        flags = [f for f in site.flags if f.severity is not Severity.info]
        if not flags:
            continue
        lines = [f"{for_terminal(site.site)} ({for_terminal(site.client)}): {site.verdict.value}"]
        for flag in flags:
            devices = for_terminal(", ".join(flag.devices))
            lines.append(f"  {for_terminal(flag.code)} [{flag.severity.value}] {devices}")
            lines += _wrap("evidence: " + for_terminal(flag.evidence, 600), width)
            lines += _wrap("do: " + for_terminal(flag.remediation), width)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _wrap(text: str, width: int) -> list[str]:
    # Never inside a word: host names, URLs and SPF terms must survive copy and paste.
    return textwrap.wrap(
        text,
        width,
        initial_indent="    ",
        subsequent_indent="      ",
        break_on_hyphens=False,
        break_long_words=False,
    )


def render_changes(changes: list[Change], previous: str | None) -> str:
    """What changed since the previous complete sweep of the same sites."""
    since = f" since sweep {previous}" if previous else ""
    lines = [f"Changes{since}:"]
    for change in changes:
        lines.append(
            f"  [{change.severity.value}] {for_terminal(change.site)}: "
            f"{for_terminal(change.summary, 200)}"
        )
    return "\n".join(lines)


def render_transcript(result: SweepReading) -> str:
    """Every stage of every conversation: what `fleet scan` shows for one site."""
    lines = []
    for site in result.sites:
        seen: set[str] = set()
        for device in site.devices:
            if device.conversation in seen:
                continue
            seen.add(device.conversation)
            sharing = [d.device for d in site.devices if d.conversation == device.conversation]
            had = site.conversation_of(device)
            lines.append(
                f"{for_terminal(site.site)}: {for_terminal(', '.join(sharing))} -> "
                f"{for_terminal(had.host)}:{had.port} ({device.mode.value}): "
                f"{device.category.value}"
            )
            for stage in had.transcript:
                took = f"{stage.elapsed_s * 1000:.0f} ms" if stage.elapsed_s is not None else ""
                sent = for_terminal(stage.command or "")
                lines.append(f"  {stage.stage.value:<9} {stage.status.value:<7} {took:>7}  {sent}")
                if stage.reply is not None:
                    code = stage.reply.code if stage.reply.code is not None else ""
                    for text in stage.reply.text.splitlines() or [""]:
                        lines += _transcript_lines(f"<- {code} ", for_terminal(text))
                elif stage.detail:
                    lines += _transcript_lines("!! ", for_terminal(stage.detail))
            if had.tls is not None and had.tls.version:
                tls = had.tls
                expiry = tls.not_after.date().isoformat() if tls.not_after else "?"
                lines.append(
                    f"  tls: {for_terminal(tls.version)} {for_terminal(tls.cipher)}; certificate {for_terminal(tls.subject)} "
                    f"by {for_terminal(tls.issuer)}, expires {expiry}, verified: {tls.verified}"
                )
            if device.delivery is not None:
                lines.append(f"  delivery: {for_terminal(describe_delivery(device.delivery), 200)}")
            lines.append("")
    return "\n".join(lines)


# Where a reply's text starts in the scan's transcript, and how wide it runs.
_TRANSCRIPT_INDENT = f"  {'':<9} {'':<7} {'':>7}  "
_TRANSCRIPT_WIDTH = 120


def _transcript_lines(marker: str, text: str) -> list[str]:
    """A reply line (or a stage's detail) whole, wrapped between words: the scan shows the
    full transcript (a delisting address and a server id come last in a long refusal)."""
    return textwrap.wrap(
        text,
        _TRANSCRIPT_WIDTH,
        initial_indent=_TRANSCRIPT_INDENT + marker,
        subsequent_indent=_TRANSCRIPT_INDENT + " " * len(marker),
        break_on_hyphens=False,
        break_long_words=False,
        drop_whitespace=True,
    ) or [(_TRANSCRIPT_INDENT + marker).rstrip()]


def describe_delivery(delivery: Delivery) -> str:
    """`junk (Junk) after 0.4 s; spf=fail dmarc=fail; deleted` for the scan's transcript."""
    where = delivery.status.value
    if delivery.folder is not None:
        where += f" ({delivery.folder}) after {delivery.delay_s} s"
    elif delivery.status is DeliveryStatus.not_delivered:
        where += f" within {delivery.within_s:g} s"
    verdicts = " ".join(
        f"{name}={value}"
        for name, value in (
            ("spf", delivery.spf),
            ("dkim", delivery.dkim),
            ("dmarc", delivery.dmarc),
            ("compauth", delivery.compauth),
        )
        if value is not None
    )
    parts = [
        f"{where} in {delivery.mailbox} ({delivery.method}, test id {delivery.test_message_id})",
        verdicts,
        "deleted" if delivery.deleted else "",
        delivery.detail or "",
    ]
    return "; ".join(p for p in parts if p)
