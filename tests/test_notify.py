"""Alerts on change: one grouped e-mail and/or webhook per sweep (issue 12)."""

from __future__ import annotations

import asyncio
import csv
import email
import io
import json
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from fleet.inventory import WebhookNotification
from fleet.inventory_models import validate
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer
from fleet.notify import Alert, compose, notify, post_webhook
from fleet.results import SweepResult

from .conftest import M365Lab, fleet_env, publish_spf, run_fleet_async
from .inventory_builder import InventoryBuilder, device, lab_defaults

ZONE = "zen.lab.test"
RELAY_PASSWORD = "relay-canary-Pa55"  # a test secret, passed by environment


class Relay:
    """The MSP's own relay: STARTTLS, AUTH, and a mailbox that keeps what arrives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        message = email.message_from_bytes(raw, policy=default_policy)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 2.0.0 Ok: queued as ALERT1"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append(mechanism)
        ok = data.login == b"alerts@msp.test" and data.password == RELAY_PASSWORD.encode()
        return AuthResult(success=ok, handled=False)


@pytest.fixture
async def relay(certs: LabCertificates) -> AsyncIterator[tuple[Relay, LabSmtpServer]]:
    handler = Relay()
    server = LabSmtpServer(
        handler,
        hostname="relay.msp.test",
        ident="ESMTP relay",
        tls_context=certs.server_context(),
        authenticator=handler.authenticate,
    )
    await server.start()
    try:
        yield handler, server
    finally:
        await server.stop()


class WebhookReceiver:
    """A minimal HTTP/1.1 server on loopback that records POSTed JSON."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[Any] = []
        self.paths: list[str] = []
        self.statuses = statuses or []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            head = request.decode("latin-1").split("\r\n")
            self.paths.append(head[0].split()[1])
            length = next(
                int(h.split(":")[1]) for h in head if h.lower().startswith("content-length")
            )
            self.bodies.append(json.loads(await reader.readexactly(length)))
            status = self.statuses.pop(0) if self.statuses else 200
            writer.write(
                f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok".encode()
            )
            await writer.drain()
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.fixture
async def webhook() -> AsyncIterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    await receiver.start()
    try:
        yield receiver
    finally:
        await receiver.stop()


def inventory(
    dns: LabDns, m365: M365Lab, notifications: dict[str, Any], sites: int = 2
) -> InventoryBuilder:
    defaults = lab_defaults(dns, connect_s=3, command_s=3, site_s=20, dns_timeout_s=1)
    built = InventoryBuilder(
        defaults,
        blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}],
        sections={"notifications": notifications},
    )
    for n in range(sites):
        ip = f"127.0.0.{80 + n}"
        mfp = device(
            m365.mx.port,
            m365.ca_file,
            security=None,
            mail_from="s@contoso.test",
            to="f@contoso.test",
        )
        built.site(f"office-{n}", mfp, client=f"Client {n}", egress={"bind": ip, "ip": ip})
    return built


def email_block(server: LabSmtpServer, ca_file: str, when: str = "changes") -> dict[str, Any]:
    return {
        "when": when,
        "email": {
            "host": "127.0.0.1",
            "port": server.port,
            "security": "starttls",
            "ca_file": ca_file,
            "auth": {"username": "alerts@msp.test", "password_env": "FLEET_TEST_RELAY_PASSWORD"},
            "from": "fleet@msp.test",
            "to": ["noc@msp.test", "oncall@msp.test"],
            "attach_csv": True,
        },
    }


async def sweep(path: Path, db: Path, *extra: str) -> tuple[int, str]:
    env = fleet_env(FLEET_TEST_RELAY_PASSWORD=RELAY_PASSWORD)
    run = await run_fleet_async(
        "sweep", "-i", str(path), "--db", str(db), "-q", "--notify", *extra, env=env
    )
    return run.code, run.stderr


async def test_an_email_alert_is_sent_only_when_something_changed(
    lab_dns: LabDns,
    m365: M365Lab,
    relay: tuple[Relay, LabSmtpServer],
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    handler, server = relay
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    path = write_inventory(inventory(lab_dns, m365, email_block(server, m365.ca_file), sites=3))
    db = tmp_path / "fleet.db"

    # Given a first sweep and an identical second one: nothing changed, nothing is sent
    for _ in range(2):
        code, err = await sweep(path, db)
        assert code == 0, err
        assert "no alert (when: changes" in err
    assert handler.messages == []

    # When two sites' IPs get listed and refused overnight
    for ip in ("127.0.0.80", "127.0.0.81"):
        lab_dns.list_ip(ZONE, ip, "127.0.0.4")
        m365.tenant.banned_ips.add(ip)
    code, err = await sweep(path, db)

    # Then one message (no storm) names the count of new critical findings and the sites
    assert code == 2, err
    assert "alert sent: e-mail to noc@msp.test, oncall@msp.test" in err
    (message,) = handler.messages
    assert message["Subject"].startswith("[fleet] 2 new critical findings, 2 sites changed")
    assert message["To"] == "noc@msp.test, oncall@msp.test"
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert text.index("New critical findings:") < text.index("Still wrong:")
    assert "office-0 (Client 0): new DIRECT_SEND_DIRTY_IP" in text
    assert "office-1 (Client 1): 127.0.0.81 newly listed on zen.lab.test (XBL)" in text
    assert "office-2" not in text
    html_part = message.get_body(preferencelist=("html",))
    assert html_part is not None  # the HTML report's e-mail form: changes, then findings
    html_text = html_part.get_content()
    assert html_text.index("newly listed on zen.lab.test") < html_text.index("Sites that need")
    assert "DIRECT_SEND_DIRTY_IP" in html_text
    assert "<script" not in html_text
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_filename().endswith(".csv")
    content = attachment.get_content()
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content.lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["site"]: r["verdict"] for r in rows} == {
        "office-0": "critical",
        "office-1": "critical",
        "office-2": "ok",
    }
    # exactly one AUTH, and the relay password appears nowhere in what we print
    assert handler.logins == ["PLAIN"]
    assert RELAY_PASSWORD not in err


async def test_when_critical_ignores_mere_changes(
    lab_dns: LabDns,
    m365: M365Lab,
    relay: tuple[Relay, LabSmtpServer],
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    handler, server = relay
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    path = write_inventory(
        inventory(lab_dns, m365, email_block(server, m365.ca_file, when="critical"))
    )
    db = tmp_path / "fleet.db"
    await sweep(path, db)
    lab_dns.list_ip(ZONE, "127.0.0.80", "127.0.0.10")  # a policy listing: a warning, not critical
    code, _ = await sweep(path, db)
    assert code == 1
    assert handler.messages == []


async def test_notify_without_the_history_is_refused_unless_alerts_are_always_sent(
    lab_dns: LabDns,
    m365: M365Lab,
    relay: tuple[Relay, LabSmtpServer],
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    handler, server = relay
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    db = tmp_path / "fleet.db"
    changes = write_inventory(inventory(lab_dns, m365, email_block(server, m365.ca_file)))

    # `when: changes` cannot see a change without the history: refused before probing
    code, err = await sweep(changes, db, "--no-store")
    assert code == 3
    assert "needs the history to see what changed" in err
    assert m365.mx.stats.connections == 0
    assert not db.exists()

    always = write_inventory(
        inventory(lab_dns, m365, email_block(server, m365.ca_file, when="always"))
    )
    code, err = await sweep(always, db, "--no-store")
    assert code == 0, err
    assert len(handler.messages) == 1
    assert not db.exists()


async def test_a_dead_relay_is_a_clear_error_and_the_sweep_stays_stored(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    from .conftest import free_port

    lab_dns.blocklist(ZONE)

    publish_spf(lab_dns)
    relay = {"host": "127.0.0.1", "port": free_port(), "security": "none"}
    dead = {"when": "always", "email": {**relay, "from": "fleet@msp.test", "to": ["noc@msp.test"]}}
    path = write_inventory(inventory(lab_dns, m365, dead))
    db = tmp_path / "fleet.db"
    code, err = await sweep(path, db)
    assert code == 3
    assert "alert not delivered: e-mail alert through 127.0.0.1:" in err
    assert "the sweep is stored; `fleet notify --last` re-sends it" in err
    history = await run_fleet_async("history", "--db", str(db))
    assert history.stdout.count("yes") == 1  # the sweep is complete in the store

    # Without the store, it does not pretend the sweep can be re-sent
    code, err = await sweep(path, tmp_path / "unused.db", "--no-store")
    assert code == 3
    assert "the sweep was not stored (--no-store)" in err
    assert "notify --last" not in err


@pytest.mark.slow  # several seconds
async def test_notify_last_resends_through_a_webhook_in_each_format(
    lab_dns: LabDns,
    m365: M365Lab,
    webhook: WebhookReceiver,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    lab_dns.blocklist(ZONE, {"127.0.0.80": ("127.0.0.4",)})
    publish_spf(lab_dns)
    db = tmp_path / "fleet.db"
    url = f"http://127.0.0.1:{webhook.port}/hooks/T000/B000/secret-token-xyz"
    for kind in ("generic", "slack", "teams"):
        block = {"when": "always", "webhook": {"url_env": "FLEET_TEST_HOOK", "format": kind}}
        path = write_inventory(inventory(lab_dns, m365, block), name=f"{kind}.yaml")
        env = fleet_env(FLEET_TEST_HOOK=url)
        if kind == "generic":
            run = await run_fleet_async("sweep", "-i", str(path), "--db", str(db), "-q", env=env)
            assert run.code == 2
        run = await run_fleet_async("notify", "-i", str(path), "--db", str(db), "--last", env=env)
        assert run.code == 0, run.stderr
        assert f"alert sent: {kind} webhook" in run.stderr
        assert "secret-token-xyz" not in run.stderr + run.stdout
    generic, slack, teams = webhook.bodies
    assert webhook.paths == ["/hooks/T000/B000/secret-token-xyz"] * 3
    assert generic["counts"] == {"ok": 1, "warn": 0, "critical": 1, "unknown": 0}
    assert generic["still_wrong"][0]["site"] == "office-0"
    assert slack["text"].startswith("[fleet]")
    assert "office-0" in slack["blocks"][0]["text"]["text"]
    card = teams["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"


@pytest.mark.parametrize(
    ("statuses", "posts", "error"),
    [
        ([503, 200], 2, None),  # one retry, then delivered
        ([500, 500, 500], 2, r"webhook alert to 127\.0\.0\.1 failed: HTTP 500"),  # one retry
        ([400], 1, "HTTP 400"),  # a refusal is not retried
    ],
)
async def test_a_webhook_is_retried_once_then_reported(
    statuses: list[int], posts: int, error: str | None
) -> None:
    alert = Alert(subject="[fleet] test", text="x\n", html="<p>x</p>", document={"summary": "x"})
    receiver = WebhookReceiver(statuses=statuses)
    await receiver.start()
    try:
        settings = WebhookNotification(url=f"http://127.0.0.1:{receiver.port}/hook", timeout_s=2)
        if error is None:
            await post_webhook(settings, alert)
        else:
            with pytest.raises(Exception, match=error):
                await post_webhook(settings, alert)
        assert len(receiver.bodies) == posts
    finally:
        await receiver.stop()


async def test_nothing_changed_means_nothing_sent_in_process(webhook: WebhookReceiver) -> None:
    from datetime import UTC, datetime

    from fleet.inventory import Notifications
    from fleet.results import SweepInfo

    result = SweepResult(
        sweep=SweepInfo(
            id="s1", started_at=datetime.now(UTC), complete=True, tool_version="x", sites_planned=0
        ),
        sites=[],
    )
    settings = Notifications(webhook=WebhookNotification(url=f"http://127.0.0.1:{webhook.port}/h"))
    assert await notify(settings, result) == []
    assert webhook.bodies == []
    assert compose(result).subject.startswith("[fleet] 0 new critical findings, 0 sites changed")


def one_site(sections: dict[str, Any]) -> InventoryBuilder:
    """These sections, and one site with one copier."""
    mfp = device(25, ident="d", host="h.test", security=None, mail_from="a@b.test", to="c@d.test")
    return InventoryBuilder(sections=sections).site("a", mfp, client="c")


def test_notifications_are_validated(write_inventory: Callable[..., Path]) -> None:
    from fleet.errors import InventoryError
    from fleet.inventory import load_inventory

    notifications = {
        "when": "sometimes",
        "webhook": {"url": "https://hooks.slack.com/services/T/B/x", "format": "slack"},
        "email": {
            "host": "relay.test",
            "from": "a@b.test",
            "to": [],
            "auth": {"username": "u", "password": "p"},
        },
    }
    bad = write_inventory(one_site({"notifications": notifications}))
    with pytest.raises(InventoryError) as caught:
        load_inventory(str(bad))
    text = str(caught.value)
    assert (
        "notifications.when: must be one of 'changes', 'always' or 'critical', got 'sometimes'"
        in text
    )
    assert "a slack webhook URL is a secret: give it with url_env or url_file" in text
    assert "notifications.email.auth.password: secrets must not be written" in text
    assert "notifications.email.to: must not be empty" in text


def test_a_login_to_the_alert_relay_needs_tls(write_inventory: Callable[..., Path]) -> None:
    from fleet.errors import InventoryError
    from fleet.inventory import load_inventory

    relay = {"host": "relay.test", "port": 25, "security": "none", "from": "a@b.test"}
    login = {"username": "u", "password_env": "P"}
    email = {**relay, "to": ["c@d.test"], "auth": login}
    text = one_site({"notifications": {"email": email}})
    with pytest.raises(InventoryError, match="a login to the relay needs TLS"):
        load_inventory(str(write_inventory(text)))


async def test_a_bad_relay_ca_file_does_not_stop_the_webhook(
    webhook: WebhookReceiver, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from fleet.errors import NotifyError
    from fleet.inventory import EmailNotification, Notifications
    from fleet.results import SweepInfo

    broken_ca = tmp_path / "not-a-ca.pem"
    broken_ca.write_text("not a certificate")
    result = SweepResult(
        sweep=SweepInfo(
            id="s2", started_at=datetime.now(UTC), complete=True, tool_version="x", sites_planned=0
        ),
        sites=[],
    )
    settings = Notifications(
        when="always",
        email=validate(
            EmailNotification,
            {
                "host": "127.0.0.1",
                "port": 9,
                "from": "a@b.test",
                "to": ["c@d.test"],
                "ca_file": str(broken_ca),
            },
        ),
        webhook=WebhookNotification(url=f"http://127.0.0.1:{webhook.port}/h"),
    )
    with pytest.raises(NotifyError, match="cannot read ca_file"):
        await notify(settings, result)
    assert len(webhook.bodies) == 1  # the other channel was still tried, and delivered
