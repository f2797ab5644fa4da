"""Alerts that cannot be hijacked, and the first night's alert (issue 17, items 14-17),
through the command line with webhook receivers and a relay on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.agent import content_digest
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer
from fleet.probes.dnsbl_zones import DQS_ZONE
from fleet.results import SweepResult

from .conftest import M365Lab, fleet_env, publish_spf, run_fleet_async
from .inventory_builder import device
from .test_notify import ZONE, Relay, WebhookReceiver, inventory, webhook  # noqa: F401

ESC = "\x1b"
HOSTILE_REMEDY = (
    "Fix it ``` <!channel> <http://evil.example|click here> [click](http://evil.example) "
    "\x1b[2J\x1b]0;pwned\x07 done"
)


def all_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (k, *all_strings(v))]
    if isinstance(value, list):
        return [s for item in value for s in all_strings(item)]
    return []


async def forged_sweep(path: Path, db: Path, tmp_path: Path) -> None:
    """Store, through `fleet ingest`, an agent's result whose texts are hostile: a flag code
    and remediation with terminal escapes, Slack control sequences and Markdown links, and
    an `interrupted` with escapes (the central has no master key: a digest is enough)."""
    agent = tmp_path / "agent.json"
    run = await run_fleet_async(
        "sweep", "-i", str(path), "--site", "office-0", "--no-store",
        "--format", "json", "--output", str(agent), "-q",
    )  # fmt: skip
    assert run.code == 2, run.stderr
    document = json.loads(agent.read_text(encoding="utf-8"))
    document["sweep"]["complete"] = False
    document["sweep"]["interrupted"] = f"stopped {ESC}[2J{ESC}]0;pwned\x07 by <!channel>"
    flag = document["sites"][0]["flags"][0]
    flag["code"] = f"EVIL{ESC}[31m"
    flag["remediation"] = HOSTILE_REMEDY
    result = SweepResult.model_validate(document)
    document["sweep"]["digest"] = content_digest(result.sweep, result.sites)
    agent.write_text(json.dumps(document), encoding="utf-8")
    run = await run_fleet_async("ingest", "-i", str(path), "--db", str(db), str(agent))
    assert run.code == 0, run.stderr


async def test_alert_text_is_escaped_for_each_format(
    lab_dns: LabDns,
    m365: M365Lab,
    certs: LabCertificates,
    webhook: WebhookReceiver,  # noqa: F811
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    lab_dns.blocklist(ZONE, {"127.0.0.80": ("127.0.0.4",)})
    m365.tenant.banned_ips.add("127.0.0.80")
    publish_spf(lab_dns)
    relay = Relay()
    relay_server = LabSmtpServer(
        relay, hostname="relay.msp.test", tls_context=certs.server_context()
    )
    await relay_server.start()
    db = tmp_path / "fleet.db"
    url = f"http://127.0.0.1:{webhook.port}/hooks/T0/B0/token"
    env = fleet_env(FLEET_TEST_HOOK=url)
    relay_at = {"host": "127.0.0.1", "port": relay_server.port, "security": "starttls"}
    email = {
        **relay_at,
        "ca_file": str(certs.ca_file),
        "from": "fleet@msp.test",
        "to": ["noc@msp.test"],
    }
    try:
        for n, kind in enumerate(("generic", "slack", "teams")):
            block: dict[str, Any] = {
                "when": "always",
                "webhook": {"url_env": "FLEET_TEST_HOOK", "format": kind},
            }
            if n == 0:
                block["email"] = email
            path = write_inventory(inventory(lab_dns, m365, block), name=f"{kind}.yaml")
            if n == 0:
                await forged_sweep(path, db, tmp_path)
            run = await run_fleet_async(
                "notify", "-i", str(path), "--db", str(db), "--last", env=env
            )
            assert run.code == 0, run.stderr
    finally:
        await relay_server.stop()
    generic, slack, teams = webhook.bodies
    # Then no terminal escape reaches any channel
    (message,) = relay.messages
    plain = message.get_body(preferencelist=("plain",))
    assert plain is not None
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    texts = {
        "e-mail": message.as_string() + plain.get_content(),
        "e-mail html": html.get_content(),
        "generic": json.dumps(generic, ensure_ascii=False),
        "slack": json.dumps(slack, ensure_ascii=False),
        "teams": json.dumps(teams, ensure_ascii=False),
    }
    for channel, text in texts.items():
        assert ESC not in text, channel
        assert "\\u001b" not in text, channel
        assert "done" in text or channel == "generic"  # the words stay, the escapes go
    assert all(ESC not in s for s in all_strings(generic))
    # ... the HTML part shows the hostile text as text, never as markup
    assert "<!channel>" not in texts["e-mail html"]
    assert "&lt;!channel&gt;" in texts["e-mail html"]
    # ... Slack reads no control sequence: no ping, no link, one code block
    block = slack["blocks"][0]["text"]["text"]
    assert block.startswith("```")
    assert block.endswith("```")
    assert "```" not in block[3:-3]
    for text in (block, slack["text"]):
        assert "<!channel>" not in text
        assert "<http://" not in text
    assert "&lt;!channel&gt;" in block
    # ... Teams renders no link and no mention
    card_text = " ".join(b["text"] for b in teams["attachments"][0]["content"]["body"])
    assert "[click](http" not in card_text
    assert "<!channel>" not in card_text
    assert "\\[click\\]\\(http://evil.example\\)" in card_text


@pytest.mark.parametrize(
    "bad_url",
    [
        "http://[::1/hooks/T0/B0/s3cret-token",  # httpx cannot parse it
        "http://127.0.0.1:99999/hooks/T0/B0/s3cret-token",  # parsed, but no socket takes it
    ],
)
async def test_a_webhook_url_that_cannot_be_parsed_is_an_undelivered_alert(
    lab_dns: LabDns,
    m365: M365Lab,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
    bad_url: str,
) -> None:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    db = tmp_path / "fleet.db"
    block = {"when": "always", "webhook": {"url_env": "FLEET_TEST_HOOK", "format": "slack"}}
    path = write_inventory(inventory(lab_dns, m365, block))
    run = await run_fleet_async(
        "sweep", "-i", str(path), "--db", str(db), "-q", "--notify",
        env=fleet_env(FLEET_TEST_HOOK=bad_url),
    )  # fmt: skip
    assert run.code == 3, run.stderr
    assert "internal error" not in run.stderr
    assert (
        "alert not delivered: webhook alert failed: the URL in $FLEET_TEST_HOOK is not a valid URL"
        in run.stderr
    )
    assert "s3cret-token" not in run.stderr + run.stdout


@pytest.mark.skipif(os.name != "posix", reason="POSIX file permissions")
async def test_a_secret_file_other_users_can_read_draws_a_warning(
    lab_dns: LabDns,
    m365: M365Lab,
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    key = "k7c9q2mzx4fwp8r3tnb6yv5hd0"
    lab_dns.blocklist(f"{key}.{DQS_ZONE}")
    publish_spf(lab_dns)
    key_file = tmp_path / "dqs.key"
    key_file.write_text(key + "\n")
    password_file = tmp_path / "mfp.password"
    password_file.write_text("not-the-password\n")
    text = inventory(lab_dns, m365, {"when": "always"}, sites=1)
    text.blocklists = [{"kind": "spamhaus-dqs", "key_file": str(key_file)}]
    login = {"username": "s@contoso.test", "password_file": str(password_file)}
    mfp = device(
        m365.submission.port,
        m365.ca_file,
        security=None,
        mail_from="s@contoso.test",
        to="f@contoso.test",
        auth=login,
    )
    path = write_inventory(text.site("office-login", mfp, client="Login"))
    sweep = ["sweep", "-i", str(path), "--db", str(tmp_path / "fleet.db"), "-q"]
    # Given secret files only their owner can read: no warning
    key_file.chmod(0o600)
    password_file.chmod(0o600)
    run = await run_fleet_async(*sweep)
    assert "accessible by other users" not in run.stderr, run.stderr
    # When they are readable by others (as `umask 022` leaves a new file)
    key_file.chmod(0o644)
    password_file.chmod(0o640)
    run = await run_fleet_async(*sweep)
    # Then each draws a warning that names it and says what to do, as ssh does
    assert f"the secret file {key_file} is accessible by other users (mode 0o644)" in run.stderr
    assert f"the secret file {password_file} is accessible by other users" in run.stderr
    assert "chmod 600" in run.stderr
    assert key not in run.stderr


async def test_the_first_sweep_alerts_on_what_it_found(
    lab_dns: LabDns,
    m365: M365Lab,
    webhook: WebhookReceiver,  # noqa: F811
    write_inventory: Callable[..., Path],
    tmp_path: Path,
) -> None:
    # Given a newly scheduled nightly sweep (`when: changes`) and no history yet
    lab_dns.blocklist(ZONE, {"127.0.0.80": ("127.0.0.4",)})
    m365.tenant.banned_ips.add("127.0.0.80")
    publish_spf(lab_dns)
    block = {"when": "changes", "webhook": {"url_env": "FLEET_TEST_HOOK", "format": "generic"}}
    path = write_inventory(inventory(lab_dns, m365, block))
    env = fleet_env(FLEET_TEST_HOOK=f"http://127.0.0.1:{webhook.port}/h")
    db = tmp_path / "fleet.db"
    # When its first sweep finds a critical site
    run = await run_fleet_async(
        "sweep", "-i", str(path), "--db", str(db), "-q", "--notify", env=env
    )
    # Then the alert goes out: compared with no history, everything found is new
    assert run.code == 2, run.stderr
    assert "alert sent: generic webhook" in run.stderr
    (body,) = webhook.bodies
    assert body["new_critical"] >= 1
    assert body["changed_sites"] == ["office-0"]
    # ... and the second night, with nothing changed, is quiet again
    run = await run_fleet_async(
        "sweep", "-i", str(path), "--db", str(db), "-q", "--notify", env=env
    )
    assert run.code == 2
    assert "no alert (when: changes" in run.stderr
    assert len(webhook.bodies) == 1
