"""Alerts on change: one grouped message per sweep, by e-mail and/or webhook.

`when: changes` (the default) sends only if something changed since the previous sweep,
`critical` only for new critical findings, `always` every time. A first sweep, with nothing
to compare with, is compared with nothing: everything it found is new. However many sites
changed, a sweep sends one message per channel: no alert storm.

What a sweep holds came partly from servers (and agent files): every text is stripped of
control characters, and escaped for the format it goes out in (Slack mrkdwn, Teams
Adaptive Card Markdown), so that it can neither ping a channel nor plant a link.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiosmtplib
import httpx

from fleet.changes import SiteDigest, compare
from fleet.credentials import Secrets, SecretSource
from fleet.errors import NotifyError, SecretError
from fleet.report.csv_report import render_csv
from fleet.report.html import render_email_html
from fleet.report.sanitize import for_terminal, strip_controls
from fleet.report.summary import top, verdict_counts
from fleet.results import Change, ChangeKind, Security, Severity, SweepReading, Verdict

if TYPE_CHECKING:  # annotations only: a scan from the inventory cache imports no pydantic
    from fleet.inventory import EmailNotification, Notifications, WebhookNotification

log = logging.getLogger("fleet.notify")


def alert_changes(result: SweepReading) -> list[Change]:
    """What the alert tells as changed: the sweep's changes since the previous sweep; for a
    sweep with no previous one (a newly scheduled job's first night), everything it found,
    compared with nothing."""
    if result.previous_sweep is not None or result.changes:
        return list(result.changes)

    def nothing(digest: SiteDigest) -> SiteDigest:
        return SiteDigest(digest.site, digest.client, Verdict.ok, None, {}, {}, frozenset())

    found = [SiteDigest.of(site) for site in result.sites]
    return [change for digest in found for change in compare(nothing(digest), digest)]


def new_critical(changes: list[Change]) -> list[Change]:
    """The critical findings among the changes (a site turning critical is told by its new
    flags, so it is not counted twice)."""
    return [c for c in changes if c.severity is Severity.critical and c.kind is ChangeKind.new_flag]


def should_send(when: str, result: SweepReading) -> bool:
    if when == "always":
        return True
    changes = alert_changes(result)
    if when == "critical":
        return bool(new_critical(changes))
    return bool(changes)


@dataclass(frozen=True)
class Alert:
    subject: str
    text: str
    html: str
    document: dict[str, Any]  # the generic JSON body


def compose(result: SweepReading, prefix: str = "[fleet]") -> Alert:
    """The one message about a sweep: changes first, then what is still wrong."""
    changes = alert_changes(result)
    critical = new_critical(changes)
    listings = [c for c in changes if c.kind is ChangeKind.listed]
    resolved = [c for c in changes if c.kind in (ChangeKind.resolved_flag, ChangeKind.delisted)]
    changed_sites = sorted({c.site for c in changes})
    subject = (
        f"{prefix} {len(critical)} new critical finding{'s' * (len(critical) != 1)}, "
        f"{len(changed_sites)} site{'s' * (len(changed_sites) != 1)} changed "
        f"({verdict_counts(result)})"
    )
    # What the message needs of each failing site, not the site (it may carry transcripts).
    still_wrong = [
        (s.site, s.client, s.verdict, top(s)) for s in result.sites if s.verdict is not Verdict.ok
    ]
    sweep_id = for_terminal(result.sweep.id, 100)
    lines = [
        f"fleet sweep {sweep_id}, {result.sweep.started_at:%Y-%m-%d %H:%M} UTC: {verdict_counts(result)}"
    ]
    if not result.sweep.complete:
        lines.append(f"INCOMPLETE: {for_terminal(result.sweep.interrupted, 300)}")
    if result.previous_sweep is None and changes:
        lines.append("(No earlier sweep to compare with: everything found is new.)")
    lines.append("")
    grouped = {id(c) for c in (*critical, *listings, *resolved)}
    for title, group in (
        ("New critical findings", critical),
        ("New listings", listings),
        ("Resolved", resolved),
        ("Other changes", [c for c in changes if id(c) not in grouped]),
    ):
        if group:
            lines.append(f"{title}:")
            lines += [
                f"  {for_terminal(c.site)} ({for_terminal(c.client)}): {for_terminal(c.summary)}"
                for c in group
            ]
            lines.append("")
    if not changes:
        lines += ["No changes since the previous sweep.", ""]
    if still_wrong:
        lines.append("Still wrong:")
        for site_id, client, verdict, flag in still_wrong:
            code, action = (
                (for_terminal(flag.code, 60), f": {for_terminal(flag.remediation, 160)}")
                if flag
                else ("", "")
            )
            lines.append(
                f"  {for_terminal(site_id)} ({for_terminal(client)}) {verdict.value} {code}{action}"
            )
    text = "\n".join(lines).rstrip() + "\n"
    document = {
        "sweep": result.sweep.id,
        "interrupted": result.sweep.interrupted,
        "started_at": result.sweep.started_at.isoformat(),
        "complete": result.sweep.complete,
        "counts": {v.value: result.counts.get(v, 0) for v in Verdict},
        "new_critical": len(critical),
        "changed_sites": changed_sites,
        "changes": [c.model_dump(mode="json") for c in changes],
        "still_wrong": [
            {
                "site": site_id,
                "client": client,
                "verdict": verdict.value,
                "top_flag": flag.code if flag else "",
            }
            for site_id, client, verdict, flag in still_wrong
        ],
        "summary": subject.removeprefix(prefix).strip(),
    }
    document = _without_controls(document)
    # the HTML part: the HTML report's header, changes and findings (e-mail-safe subset)
    return Alert(subject=subject, text=text, html=render_email_html(result), document=document)


# ---- channels -----------------------------------------------------------------------------


async def send_email(
    settings: EmailNotification,
    alert: Alert,
    result: SweepReading,
    secrets: Secrets | None = None,
) -> None:
    secrets = secrets if secrets is not None else Secrets()
    message = EmailMessage()
    message["From"] = settings.from_
    message["To"] = ", ".join(settings.to)
    message["Subject"] = alert.subject
    message["Date"] = format_datetime(result.sweep.finished_at or result.sweep.started_at)
    message["Message-ID"] = make_msgid(domain="fleet.invalid")
    message.set_content(alert.text)
    message.add_alternative(alert.html, subtype="html")
    if settings.attach_csv:
        message.add_attachment(
            render_csv(result).encode("utf-8-sig"),
            maintype="text",
            subtype="csv",
            filename=f"fleet-{result.sweep.id}.csv",
        )
    where = f"{settings.host}:{settings.port}"
    try:
        context = ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise NotifyError(f"e-mail alert through {where}: cannot read ca_file: {exc}") from None
    smtp = aiosmtplib.SMTP(
        hostname=settings.host,
        port=settings.port,
        local_hostname=socket.gethostname(),  # no DNS look-up of our own name
        timeout=settings.timeout_s,
        use_tls=settings.security is Security.tls,
        start_tls=settings.security is Security.starttls,
        tls_context=context if settings.security is not Security.none else None,
    )
    try:
        async with asyncio.timeout(settings.timeout_s * 3):
            await smtp.connect()
            if smtp.is_ehlo_or_helo_needed:  # STARTTLS forgets what the server offered
                await smtp.ehlo()
            if settings.auth is not None:
                await _login(smtp, settings, secrets)
            await smtp.send_message(message)
    except (aiosmtplib.SMTPException, OSError, TimeoutError, SecretError) as exc:
        said = for_terminal(secrets.scrub(str(exc)), 300) or type(exc).__name__
        raise NotifyError(f"e-mail alert through {where} failed: {said}") from None
    finally:
        smtp.close()


async def _login(smtp: aiosmtplib.SMTP, settings: EmailNotification, secrets: Secrets) -> None:
    """One attempt with one mechanism: a relay must not lock the alert mailbox out."""
    auth = settings.auth
    assert auth is not None  # noqa: S101
    if smtp.get_transport_info("sslcontext") is None:  # the inventory also refuses this
        raise aiosmtplib.SMTPException("no password is sent to the relay without TLS")
    if auth.oauth2 is not None:
        token = auth.secret.read()
        secrets.add_login(auth.username, token)
        await smtp.auth_xoauth2(auth.username, token)
        return
    password = auth.secret.read()
    secrets.add_login(auth.username, password)
    offered = [m.lower() for m in smtp.server_auth_methods]
    if (auth.mechanism or "plain") == "plain" and "plain" in offered:
        await smtp.auth_plain(auth.username, password)
    elif "login" in offered:
        await smtp.auth_login(auth.username, password)
    else:
        raise aiosmtplib.SMTPException(
            f"the relay offers no password mechanism ({', '.join(offered) or 'none'})"
        )


def _without_controls(value: Any) -> Any:
    """A JSON document with control characters (terminal escapes) gone from its strings."""
    if isinstance(value, str):
        return strip_controls(value, keep_newlines=True)
    if isinstance(value, dict):
        return {key: _without_controls(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_controls(item) for item in value]
    return value


def slack_text(text: str) -> str:
    """Text Slack shows and never reads as markup: `&`, `<` and `>` escaped as Slack asks
    (so no `<!channel>` ping and no `<http://x|label>` link), and no backtick left to close
    the code block it goes in."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("`", "'")


# Adaptive Card TextBlock Markdown: emphasis and [links](url) (backslash-escaped, as
# CommonMark allows); `<` and `&` start mentions (<at>) and entities.
_TEAMS_MARKDOWN = str.maketrans({c: f"\\{c}" for c in "\\*_[]()~`"} | {"<": "&lt;", "&": "&amp;"})


def teams_text(text: str) -> str:
    """Text a Teams card shows as written: every Markdown character escaped."""
    return text.translate(_TEAMS_MARKDOWN)


def webhook_body(settings: WebhookNotification, alert: Alert) -> dict[str, Any]:
    """The JSON each kind of incoming webhook expects, its text escaped for that format."""
    if settings.format == "slack":
        return {
            "text": slack_text(alert.subject),
            "blocks": [
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": f"```{slack_text(alert.text)}```"},
                }
            ],
        }
    if settings.format == "teams":
        card = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {
                    "type": "TextBlock",
                    "size": "Medium",
                    "weight": "Bolder",
                    "text": teams_text(alert.subject),
                    "wrap": True,
                },
                {
                    "type": "TextBlock",
                    "text": teams_text(alert.text),
                    "wrap": True,
                    "fontType": "Monospace",
                },
            ],
        }
        return {
            "type": "message",
            "attachments": [
                {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
            ],
        }
    return alert.document


async def post_webhook(
    settings: WebhookNotification, alert: Alert, secrets: Secrets | None = None
) -> None:
    try:
        url = settings.url or SecretSource(env=settings.url_env, file=settings.url_file).read()
    except SecretError as exc:
        raise NotifyError(f"webhook alert failed: {exc}") from None
    where = f"${settings.url_env}" if settings.url_env else (settings.url_file or "url")
    try:
        parsed = httpx.URL(url)
        host = urlsplit(url).hostname or "?"  # the URL's path may be the secret: never shown
    except (httpx.InvalidURL, ValueError):
        # The URL is a secret: say where it came from, never what it is.
        raise NotifyError(f"webhook alert failed: the URL in {where} is not a valid URL") from None
    if parsed.port is not None and not 0 < parsed.port < 65536:  # httpx parses, cannot use
        raise NotifyError(f"webhook alert failed: the URL in {where} is not a valid URL")
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise NotifyError(f"webhook alert failed: the URL in {where} is not an http(s) URL")
    if settings.url is None and secrets is not None:
        # from url_env/url_file: a secret, also in the form httpx writes it; the scheme and
        # host alone are no secret, so only the whole URL is blanked
        secrets.add(url, fragments=False)
        secrets.add(str(parsed), fragments=False)
    body = webhook_body(settings, alert)
    last = ""
    async with httpx.AsyncClient(timeout=settings.timeout_s, follow_redirects=False) as client:
        for attempt in (1, 2):  # one retry, for a blip
            try:
                response = await client.post(url, json=body)
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}"
            else:
                if response.status_code < 300:
                    return
                last = f"HTTP {response.status_code}"
                if response.status_code < 500 and response.status_code != 429:
                    break  # the receiver refused the message itself: a retry will not help
            if attempt == 1:
                await asyncio.sleep(1.0)
    raise NotifyError(f"webhook alert to {host} failed: {last}")


async def notify(
    settings: Notifications,
    result: SweepReading,
    *,
    force: bool = False,
    secrets: Secrets | None = None,
) -> list[str]:
    """Send the sweep's alert on every configured channel; returns what was sent.

    Raises NotifyError naming every channel that failed (the others were still tried)."""
    if not force and not should_send(settings.when, result):
        return []
    prefix = settings.email.subject_prefix if settings.email else "[fleet]"
    alert = compose(result, prefix)
    sent, failures = [], []
    if settings.email is not None:
        try:
            await send_email(settings.email, alert, result, secrets)
            sent.append(f"e-mail to {', '.join(settings.email.to)}")
        except NotifyError as exc:
            failures.append(str(exc))
    if settings.webhook is not None:
        try:
            await post_webhook(settings.webhook, alert, secrets)
            sent.append(f"{settings.webhook.format} webhook")
        except NotifyError as exc:
            failures.append(str(exc))
    if failures:
        raise NotifyError("; ".join(failures))
    return sent
