"""--verify-delivery without the lab: the receiver's verdict read from real headers, the
likely cause of Junk, the `verify` inventory keys and the command line's refusals. The lab
tier (tests/test_lab_delivery.py) runs it end to end against Postfix and Dovecot."""

from __future__ import annotations

import asyncio
import email
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fleet.credentials import SecretSource
from fleet.errors import InventoryError
from fleet.inventory import parse_inventory, preflight
from fleet.lab.dns import LabDns
from fleet.results import Delivery, DeliveryStatus, FlagCode, Severity
from fleet.verify.findings import delivery_flag
from fleet.verify.imap import junk_folders
from fleet.verify.verdicts import read_verdicts
from tests.conftest import M365Lab, fleet_env, run_fleet, run_fleet_async
from tests.hostile import lab_inventory
from tests.inventory_builder import InventoryBuilder, device

# Exchange Online's header (no authserv-id, `;` without a space), as quoted in a public
# question: pastebin.com/neJNpgmZ (addresses as published there).
MICROSOFT = """\
Authentication-Results: spf=softfail (sender IP is X.X.X.X)
 smtp.mailfrom=gmail.com; clientdomain.com; dkim=fail (no key for signature)
 header.d=clientdomain.com;clientdomain.com; dmarc=fail action=quarantine
 header.from=clientdomain.com;compauth=fail reason=000
Received-SPF: SoftFail (protection.outlook.com: domain of transitioning
 gmail.com discourages use of X.X.X.X as permitted sender)
Subject: scan

"""
# Gmail's, as published at pastebin.com/sy34es46 (shortened): SPF fails, DKIM passes.
GOOGLE = """\
Received-SPF: fail (google.com: domain of bounce-test@lab-mta-3.com does not designate 149.202.112.229 as permitted sender) client-ip=149.202.112.229;
Authentication-Results: mx.google.com;
       spf=fail (google.com: domain of bounce-test@lab-mta-3.com does not designate 149.202.112.229 as permitted sender) smtp.mailfrom=bounce-test@lab-mta-3.com;
       dkim=pass header.i=@lab-mta-1.com;
       dmarc=fail (p=QUARANTINE dis=QUARANTINE) header.from=lab-mta-3.com
Subject: scan

"""


def test_microsofts_header_gives_every_verdict_and_the_compauth_reason() -> None:
    verdicts = read_verdicts(email.message_from_string(MICROSOFT))
    assert (verdicts.spf, verdicts.dkim, verdicts.dmarc, verdicts.compauth) == (
        "softfail",
        "fail",
        "fail",
        "fail",
    )
    assert verdicts.compauth_reason == "000"


def test_googles_header_with_a_comment_that_names_pass() -> None:
    verdicts = read_verdicts(email.message_from_string(GOOGLE))
    assert (verdicts.spf, verdicts.dkim, verdicts.dmarc, verdicts.compauth) == (
        "fail",
        "pass",
        "fail",
        None,
    )


def test_received_spf_alone_still_gives_the_spf_verdict() -> None:
    message = email.message_from_string("Received-SPF: Fail (mailfrom) identity=mailfrom\n\n")
    verdicts = read_verdicts(message)
    assert verdicts.spf == "fail"
    assert verdicts.dmarc is None


def test_a_message_without_verdicts() -> None:
    verdicts = read_verdicts(email.message_from_string("Subject: scan\n\n"))
    assert verdicts.spf is verdicts.header is None


def junk(**verdicts: str) -> Delivery:
    return Delivery(
        method="imap",
        mailbox="scans@contoso.test",
        test_message_id="0123456789abcdef",
        status=DeliveryStatus.junk,
        folder="Junk Email",
        delay_s=4.2,
        within_s=120,
        **verdicts,
    )


@pytest.mark.parametrize(
    ("verdicts", "cause", "fix"),
    [
        ({"spf": "fail", "dmarc": "fail"}, "SPF fail for 203.0.113.5", "ip4:203.0.113.5"),
        ({"spf": "softfail"}, "SPF softfail for 203.0.113.5", "ip4:203.0.113.5"),
        ({"spf": "pass", "dkim": "none", "dmarc": "fail"}, "DMARC fail", "Align SPF or DKIM"),
        ({"spf": "pass", "compauth": "fail reason=001"}, "composite authentication", "connector"),
        ({"spf": "pass", "dmarc": "pass"}, "content filter", "spam filter"),
    ],
)
def test_junk_is_a_warning_with_the_likely_cause(
    verdicts: dict[str, str], cause: str, fix: str
) -> None:
    flag = delivery_flag(junk(**verdicts), "203.0.113.5")
    assert flag is not None
    code, severity, evidence, remediation = flag
    assert (code, severity) == (FlagCode.DELIVERED_TO_JUNK, Severity.warn)
    assert "delivered to Junk Email after 4.2 s" in evidence
    assert cause in evidence
    assert fix in remediation


def test_not_delivered_is_critical_and_the_inbox_raises_nothing() -> None:
    lost = junk().model_copy(update={"status": DeliveryStatus.not_delivered, "folder": None})
    flag = delivery_flag(lost, None)
    assert flag is not None
    assert flag[:2] == (FlagCode.NOT_DELIVERED, Severity.critical)
    assert "after 120 s" in flag[2]
    assert delivery_flag(junk().model_copy(update={"status": DeliveryStatus.inbox}), None) is None


IMAP_HU = {"host": "h.test", "username": "u"}


def hq(**device_keys: Any) -> InventoryBuilder:
    """One site, one copier (more device keys, such as `verify`, as keywords)."""
    smtp = {"host": "mx.contoso.test", "port": 25, "from": "a@contoso.test", "to": "b@contoso.test"}
    return InventoryBuilder().site(
        "hq", {"id": "mfp", "smtp": smtp, **device_keys}, client="Contoso"
    )


def test_verify_keys_are_read() -> None:
    imap = {"host": "outlook.office365.com", "username": "scans@contoso.test"}
    verify = {"within_s": 60, "imap": {**imap, "password_env": "SCANS_IMAP"}}
    inv = hq(verify=verify).parse("inv.yaml")
    verify = inv.sites[0].devices[0].verify
    assert verify is not None
    assert verify.imap is not None
    assert (verify.within_s, verify.imap.port, verify.imap.security) == (60, 993, "tls")
    # the password is a secret of the sweep: scrubbed from everything it produces
    assert any(source.env == "SCANS_IMAP" for _, source in inv.secret_sources())


def test_imap_oauth2_keys_are_read_and_the_app_secret_is_a_sweep_secret() -> None:
    oauth2 = {"provider": "microsoft", "tenant_id": "t", "client_id": "c"}
    imap = {"host": "outlook.office365.com", "username": "scans@contoso.test"}
    verify = {"imap": {**imap, "oauth2": {**oauth2, "client_secret_env": "IMAP_APP"}}}
    inv = hq(verify=verify).parse("inv.yaml")
    verify = inv.sites[0].devices[0].verify
    assert verify is not None
    assert verify.imap is not None
    assert verify.imap.oauth2 is not None
    assert verify.imap.oauth2.kind == "microsoft"
    assert (None, SecretSource(env="IMAP_APP")) in set(inv.secret_sources())
    # a sweep refuses to start without the app's secret, naming where it was looked for
    problems = preflight(inv)
    assert any("verify.imap.oauth2.client_secret_env: IMAP_APP is not set" in p for p in problems)


@pytest.mark.parametrize(
    ("verify", "problem"),
    [
        ({"imap": {**IMAP_HU, "password": "hunter2"}}, "password_env"),
        ({"imap": IMAP_HU}, "exactly one of password_env, password_file or oauth2"),
        (
            {"imap": {**IMAP_HU, "password_env": "X", "oauth2": {"token_env": "T"}}},
            "exactly one of password_env, password_file or oauth2",
        ),
        (
            {"imap": {**IMAP_HU, "oauth2": {"provider": "google"}}},
            "oauth2 provider google needs service_account_file",
        ),
        ({"within_s": 60}, "verify needs exactly one of imap or graph"),
        (
            {"graph": {"mailbox": "s@contoso.test", "oauth2": {"token_env": "T"}}},
            "graph takes its token from oauth2 provider microsoft",
        ),
        ({"imap": {**IMAP_HU, "password_env": "X"}, "within_s": 0}, "within_s"),
    ],
)
def test_bad_verify_keys_are_clear_errors(verify: dict[str, Any], problem: str) -> None:
    with pytest.raises(InventoryError) as caught:
        hq(verify=verify).parse("inv.yaml")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--verify-delivery"], "--verify-delivery needs --send-test"),
        (["--keep-test-messages"], "--keep-test-messages goes with --verify-delivery"),
    ],
)
def test_the_command_line_refuses_before_sending_anything(
    tmp_path: Path, args: list[str], words: str
) -> None:
    imap = {"host": "127.0.0.1", "username": "u", "password_env": "FLEET_TEST_NOPE"}
    path = hq(verify={"imap": imap}).write(tmp_path / "inventory.yaml")
    run = run_fleet("sweep", "-i", str(path), "--no-store", "--quiet", *args)
    assert run.code == 3
    assert words in run.stderr


def test_verify_delivery_without_any_mailbox_is_refused(tmp_path: Path) -> None:
    path = hq().write(tmp_path / "inventory.yaml")
    run = run_fleet(
        "sweep", "-i", str(path), "--no-store", "--quiet", "--send-test", "--verify-delivery"
    )
    assert run.code == 3
    assert "no selected device has a `verify` mailbox" in run.stderr


def test_a_profile_gives_its_devices_the_mailbox_to_check() -> None:
    inv = parse_inventory(
        """\
profiles:
  scans:
    host: mx.contoso.test
    port: 25
    to: scans@contoso.test
    verify: {imap: {host: imap.contoso.test, username: scans@contoso.test, password_env: P}}
sites:
  - id: hq
    client: Contoso
    devices:
      - {id: mfp-1, smtp: {profile: scans, from: a@contoso.test}}
      - id: mfp-2
        smtp: {profile: scans, from: b@contoso.test}
        verify: {within_s: 30, imap: {host: other.test, username: o@contoso.test, password_env: Q}}
""",
        "inv.yaml",
    )
    first, second = inv.sites[0].devices
    assert first.verify is not None
    assert first.verify.imap is not None
    assert first.verify.imap.host == "imap.contoso.test"
    # a device's own verify wins over its profile's
    assert second.verify is not None
    assert second.verify.imap is not None
    assert (second.verify.imap.host, second.verify.within_s) == ("other.test", 30)


async def test_a_silent_imap_server_costs_one_command_timeout(
    m365: M365Lab, lab_dns: LabDns, write_inventory: Callable[..., Path]
) -> None:
    # Given an IMAP server that accepts connections and never says a word
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    imap = {"host": "127.0.0.1", "port": port, "username": "alice@contoso.test"}
    mfp = device(m365.mx.port, m365.ca_file, host="localhost", to="alice@contoso.test")
    mfp["verify"] = {"within_s": 60, "imap": {**imap, "password_env": "FLEET_TEST_IMAP"}}
    inventory = lab_inventory(lab_dns, connect_s=5, command_s=1, site_s=30)
    path = write_inventory(inventory.site("hq", mfp, client="Contoso"))
    try:
        # When the site is scanned with a 1 s command timeout and a 60 s window
        started = time.monotonic()
        run = await run_fleet_async(
            "scan", "hq", "-i", str(path), "--send-test", "--verify-delivery", "--format",
            "json", "--quiet", "--no-store", env=fleet_env(FLEET_TEST_IMAP="not-a-real-one"),
        )  # fmt: skip
        elapsed_s = time.monotonic() - started
    finally:
        server.close()
        for writer in held:
            writer.close()
    # Then the mailbox is unknown after about one command timeout, not the window
    result = json.loads(run.stdout)
    delivery = result["sites"][0]["devices"][0]["delivery"]
    assert delivery["status"] == "unknown"
    assert "timed out" in delivery["detail"]
    assert elapsed_s < 30, elapsed_s


@pytest.mark.parametrize(
    ("lines", "junk"),
    [
        # Gmail marks its Spam label \Junk (developers.google.com/gmail/imap/imap-extensions)
        ([rb'(\HasChildren \Noselect) "/" "[Gmail]"', rb'(\HasNoChildren \Junk) "/" "[Gmail]/Spam"'], ["[Gmail]/Spam"]),
        # Dovecot with `special_use = \Junk` (as the lab)
        ([rb'(\HasNoChildren \UnMarked \Junk) "/" Junk', rb'(\HasNoChildren) "/" INBOX'], ["Junk"]),
        # no SPECIAL-USE: the name says it (Exchange Online's folder is "Junk Email")
        ([rb'(\HasNoChildren) "/" "Junk Email"', rb'(\HasNoChildren) "/" Archive'], ["Junk Email"]),
        # RFC 6154's own example: no Junk folder at all
        ([rb'(\Marked \HasNoChildren) "/" Inbox', rb'(\Trash \HasNoChildren) "/" Trash'], []),
    ],
)  # fmt: skip
def test_the_junk_folder_is_found_by_its_mark_or_its_name(
    lines: list[bytes], junk: list[str]
) -> None:
    assert junk_folders(lines) == junk
