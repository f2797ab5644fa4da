"""The health matrix (issue 6): every flag from real conversations with local servers and
real blocklist lookups, run through the real engine (inventory -> plan -> sweep -> assess),
the verdict ordering, and the monitoring exit codes."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from fleet import m365
from fleet.inventory import load_inventory
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import (
    LabSmtpServer,
    M365MxHandler,
    M365SubmissionHandler,
    Mailbox,
    QuietHandler,
    google_smtp,
    m365_mx,
)
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.probes.dnsbl_zones import reverse_name
from fleet.report.summary import exit_code
from fleet.results import (
    Category,
    Flag,
    Severity,
    SiteResult,
    Stage,
    SweepResult,
    Verdict,
    worst,
)
from fleet.runner import Control, SweepOptions

from .conftest import M365Lab, free_port, publish_spf
from .inventory_builder import InventoryBuilder, device, lab_defaults
from .inventory_builder import site as builder_site

ZONE = "zen.lab.test"
PASSWORD_ENV = "FLEET_TEST_MATRIX_PASSWORD"
PASSWORD = "correct horse battery staple"
TOKEN_ENV = "FLEET_TEST_MATRIX_TOKEN"
TOKEN = "matrix-oauth-token"
CUT_OFF = m365.BASIC_AUTH_SMTP_OFF.strftime("%d %B %Y").lstrip("0")

WriteInventory = Callable[..., Path]


# ---- building inventories -------------------------------------------------------------


@pytest.fixture
def lab(lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch) -> LabDns:
    """The lab DNS with a working blocklist zone, and SPF that authorises every loopback
    address for the tests' sender domain (so only the flag under test shows)."""
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return lab_dns


def header(dns: LabDns, dns_timeout_s: float = 1, command_s: float = 5) -> InventoryBuilder:
    defaults = lab_defaults(
        dns, connect_s=3, command_s=command_s, site_s=30, dns_timeout_s=dns_timeout_s
    )
    defaults["concurrency"] = {"global": 20, "per_site": 2, "per_host": 20}
    defaults["ehlo_name"] = "scanner-host.msp.test"
    return InventoryBuilder(defaults, blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}])


def site(
    ident: str, bind: str, *devices: dict[str, Any], ip: str | None = "same"
) -> dict[str, Any]:
    """A site that sends from `bind`; it declares that IP unless told otherwise."""
    declared = bind if ip == "same" else ip
    egress = {"bind": bind, **({"ip": declared} if declared else {})}
    return builder_site(ident, *devices, client="Contoso", egress=egress)


def direct_send(
    port: int,
    ca_file: str,
    ident: str = "mfp",
    to: str = "frontdesk@contoso.test",
    host: str = "127.0.0.1",
    **smtp: Any,
) -> dict[str, Any]:
    """A copier on Direct Send: no login, and a port that is not 587/465 (more `smtp` keys
    as keywords)."""
    return device(port, ca_file, ident=ident, host=host, to=to, **smtp)


def submission(
    port: int,
    ca_file: str,
    ident: str = "konica",
    host: str = "127.0.0.1",
    login: str = "scanner@contoso.test",
    oauth: bool = False,
) -> dict[str, Any]:
    """A copier on client submission with a password (or an OAuth token)."""
    secret = {"oauth2": {"token_env": TOKEN_ENV}} if oauth else {"password_env": PASSWORD_ENV}
    auth = {"username": login, **secret}
    return device(
        port, ca_file, ident=ident, host=host, mail_from=login, to="office@contoso.test", auth=auth
    )


async def sweep(write_inventory: WriteInventory, text: InventoryBuilder) -> dict[str, SiteResult]:
    result = await run_sweep(plan_sweep(load_inventory(str(write_inventory(text)))))
    assert result.sweep.complete
    return {s.site: s for s in result.sites}


def codes(site_result: SiteResult) -> list[str]:
    return [f.code for f in site_result.flags]


def flag(site_result: SiteResult, code: str) -> Flag:
    found = [f for f in site_result.flags if f.code == code]
    assert len(found) == 1, (code, site_result.flags)
    return found[0]


def assert_current_dirty_ip_remedy(remediation: str) -> None:
    """Authenticated submission, but not only with a password: it names what lasts."""
    for words in (
        "authenticated submission",
        "OAuth",
        "connector relay from a clean static IP",
        "High Volume Email",
        "relay service",
        "Basic AUTH",
        CUT_OFF,
    ):
        assert words in remediation, (words, remediation)


# ---- DIRECT_SEND_DIRTY_IP ------------------------------------------------------------------


async def test_direct_send_from_a_listed_ip_is_critical_even_before_rejection(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given a site whose IP is on the exploits list (XBL), and an MX that still accepts it,
    # with one copier on Direct Send and one on authenticated submission
    lab.list_ip(ZONE, "127.0.0.30", "127.0.0.4", reason="Listed by lab XBL")
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(token=TOKEN)
    text = header(lab).add(
        site(
            "hq",
            "127.0.0.30",
            direct_send(m365.mx.port, m365.ca_file, "mfp-1"),
            direct_send(m365.mx.port, m365.ca_file, "mfp-2"),
            submission(m365.submission.port, m365.ca_file, oauth=True),
        )
    )
    sites = await sweep(write_inventory, text)

    # Then the site is critical, led by DIRECT_SEND_DIRTY_IP on the Direct Send copiers only
    hq = sites["hq"]
    assert hq.verdict is Verdict.critical
    assert codes(hq) == ["DIRECT_SEND_DIRTY_IP", "LISTED"]
    dirty = flag(hq, "DIRECT_SEND_DIRTY_IP")
    assert dirty.severity is Severity.critical
    assert dirty.devices == ["mfp-1", "mfp-2"]
    assert dirty.evidence.startswith("listed: 127.0.0.30 on zen.lab.test (XBL:")
    assert "Listed by lab XBL" in dirty.evidence
    assert "rejected" not in dirty.evidence
    assert_current_dirty_ip_remedy(dirty.remediation)
    # the listing concerns every device, whatever its mode
    assert flag(hq, "LISTED").devices == ["mfp-1", "mfp-2", "konica"]
    assert flag(hq, "LISTED").severity is Severity.warn
    # each Direct Send device carries the flag's finding and remedy in its own row
    by_device = {d.device: d for d in hq.devices}
    assert by_device["mfp-1"].verdict is Verdict.critical
    assert by_device["mfp-1"].finding.startswith("DIRECT_SEND_DIRTY_IP: listed:")
    assert by_device["mfp-1"].remediation == dirty.remediation
    assert by_device["konica"].verdict is Verdict.warn  # listed, but it authenticates


async def test_direct_send_rejected_for_reputation_is_dirty_without_any_listing(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given an IP on no blocklist, that Microsoft 365 refuses at RCPT TO (5.7.606)
    m365.tenant.banned_ips.add("127.0.0.31")
    text = header(lab).add(site("branch", "127.0.0.31", direct_send(m365.mx.port, m365.ca_file)))
    sites = await sweep(write_inventory, text)

    branch = sites["branch"]
    assert branch.verdict is Verdict.critical
    # the rejection says it all: no separate IP_REPUTATION, and nothing is LISTED
    assert codes(branch) == ["DIRECT_SEND_DIRTY_IP"]
    dirty = flag(branch, "DIRECT_SEND_DIRTY_IP")
    assert dirty.devices == ["mfp"]
    assert dirty.evidence.startswith("rejected (mfp) at rcpt: 550 5.7.606 Access denied")
    assert "[127.0.0.31]" in dirty.evidence
    assert "server rejection" in dirty.remediation
    assert_current_dirty_ip_remedy(dirty.remediation)
    [device] = branch.devices
    assert device.category is Category.ip_reputation
    assert device.failed_stage is Stage.rcpt
    assert device.reply is not None
    assert device.reply.enhanced == "5.7.606"


async def test_listed_and_rejected_gives_one_flag_with_both_pieces_of_evidence(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    lab.list_ip(ZONE, "127.0.0.32", "127.0.0.3", reason="Listed by lab CSS")
    m365.tenant.banned_ips.add("127.0.0.32")
    text = header(lab).add(
        site(
            "hq",
            "127.0.0.32",
            direct_send(m365.mx.port, m365.ca_file, "mfp-1"),
            direct_send(m365.mx.port, m365.ca_file, "mfp-2"),
        )
    )
    sites = await sweep(write_inventory, text)

    hq = sites["hq"]
    dirty = flag(hq, "DIRECT_SEND_DIRTY_IP")
    assert dirty.devices == ["mfp-1", "mfp-2"]
    listed, rejected = dirty.evidence.split(" | ")
    assert listed.startswith("listed: 127.0.0.32 on zen.lab.test (SBL CSS:")
    # the two copiers share one conversation: the rejection is told once, naming both
    assert rejected.startswith("rejected (mfp-1, mfp-2) at rcpt: 550 5.7.606")
    assert "(SBL CSS, server rejection)" in dirty.remediation
    assert codes(hq) == ["DIRECT_SEND_DIRTY_IP", "LISTED"]


# ---- DIRECT_SEND_DYNAMIC_IP ----------------------------------------------------------------


@pytest.mark.parametrize("code", ["127.0.0.10", "127.0.0.11"])
async def test_direct_send_from_a_policy_listed_ip_warns(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory, code: str
) -> None:
    # Given a site on a dynamic range (PBL), and an MX that does not (yet) reject it
    lab.list_ip(ZONE, "127.0.0.33", code, reason="Listed by lab PBL")
    text = header(lab).add(
        site("home-office", "127.0.0.33", direct_send(m365.mx.port, m365.ca_file))
    )
    sites = await sweep(write_inventory, text)

    office = sites["home-office"]
    assert office.verdict is Verdict.warn
    assert codes(office) == ["DIRECT_SEND_DYNAMIC_IP", "LISTED"]
    dynamic = flag(office, "DIRECT_SEND_DYNAMIC_IP")
    assert dynamic.severity is Severity.warn
    assert dynamic.devices == ["mfp"]
    assert dynamic.evidence.startswith("policy listing: 127.0.0.33 on zen.lab.test (PBL")
    assert "dynamic or residential" in dynamic.remediation
    assert "authenticated submission" in dynamic.remediation
    # a policy listing alone is information, not a warning of its own
    assert flag(office, "LISTED").severity is Severity.info


async def test_a_policy_listed_ip_that_is_rejected_is_dirty_not_dynamic(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    lab.list_ip(ZONE, "127.0.0.34", "127.0.0.10")
    m365.tenant.banned_ips.add("127.0.0.34")
    text = header(lab).add(
        site("home-office", "127.0.0.34", direct_send(m365.mx.port, m365.ca_file))
    )
    office = (await sweep(write_inventory, text))["home-office"]
    assert office.verdict is Verdict.critical
    assert "DIRECT_SEND_DIRTY_IP" in codes(office)
    assert "DIRECT_SEND_DYNAMIC_IP" not in codes(office)


async def test_a_dynamic_ip_is_flagged_even_when_the_conversation_failed_otherwise(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given a dynamic IP, and a copier whose recipient does not exist: the recipient is
    # one problem, the dynamic IP (not rejected yet) is another
    lab.list_ip(ZONE, "127.0.0.39", "127.0.0.10")
    m365.tenant.recipients = {"frontdesk@contoso.test"}
    text = header(lab).add(
        site(
            "home-office",
            "127.0.0.39",
            direct_send(m365.mx.port, m365.ca_file, to="nobody@contoso.test"),
        )
    )
    office = (await sweep(write_inventory, text))["home-office"]
    assert codes(office) == ["RECIPIENT_REJECTED", "DIRECT_SEND_DYNAMIC_IP", "LISTED"]
    # the copier's own row keeps what its conversation found
    assert office.devices[0].category is Category.recipient_rejected
    assert not office.devices[0].finding.startswith("DIRECT_SEND_DYNAMIC_IP")


async def test_a_policy_listing_does_not_concern_copiers_that_authenticate(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    lab.list_ip(ZONE, "127.0.0.35", "127.0.0.10")
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(token=TOKEN)
    text = header(lab).add(
        site("office", "127.0.0.35", submission(m365.submission.port, m365.ca_file, oauth=True))
    )
    office = (await sweep(write_inventory, text))["office"]
    assert codes(office) == ["LISTED"]
    assert office.verdict is Verdict.ok


# ---- BASIC_AUTH_RETIRING -------------------------------------------------------------------


async def test_password_auth_to_an_exchange_banner_is_retiring(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given a copier that logs in with a password to a server that greets like Exchange Online
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(password=PASSWORD)
    text = header(lab).add(
        site("office", "127.0.0.36", submission(m365.submission.port, m365.ca_file))
    )
    office = (await sweep(write_inventory, text))["office"]

    # Then it works today, and is flagged with the date it stops working
    assert office.devices[0].category is Category.ok
    assert office.verdict is Verdict.warn
    assert codes(office) == ["BASIC_AUTH_RETIRING"]
    retiring = flag(office, "BASIC_AUTH_RETIRING")
    assert retiring.devices == ["konica"]
    assert CUT_OFF in retiring.evidence
    assert CUT_OFF in retiring.remediation
    for words in ("OAuth (XOAUTH2)", "High Volume Email", "connector relay", "relay service"):
        assert words in retiring.remediation
    assert office.devices[0].finding.startswith("BASIC_AUTH_RETIRING:")


async def test_password_auth_to_smtp_office365_com_is_retiring_by_its_name(
    lab: LabDns,
    m365: M365Lab,
    certs: LabCertificates,
    write_inventory: WriteInventory,
) -> None:
    # Given smtp.office365.com (resolved by the lab DNS to loopback) with a banner that
    # says nothing about Microsoft: the host name alone must be enough
    lab.add("smtp.office365.com", "A", "127.0.0.1")
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(password=PASSWORD)
    handler = M365SubmissionHandler(m365.tenant)
    server = LabSmtpServer(
        handler,
        hostname="smtp.office365.com",
        ident="ESMTP ready",
        tls_context=certs.server_context("smtp.office365.com"),
        authenticator=handler.authenticate,
        auth_exclude=("PLAIN",),
    )
    await server.start()
    try:
        text = header(lab).add(
            site(
                "office",
                "127.0.0.37",
                submission(server.port, m365.ca_file, host="smtp.office365.com"),
            )
        )
        office = (await sweep(write_inventory, text))["office"]
    finally:
        await server.stop()
    transcript = office.conversation_of(office.devices[0]).transcript
    assert transcript[1].reply is not None
    assert "Microsoft" not in transcript[1].reply.text  # the banner
    assert codes(office) == ["BASIC_AUTH_RETIRING"]


async def test_oauth_and_other_providers_are_not_retiring(
    lab: LabDns,
    m365: M365Lab,
    certs: LabCertificates,
    write_inventory: WriteInventory,
) -> None:
    # Given one copier on XOAUTH2 to Microsoft 365, one with a password to Google
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(password=PASSWORD, token=TOKEN)
    google = google_smtp(m365.tenant, certs.server_context("localhost", "127.0.0.1"))
    await google.start()
    try:
        text = header(lab).add(
            site(
                "office",
                "127.0.0.38",
                submission(m365.submission.port, m365.ca_file, "sharp", oauth=True),
                submission(google.port, m365.ca_file, "ricoh"),
            )
        )
        office = (await sweep(write_inventory, text))["office"]
    finally:
        await google.stop()
    assert [d.category for d in office.devices] == [Category.ok, Category.ok]
    assert office.verdict is Verdict.ok
    assert codes(office) == []


def test_the_cut_off_date_lives_in_one_place(monkeypatch: pytest.MonkeyPatch) -> None:
    # Nowhere else in the code is the date written...
    package = Path(m365.__file__).parent
    for path in package.rglob("*.py"):
        if path.name == "m365.py":
            continue
        text = path.read_text(encoding="utf-8")
        for spelling in ("2026", "December", "BASIC_AUTH_SMTP_OFF ="):
            assert spelling not in text, (path, spelling)
    # ...so moving it moves every flag that names it
    monkeypatch.setattr(m365, "BASIC_AUTH_SMTP_OFF", date(2027, 9, 30))
    notice = m365.basic_auth_notice(date(2027, 1, 1))
    assert "30 September 2027" in notice
    assert "272 days from now" in notice
    after = m365.basic_auth_notice(date(2027, 10, 1))
    assert "turned Basic (password) AUTH for SMTP off" in after


# ---- the tenant refuses Direct Send ----------------------------------------------------------


class ConnectorMismatchMx(M365MxHandler):
    """A tenant whose inbound connector names another IP: 5.7.64 at RCPT TO."""

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return (
            "550 5.7.64 TenantAttribution; Relay Access Denied "
            "[BY2NAM01FT030.eop-nam01.prod.protection.outlook.com]"
        )


async def test_reject_direct_send_and_a_stale_connector_are_direct_send_rejected(
    lab: LabDns,
    m365: M365Lab,
    certs: LabCertificates,
    write_inventory: WriteInventory,
) -> None:
    # Given a tenant that turned on RejectDirectSend (5.7.68), and one whose connector
    # still names the site's old IP (5.7.64), for a connector relay copier
    m365.tenant.reject_direct_send = True
    stale = LabSmtpServer(
        ConnectorMismatchMx(m365.tenant),
        hostname="BY2NAM01FT030.mail.protection.outlook.com",
        tls_context=certs.server_context("localhost", "127.0.0.1"),
    )
    await stale.start()
    try:
        text = header(lab).add(
            site("direct", "127.0.0.40", direct_send(m365.mx.port, m365.ca_file)),
            site(
                "relay",
                "127.0.0.41",
                direct_send(stale.port, m365.ca_file, "relay-mfp", mode="relay"),
            ),
        )
        sites = await sweep(write_inventory, text)
    finally:
        await stale.stop()
    for name, enhanced in (("direct", "5.7.68"), ("relay", "5.7.64")):
        result = sites[name]
        assert result.verdict is Verdict.critical
        assert codes(result) == ["DIRECT_SEND_REJECTED"], result.flags
        rejected = flag(result, "DIRECT_SEND_REJECTED")
        assert rejected.severity is Severity.critical
        assert rejected.evidence.startswith(f"rcpt: 550 {enhanced} Tenant")
        assert rejected.remediation
    assert "connector" in flag(sites["relay"], "DIRECT_SEND_REJECTED").remediation.lower()


# ---- the login -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("behaviour", "expected", "enhanced"),
    [
        ("auth_disabled", "AUTH_DISABLED", "5.7.139"),
        ("security_defaults", "AUTH_DISABLED", "5.7.139"),
        ("basic_retired", "AUTH_DISABLED", "5.7.30"),
        ("wrong_password", "AUTH_FAILED", "5.7.139"),
        ("throttled", "THROTTLED", "4.3.2"),
    ],
)
async def test_what_the_tenant_says_to_the_login(
    lab: LabDns,
    m365: M365Lab,
    write_inventory: WriteInventory,
    behaviour: str,
    expected: str,
    enhanced: str,
) -> None:
    password = "not the password" if behaviour == "wrong_password" else PASSWORD
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(
        password=password, behaviour="ok" if behaviour == "wrong_password" else behaviour
    )
    text = header(lab).add(
        site("office", "127.0.0.42", submission(m365.submission.port, m365.ca_file))
    )
    office = (await sweep(write_inventory, text))["office"]
    found = flag(office, expected)
    assert found.devices == ["konica"]
    stage = "mail" if behaviour == "throttled" else "auth"
    assert found.evidence.startswith(f"{stage}: ")
    assert enhanced in found.evidence
    assert found.remediation
    severity = Severity.warn if expected == "THROTTLED" else Severity.critical
    assert found.severity is severity
    # Basic AUTH that the tenant already refuses is not "retiring": it is gone
    if expected == "AUTH_DISABLED":
        assert "BASIC_AUTH_RETIRING" not in codes(office)
    if expected == "AUTH_FAILED":
        assert "scanner@contoso.test" in found.remediation


# ---- TLS -----------------------------------------------------------------------------------


async def test_an_untrusted_certificate_is_a_tls_failure(
    lab: LabDns, m365: M365Lab, certs: LabCertificates, write_inventory: WriteInventory
) -> None:
    mx = m365_mx(m365.tenant, certs.self_signed_context("localhost"))
    await mx.start()
    try:
        text = header(lab).add(
            site("office", "127.0.0.43", direct_send(mx.port, m365.ca_file, host="localhost"))
        )
        office = (await sweep(write_inventory, text))["office"]
    finally:
        await mx.stop()
    tls = flag(office, "TLS_FAILURE")
    assert tls.severity is Severity.critical
    assert tls.devices == ["mfp"]
    assert tls.evidence.startswith("tls: ")
    assert "certificate" in tls.evidence
    assert office.verdict is Verdict.critical


async def test_a_server_that_needs_newer_tls_than_the_device_speaks(
    lab: LabDns, m365: M365Lab, certs: LabCertificates, write_inventory: WriteInventory
) -> None:
    # Given a copier whose firmware stops at TLS 1.1, against a server that needs 1.2+,
    # and a modern copier against an old server that stops at TLS 1.1
    old_server = m365_mx(
        m365.tenant,
        certs.server_context("localhost", "127.0.0.1", max_version=ssl.TLSVersion.TLSv1_1),
    )
    await old_server.start()
    try:
        text = header(lab).add(
            site(
                "old-copier",
                "127.0.0.44",
                direct_send(m365.mx.port, m365.ca_file, tls_max=1.1),
            ),
            site("old-server", "127.0.0.45", direct_send(old_server.port, m365.ca_file)),
        )
        sites = await sweep(write_inventory, text)
    finally:
        await old_server.stop()
    old_copier = sites["old-copier"]
    assert codes(old_copier) == ["TLS_TOO_OLD_FOR_DEVICE"]
    too_old = flag(old_copier, "TLS_TOO_OLD_FOR_DEVICE")
    assert too_old.severity is Severity.critical
    assert too_old.devices == ["mfp"]
    assert too_old.evidence.startswith("tls: ")
    # the other way round is the server's problem, not the device's
    assert codes(sites["old-server"]) == ["TLS_FAILURE"]


async def test_a_certificate_expiring_within_21_days_warns(
    lab: LabDns, m365: M365Lab, certs: LabCertificates, write_inventory: WriteInventory
) -> None:
    soon = m365_mx(m365.tenant, certs.server_context(expires_in=timedelta(days=10)))
    later = m365_mx(m365.tenant, certs.server_context(expires_in=timedelta(days=30)))
    await soon.start()
    await later.start()
    try:
        text = header(lab).add(
            site("soon", "127.0.0.46", direct_send(soon.port, m365.ca_file)),
            site("later", "127.0.0.47", direct_send(later.port, m365.ca_file)),
        )
        sites = await sweep(write_inventory, text)
    finally:
        await soon.stop()
        await later.stop()
    expiring = flag(sites["soon"], "CERT_EXPIRING")
    assert expiring.severity is Severity.warn
    assert expiring.devices == ["mfp"]
    assert "in 9 days" in expiring.evidence or "in 10 days" in expiring.evidence
    assert "Renew the certificate of 127.0.0.1" in expiring.remediation
    assert sites["soon"].verdict is Verdict.warn
    assert codes(sites["later"]) == []
    assert sites["later"].verdict is Verdict.ok


# ---- what the MX says about the envelope ------------------------------------------------------


async def test_relay_denied_recipient_rejected_and_throttled(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given Direct Send to an outside address, to an unknown mailbox, and from a new IP
    m365.tenant.recipients = {"frontdesk@contoso.test"}
    m365.tenant.throttled_ips.add("127.0.0.50")
    text = header(lab).add(
        site(
            "outside",
            "127.0.0.48",
            direct_send(m365.mx.port, m365.ca_file, to="someone@example.net"),
        ),
        site(
            "unknown-user",
            "127.0.0.49",
            direct_send(m365.mx.port, m365.ca_file, to="nobody@contoso.test"),
        ),
        site("new-ip", "127.0.0.50", direct_send(m365.mx.port, m365.ca_file)),
    )
    sites = await sweep(write_inventory, text)

    relay = flag(sites["outside"], "RELAY_DENIED")
    assert relay.evidence.startswith("rcpt: 550 5.7.1 Unable to relay")
    assert relay.severity is Severity.critical
    recipient = flag(sites["unknown-user"], "RECIPIENT_REJECTED")
    assert recipient.evidence.startswith("rcpt: 550 5.4.1 Recipient address rejected")
    assert recipient.severity is Severity.critical
    throttled = flag(sites["new-ip"], "THROTTLED")
    assert throttled.evidence.startswith("rcpt: 451 4.7.500")
    assert "127.0.0.50" in throttled.remediation
    assert sites["new-ip"].verdict is Verdict.warn
    for result in sites.values():
        assert all(f.devices == ["mfp"] for f in result.flags)


async def test_a_server_nobody_answers_on_is_unreachable(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    text = header(lab).add(site("dark", "127.0.0.51", direct_send(free_port(), m365.ca_file)))
    dark = (await sweep(write_inventory, text))["dark"]
    unreachable = flag(dark, "UNREACHABLE")
    assert unreachable.severity is Severity.critical
    assert unreachable.evidence.startswith("connect: ")
    assert "refused" in unreachable.evidence
    assert dark.verdict is Verdict.critical


# ---- the egress IP and the blocklists ----------------------------------------------------------


async def test_a_declared_ip_that_servers_do_not_see_is_egress_ip_changed(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given a site declared as 127.0.0.99 whose traffic really leaves from 127.0.0.52
    text = header(lab).add(
        site("moved", "127.0.0.52", direct_send(m365.mx.port, m365.ca_file), ip="127.0.0.99")
    )
    moved = (await sweep(write_inventory, text))["moved"]
    changed = flag(moved, "EGRESS_IP_CHANGED")
    assert changed.severity is Severity.warn
    assert changed.devices == ["mfp"]
    assert changed.evidence == "declared 127.0.0.99, but servers saw 127.0.0.52"
    assert "egress.ip" in changed.remediation
    assert moved.egress_ip == "127.0.0.52"
    assert {b.ip for b in moved.blocklists} == {"127.0.0.99", "127.0.0.52"}


@pytest.mark.parametrize("fault", ["timeout", "refused", "servfail"])
async def test_a_lookup_that_cannot_be_answered_makes_the_site_unknown(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory, fault: str
) -> None:
    # Given a healthy conversation, but a resolver that cannot answer for the site's IP
    lab.fault(f"{reverse_name('127.0.0.53')}.{ZONE}", fault)
    text = header(lab, dns_timeout_s=0.3).add(
        site("blind", "127.0.0.53", direct_send(m365.mx.port, m365.ca_file))
    )
    blind = (await sweep(write_inventory, text))["blind"]
    assert blind.devices[0].category is Category.ok
    # Then the site is never ok: unknown, with the reason
    assert blind.verdict is Verdict.unknown
    assert codes(blind) == ["BLOCKLIST_UNKNOWN"]
    unknown = flag(blind, "BLOCKLIST_UNKNOWN")
    assert unknown.severity is Severity.unknown
    assert unknown.evidence.startswith("127.0.0.53 on zen.lab.test: ")
    assert "defaults.dns.nameservers" in unknown.remediation
    assert blind.devices[0].verdict is Verdict.unknown


async def test_a_site_whose_ip_nobody_knows_is_unknown(
    lab: LabDns, m365: M365Lab, certs: LabCertificates, write_inventory: WriteInventory
) -> None:
    quiet = LabSmtpServer(
        QuietHandler(),
        hostname="lab-mx.test",
        ident="ESMTP Postfix",
        tls_context=certs.server_context("localhost", "127.0.0.1"),
    )
    await quiet.start()
    try:
        text = header(lab).add(
            site("unknown-ip", "127.0.0.54", direct_send(quiet.port, m365.ca_file), ip=None)
        )
        result = (await sweep(write_inventory, text))["unknown-ip"]
    finally:
        await quiet.stop()
    assert result.devices[0].category is Category.ok
    assert result.egress_ip is None
    assert result.verdict is Verdict.unknown
    unknown = flag(result, "BLOCKLIST_UNKNOWN")
    assert "not known" in unknown.evidence
    assert "egress.ip" in unknown.remediation


async def test_listed_is_flagged_for_any_mode(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    lab.list_ip(ZONE, "127.0.0.55", "127.0.0.2", reason="Listed by lab SBL")
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(token=TOKEN)
    text = header(lab).add(
        site("office", "127.0.0.55", submission(m365.submission.port, m365.ca_file, oauth=True))
    )
    office = (await sweep(write_inventory, text))["office"]
    assert codes(office) == ["LISTED"]
    listed = flag(office, "LISTED")
    assert listed.severity is Severity.warn
    assert listed.devices == ["konica"]
    assert listed.evidence.startswith("127.0.0.55 on zen.lab.test (SBL: ")
    assert listed.evidence.endswith(" - Listed by lab SBL")
    assert "request removal" in listed.remediation
    assert office.verdict is Verdict.warn


# ---- verdict ordering and exit codes ----------------------------------------------------------


async def test_verdicts_order_critical_unknown_warn_ok_and_exit_codes_follow(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    # Given five sites: fine; throttled (warn); a lookup that times out (unknown);
    # throttled and a lookup that times out; banned and a lookup that times out
    for ip in ("127.0.0.62", "127.0.0.63", "127.0.0.64"):
        lab.fault(f"{reverse_name(ip)}.{ZONE}", "timeout")
    m365.tenant.throttled_ips.update({"127.0.0.61", "127.0.0.63"})
    m365.tenant.banned_ips.add("127.0.0.64")
    names = ["fine", "throttled", "blind", "throttled-blind", "banned-blind"]
    text = header(lab, dns_timeout_s=0.3).add(
        *(
            site(name, f"127.0.0.{60 + i}", direct_send(m365.mx.port, m365.ca_file))
            for i, name in enumerate(names)
        )
    )
    result = await run_sweep(plan_sweep(load_inventory(str(write_inventory(text)))))
    verdicts = {s.site: s.verdict for s in result.sites}
    assert verdicts == {
        "fine": Verdict.ok,
        "throttled": Verdict.warn,
        "blind": Verdict.unknown,
        "throttled-blind": Verdict.unknown,  # "could not tell" outranks a warning
        "banned-blind": Verdict.critical,  # a critical finding is the thing to act on
    }
    # flags are listed worst first
    for site_result in result.sites:
        ranks = [
            {"critical": 0, "unknown": 1, "warn": 2, "info": 3}[f.severity.value]
            for f in site_result.flags
        ]
        assert ranks == sorted(ranks)

    def code_of(*sites: str, complete: bool = True) -> int:
        subset = result.model_copy(
            update={
                "sites": [s for s in result.sites if s.site in sites],
                "sweep": result.sweep.model_copy(update={"complete": complete}),
            }
        )
        return exit_code(subset)

    assert code_of("fine") == 0
    assert code_of("fine", "throttled") == 1
    assert code_of("fine", "throttled", "blind") == 3
    assert code_of("fine", "throttled", "blind", "banned-blind") == 2
    # an incomplete sweep is at least unknown, unless something is critical
    assert code_of("fine", complete=False) == 3
    assert code_of("fine", "throttled", complete=False) == 3
    assert code_of("fine", "banned-blind", complete=False) == 2


async def test_a_sweep_stopped_before_any_site_exits_unknown(
    lab: LabDns, m365: M365Lab, write_inventory: WriteInventory
) -> None:
    text = header(lab).add(site("fine", "127.0.0.65", direct_send(m365.mx.port, m365.ca_file)))
    control = Control()
    control.stop.set()
    control.reason = "stopped by the operator"
    result = await run_sweep(
        plan_sweep(load_inventory(str(write_inventory(text)))), SweepOptions(control=control)
    )
    assert result.sites == []
    assert not result.sweep.complete
    assert result.sweep.sites_missing == ["fine"]
    assert exit_code(result) == 3
    assert m365.mx.stats.connections == 0


def test_worst_and_the_empty_sweep() -> None:
    assert worst([]) is Verdict.ok
    assert worst([Verdict.warn, Verdict.unknown]) is Verdict.unknown
    assert worst([Verdict.unknown, Verdict.critical, Verdict.ok]) is Verdict.critical
    empty = SweepResult.model_validate(
        {
            "sweep": {
                "id": "x",
                "started_at": "2026-11-26T06:00:00Z",
                "complete": True,
                "tool_version": "0",
                "sites_planned": 0,
            },
            "sites": [],
        }
    )
    assert exit_code(empty) == 0


def test_bad_arguments_and_a_bad_inventory_exit_3(tmp_path: Path) -> None:
    from .conftest import run_fleet

    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: []\n", encoding="utf-8")
    assert run_fleet("sweep", "-i", str(bad), "--no-store").code == 3
    assert run_fleet("sweep", "-i", str(bad), "--format", "xml").code == 3
