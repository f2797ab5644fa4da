"""The health matrix as one self-contained HTML page (inline CSS and SVG, a little inline
JavaScript for filtering that the page does not need), and the alert e-mail's HTML part
from the same templates.

Every string that came from a server, an agent's file or the inventory is text, never
markup: Jinja2 autoescapes every expression, control characters and bidi overrides are
removed before that, and the page's Content-Security-Policy lets only its own script run
and nothing be fetched.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from typing import TYPE_CHECKING, Protocol

from markupsafe import Markup

from fleet import m365
from fleet.readiness import ReadinessRow, readiness
from fleet.report.sanitize import strip_controls
from fleet.report.summary import blocklist_summary, checks_summary
from fleet.results import (
    SEVERITY_ORDER,
    VERDICT_RANK,
    BlocklistStatus,
    Change,
    ChangeKind,
    DeviceResult,
    Flag,
    FlagCode,
    ListingSeverity,
    Mode,
    Severity,
    SiteResult,
    SweepInfo,
    SweepReading,
    Verdict,
)

if TYPE_CHECKING:
    from jinja2 import Environment

TREND_LENGTH = 30  # sweeps shown in each site's trend strip
EMAIL_SITES = 50  # sites listed in the alert e-mail's HTML part, worst first

# The words shown with every colour (never colour alone), worst first.
LEGEND = (
    ("critical", "critical: scanning to e-mail fails, or will; act now"),
    ("unknown", "unknown: fleet could not tell (a lookup or the site could not be checked)"),
    ("warn", "warn: works today, at risk"),
    ("ok", "ok: nothing to do"),
    ("none", "none / not checked: nothing of this kind at the site"),
)

_MODE_TITLES = {
    Mode.direct_send: "Direct Send",
    Mode.relay: "Relay",
    Mode.submission: "Submission",
}
# The flags of the Direct Send checks (MX and SPF readiness): their own column.
_CHECK_FLAGS = frozenset(
    {
        FlagCode.MX_MISMATCH,
        FlagCode.MX_UNKNOWN,
        FlagCode.SPF_NOT_AUTHORISED,
        FlagCode.SPF_BROKEN,
        FlagCode.SPF_UNKNOWN,
    }
)
_SEVERITY_STYLE = {
    Severity.critical: "critical",
    Severity.unknown: "unknown",
    Severity.warn: "warn",
    Severity.info: "info",
}


class HistoryPoint(Protocol):
    """One site's result in one past sweep (fleet.store.SiteHistoryRow has this shape)."""

    @property
    def sweep_id(self) -> str: ...
    @property
    def started_at(self) -> str: ...
    @property
    def verdict(self) -> str: ...
    @property
    def complete(self) -> bool: ...


# A site id -> its past results, newest first: a mapping, or a function (a store query).
History = Mapping[str, Sequence[HistoryPoint]] | Callable[[str], Sequence[HistoryPoint]]


# ---- what the templates read ---------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One matrix cell: a style (a verdict, `info` or `none`) and the words that say it."""

    style: str
    label: str
    lines: tuple[str, ...] = ()


@dataclass(frozen=True)
class TrendMark:
    sweep_id: str
    when: str
    verdict: str
    complete: bool


@dataclass(frozen=True)
class TranscriptLine:
    stage: str
    status: str
    took: str
    text: str
    kind: str  # "sent", "reply", "error" or "note" (what fleet noticed on a stage that went well)

    @property
    def prefix(self) -> str:
        """The columns before the text, as `fleet scan` prints them."""
        arrows = {"sent": "-> ", "reply": "<- ", "error": "!! ", "note": "-- "}
        arrow = arrows[self.kind] if self.text else ""
        return f"{self.stage:<9} {self.status:<7} {self.took:>7}  {arrow}"


@dataclass(frozen=True)
class Conversation:
    devices: str
    summary: str
    verdict: str
    lines: tuple[TranscriptLine, ...]
    tls: str | None


@dataclass(frozen=True)
class SiteRow:
    site: SiteResult
    anchor: str
    egress: Cell
    checks: Cell
    modes: dict[Mode, Cell]
    trend: tuple[TrendMark, ...]
    trend_label: str
    flags: tuple[Flag, ...] = ()
    conversations: tuple[Conversation, ...] = ()


@dataclass(frozen=True)
class ClientGroup:
    client: str
    verdict: str
    rows: list[SiteRow] = field(default_factory=list)


@dataclass(frozen=True)
class BasicAuthNotice:
    cutoff: str
    days_left: int  # negative once the date has passed
    copiers: int  # that log in to Microsoft 365 with a password (fleet.readiness: at risk)
    sites: int
    proven: int  # of those, with a way forward this sweep proved (OAuth, High Volume Email)
    rows: list[ReadinessRow]
    source: str


# ---- rendering -----------------------------------------------------------------------------


def render_html(
    sweep: SweepReading,
    *,
    history: History | None = None,
    client: str | None = None,
    today: date | None = None,
    title: str = "fleet: scan-to-email health",
) -> str:
    """The whole report as one self-contained HTML page.

    `history` gives a site's past results, newest first (a mapping by site id, or a
    function such as `lambda site: store.site_history(site, TREND_LENGTH, until=...)`);
    each site's trend strip shows the last TREND_LENGTH sweeps, ending with this one.
    `client` keeps one client's sites only. `today` dates the Basic AUTH countdown
    (default: the day the sweep started).
    """
    context = _context(sweep, history=history, client=client, today=today)
    return (
        _environment()
        .get_template("report.html.j2")
        .render(
            title=title,
            script=_SCRIPT,
            csp=content_security_policy(),
            legend=LEGEND,
            **context,
        )
    )


def render_email_html(
    sweep: SweepReading, *, today: date | None = None, client: str | None = None
) -> str:
    """The alert e-mail's HTML part: the same header, changes and findings, in the subset
    mail clients show (tables and inline styles; no script, SVG or collapsible parts)."""
    # Mail clients cut long messages (Gmail at about 100 kB): the worst sites, then a count.
    context = _context(
        sweep,
        history=None,
        client=client,
        today=today,
        transcripts=False,
        keep_ok=False,
        limit=EMAIL_SITES,
    )
    return _environment().get_template("email.html.j2").render(legend=LEGEND, **context)


def content_security_policy() -> str:
    """The policy the page carries in a meta tag (a server should send it as a header too):
    nothing is fetched, and only the page's own script runs."""
    digest = base64.b64encode(hashlib.sha256(_SCRIPT.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
        f"script-src 'sha256-{digest}'; base-uri 'none'; form-action 'none'"
    )


def _context(
    view: SweepReading,
    *,
    history: History | None,
    client: str | None,
    today: date | None,
    transcripts: bool = True,
    keep_ok: bool = True,
    limit: int | None = None,
) -> dict[str, object]:
    """What the templates read. Sites are read once; `keep_ok=False` (the e-mail) keeps
    only the rows of sites that are not ok, and `limit` the worst so many of those."""
    info = view.sweep
    day = today or info.started_at.date()
    groups: dict[str, list[SiteRow]] = {}
    counts: dict[str, int] = {v.value: 0 for v in sorted(Verdict, key=_verdict_order)}

    def each_site() -> Iterator[SiteResult]:
        # One pass over the sites (a stored sweep streams them): rows here, and the
        # cut-off readiness from the same sites as they go by.
        for site in view.sites:
            if client is not None and site.client != client:
                continue
            counts[site.verdict.value] += 1
            yield site
            if not keep_ok and site.verdict is Verdict.ok:
                continue
            points = _points(history, site.site)
            groups.setdefault(site.client, []).append(_site_row(site, info, points, transcripts))

    cutoff = readiness(each_site())
    clients = [
        ClientGroup(
            client=name,
            verdict=max((r.site.verdict for r in rows), key=VERDICT_RANK.__getitem__).value,
            rows=sorted(rows, key=lambda r: (-VERDICT_RANK[r.site.verdict], r.site.site)),
        )
        for name, rows in groups.items()
    ]
    clients.sort(key=lambda g: (-VERDICT_RANK[Verdict(g.verdict)], g.client.casefold()))
    left_out = 0
    if limit is not None:  # the worst `limit` sites of all, still grouped by client
        ranked = sorted(
            (row for group in clients for row in group.rows),
            key=lambda r: -VERDICT_RANK[r.site.verdict],
        )
        chosen = {id(row) for row in ranked[:limit]}
        left_out = len(ranked) - len(chosen)
        clients = [
            ClientGroup(g.client, g.verdict, [r for r in g.rows if id(r) in chosen])
            for g in clients
        ]
        clients = [g for g in clients if g.rows]
    changes = [c for c in view.changes if client is None or c.client == client]
    changes.sort(key=lambda c: (SEVERITY_ORDER[c.severity], c.client, c.site))
    modes = [m for m in Mode if any(m in r.modes for g in clients for r in g.rows)]
    return {
        "sweep": info,
        "client": client,
        "started": _when(info.started_at),
        "duration": _duration(info.started_at, info.finished_at),
        "counts": counts,
        "site_count": sum(counts.values()),
        "clients": clients,
        "left_out": left_out,
        "modes": [(m, _MODE_TITLES[m]) for m in modes],
        "changes": changes,
        "previous_sweep": view.previous_sweep,
        "basic_auth": BasicAuthNotice(
            cutoff=m365.BASIC_AUTH_SMTP_OFF.strftime("%d %B %Y").lstrip("0"),
            days_left=(m365.BASIC_AUTH_SMTP_OFF - day).days,
            copiers=cutoff.at_risk,
            sites=len({(row.client, row.site) for row in cutoff.copiers}),
            proven=cutoff.proven,
            rows=cutoff.copiers,
            source=m365.BASIC_AUTH_SOURCE,
        ),
        "severity_style": _SEVERITY_STYLE,
        "change_badge": _change_badge,
    }


def _points(history: History | None, site: str) -> Sequence[HistoryPoint]:
    if history is None:
        return ()
    if isinstance(history, Mapping):
        return history.get(site, ())
    return history(site)


def _site_row(
    site: SiteResult, info: SweepInfo, points: Sequence[HistoryPoint], transcripts: bool
) -> SiteRow:
    by_mode: dict[Mode, list[DeviceResult]] = {}
    for device in site.devices:
        by_mode.setdefault(device.mode, []).append(device)
    modes = {
        mode: Cell(
            style=_worst(d.verdict for d in devices),
            label=_worst(d.verdict for d in devices),
            lines=tuple(_device_line(d) for d in devices),
        )
        for mode, devices in by_mode.items()
    }
    trend = _trend(site, info, points)
    shown = site.verdict is not Verdict.ok or any(
        f.severity is not Severity.info for f in site.flags
    )
    return SiteRow(
        site=site.without_transcripts(),  # what is needed of them is in `conversations`
        anchor=f"site-{site.site}",
        egress=_egress_cell(site),
        checks=_checks_cell(site),
        modes=modes,
        trend=trend,
        trend_label=_trend_label(trend),
        flags=tuple(site.flags) if shown else (),
        conversations=_conversations(site) if shown and transcripts else (),
    )


def _device_line(device: DeviceResult) -> str:
    if device.category.value == "ok":
        return f"{device.device}: {device.verdict.value}"
    where = f" at {device.failed_stage.value}" if device.failed_stage else ""
    return f"{device.device}: {device.verdict.value} ({device.category.value}{where})"


def _egress_cell(site: SiteResult) -> Cell:
    ip = site.egress_ip or "IP unknown"
    summary = blocklist_summary(site)
    if not site.blocklists:
        style = (
            "unknown"
            if site.egress_ip is None and _has(site, FlagCode.BLOCKLIST_UNKNOWN)
            else "none"
        )
        return Cell(style, "not checked" if style == "none" else "unknown", (ip,))
    listed = [b for b in site.blocklists if b.status is BlocklistStatus.listed]
    if any(b.severity is ListingSeverity.abuse for b in listed):
        style, label = "critical", "listed"
    elif listed:
        style, label = "warn", "listed (policy)"
    elif any(b.status is BlocklistStatus.unknown for b in site.blocklists):
        style, label = "unknown", "unknown"
    else:
        style, label = "ok", f"clean ({len(site.blocklists)} checked)"
    lines = (ip, summary) if summary not in ("clean", label) else (ip,)
    return Cell(style, label, lines)


def _checks_cell(site: SiteResult) -> Cell:
    summary = checks_summary(site)
    if summary == "-":
        return Cell("none", "not checked")
    severities = [f.severity for f in site.flags if f.code in _CHECK_FLAGS]
    if not severities:
        return Cell("ok", "ok")
    worst = min(severities, key=SEVERITY_ORDER.__getitem__)
    return Cell(_SEVERITY_STYLE[worst], worst.value, (summary,))


def _trend(
    site: SiteResult, info: SweepInfo, points: Sequence[HistoryPoint]
) -> tuple[TrendMark, ...]:
    """The verdicts of the site's last TREND_LENGTH sweeps, oldest first, ending with this one.
    A point of this sweep (same id) is this result: it is not counted twice. Sweeps after
    this result (re-rendering an old sweep) are left out."""
    marks = [
        TrendMark(p.sweep_id, p.started_at[:16].replace("T", " ") + " UTC", p.verdict, p.complete)
        for p in points
        if p.sweep_id != info.id and not _after(p.started_at, site.started_at)
    ]
    # The sweep's start; the site's own when earlier: the central's page is a view drawn
    # now of results that came in from earlier sweeps, each dated by its own time.
    when = min(info.started_at, site.started_at)
    marks.insert(0, TrendMark(info.id, _when(when), site.verdict.value, info.complete))
    return tuple(reversed(marks[:TREND_LENGTH]))


def _after(stamp: str, moment: datetime) -> bool:
    """Whether a stored UTC time stamp is later than `moment`."""
    try:
        when = datetime.fromisoformat(stamp)
    except ValueError:
        return False
    return when.replace(tzinfo=when.tzinfo or UTC) > moment.replace(tzinfo=moment.tzinfo or UTC)


def _trend_label(marks: Sequence[TrendMark]) -> str:
    counts: dict[str, int] = {}
    for mark in marks:
        counts[mark.verdict] = counts.get(mark.verdict, 0) + 1
    rank = {v.value: -VERDICT_RANK[v] for v in Verdict}
    ordered = sorted(counts, key=lambda v: rank.get(v, 9))
    parts = ", ".join(f"{counts[v]} {v}" for v in ordered)
    return f"last {len(marks)} sweep{'s' * (len(marks) != 1)}: {parts}"


def _conversations(site: SiteResult) -> tuple[Conversation, ...]:
    """The transcript of each conversation a failing device had (devices that shared one
    conversation share its transcript)."""
    out = []
    seen: set[str] = set()
    for device in site.devices:
        if device.verdict is Verdict.ok or device.conversation in seen:
            continue
        seen.add(device.conversation)
        sharing = [d.device for d in site.devices if d.conversation == device.conversation]
        where = f" at {device.failed_stage.value}" if device.failed_stage else ""
        had = site.conversation_of(device)
        lines: list[TranscriptLine] = []
        for stage in had.transcript:
            # (text, kind) of each line; the stage, status and time head the first one only
            said: list[tuple[str, str]] = []
            if stage.command:
                said.append((stage.command, "sent"))
            if stage.reply is not None:
                code = f"{stage.reply.code} " if stage.reply.code is not None else ""
                lines_said = stage.reply.text.splitlines()[:12] or [""]
                said += [(code + text, "reply") for text in lines_said]
            elif stage.detail:
                went_wrong = stage.status.value in ("failed", "error")
                said.append((stage.detail, "error" if went_wrong else "note"))
            took = f"{stage.elapsed_s * 1000:.0f} ms" if stage.elapsed_s is not None else ""
            for n, (text, kind) in enumerate(said or [("", "sent")]):
                head = (stage.stage.value, stage.status.value, took) if n == 0 else ("", "", "")
                lines.append(TranscriptLine(*head, text, kind))
        tls = had.tls
        tls_text = None
        if tls is not None and tls.version:
            expiry = tls.not_after.date().isoformat() if tls.not_after else "?"
            tls_text = (
                f"{tls.version} {tls.cipher or ''}; certificate {tls.subject or '?'} by "
                f"{tls.issuer or '?'}, expires {expiry}, verified: {tls.verified}"
            )
        out.append(
            Conversation(
                devices=", ".join(sharing),
                summary=f"{had.host}:{had.port} ({device.mode.value}): "
                f"{device.category.value}{where}",
                verdict=device.verdict.value,
                lines=tuple(lines),
                tls=tls_text,
            )
        )
    return tuple(out)


# ---- small helpers -------------------------------------------------------------------------


def _has(site: SiteResult, code: FlagCode) -> bool:
    return any(f.code == code for f in site.flags)


def _worst(verdicts: Iterable[Verdict]) -> str:
    return max(verdicts, key=VERDICT_RANK.__getitem__, default=Verdict.ok).value


def _verdict_order(verdict: Verdict) -> int:
    return -VERDICT_RANK[verdict]


def _change_badge(change: Change) -> tuple[str, str]:
    """The style and words of a change: a resolved flag or a delisting is good news."""
    if change.kind in (ChangeKind.resolved_flag, ChangeKind.delisted):
        return "ok", "resolved"
    return _SEVERITY_STYLE[change.severity], change.severity.value


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _duration(started: datetime, finished: datetime | None) -> str:
    if finished is None:
        return "did not finish"
    seconds = max(0.0, (finished - started).total_seconds())
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def _text(value: object) -> object:
    """Every expression passes here before it is escaped: strings lose control characters
    and bidi overrides (a server's escape sequences are noise, and an override could make
    text read differently from what it is)."""
    if isinstance(value, str) and not isinstance(value, Markup) and _CONTROLS.search(value):
        return strip_controls(value, keep_newlines=True)
    return value


# What strip_controls removes: C0 and C1 controls but tab and newline, bidi overrides.
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@cache
def _environment() -> Environment:
    # imported when a page is rendered, not for every command that imports the reports
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("fleet.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        finalize=_text,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    return env


# The filter: the page is complete without it (every row is shown); with it, rows can be
# narrowed to one client and some verdicts. Its hash is in the Content-Security-Policy.
_SCRIPT = """
(function () {
  var form = document.getElementById("filters");
  if (!form) { return; }
  form.hidden = false;
  function apply() {
    var client = form.elements["client"].value;
    var wanted = {};
    Array.prototype.forEach.call(form.querySelectorAll("input[name=verdict]"), function (box) {
      wanted[box.value] = box.checked;
    });
    var visible = {};
    document.querySelectorAll("[data-site]").forEach(function (row) {
      var show = (client === "" || row.dataset.client === client) && wanted[row.dataset.verdict];
      row.hidden = !show;
      if (show) { visible[row.dataset.client] = true; }
    });
    document.querySelectorAll("[data-group]").forEach(function (row) {
      row.hidden = !visible[row.dataset.group];
    });
  }
  form.addEventListener("change", apply);
  form.addEventListener("submit", function (event) { event.preventDefault(); });
})();
""".strip()
