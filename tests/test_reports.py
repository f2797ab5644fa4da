"""Reports for people and machines (issue 6): the table (site rows, --detail device rows),
the CSV (parsed back with the csv module), the JSON (validated against its model, with the
keys the issue promises), formula neutralisation and control-character stripping, from a
fixed sweep (golden files) and from real conversations with a hostile server."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Mailbox
from fleet.matrix import assess
from fleet.report.csv_report import DEVICE_COLUMNS, SITE_COLUMNS, render_csv
from fleet.report.json_report import read_json, render_json
from fleet.report.sanitize import for_spreadsheet, for_terminal, strip_controls
from fleet.report.table import render_table, render_transcript
from fleet.results import (
    BlocklistResult,
    BlocklistStatus,
    Category,
    Change,
    ChangeKind,
    Conversation,
    DeviceObservation,
    DirectSendCheck,
    Egress,
    EgressTransport,
    ListingSeverity,
    Mode,
    MxCheck,
    MxResult,
    Reply,
    Security,
    Severity,
    SiteObservation,
    SpfCheck,
    SpfResult,
    Stage,
    StageResult,
    StageStatus,
    SweepInfo,
    SweepResult,
    TlsInfo,
)

from .conftest import M365Lab, fleet_env, publish_spf, run_fleet_async
from .test_matrix import PASSWORD, PASSWORD_ENV, ZONE, direct_send, header, site, submission

GOLDEN = Path(__file__).parent / "golden"
UPDATE_GOLDEN = os.environ.get("FLEET_UPDATE_GOLDEN") == "1"
WriteInventory = Callable[..., Path]

# ---- a fixed sweep, built through the matrix (times and "today" fixed) ----------------------

T0 = datetime(2026, 11, 26, 6, 0, 0, tzinfo=UTC)
TODAY = date(2026, 11, 26)
MX = "contoso-com.mail.protection.outlook.com"


def _stages(*ends: tuple[Stage, StageStatus, Reply | None]) -> list[StageResult]:
    return [
        StageResult(stage=stage, status=status, reply=reply, elapsed_s=0.01)
        for stage, status, reply in ends
    ]


def _conversation(
    cid: str,
    host: str,
    port: int,
    mode: Mode,
    category: Category,
    finding: str,
    *,
    failed: tuple[Stage, Reply] | None = None,
    remediation: str | None = None,
    rule: str | None = None,
    observed_ip: str | None = None,
) -> Conversation:
    ok = StageStatus.ok
    stages = _stages(
        (Stage.connect, ok, None),
        (Stage.banner, ok, Reply(code=220, text=f"{host} Microsoft ESMTP MAIL Service ready")),
    )
    if failed is not None:
        stages.append(StageResult(stage=failed[0], status=StageStatus.failed, reply=failed[1]))
    return Conversation(
        id=cid,
        host=host,
        port=port,
        security=Security.starttls,
        mode=mode,
        started_at=T0,
        elapsed_s=0.4,
        stages=stages,
        tls=TlsInfo(
            version="TLSv1.3",
            cipher="TLS_AES_256_GCM_SHA384",
            subject=f"CN={host}",
            issuer="CN=DigiCert Cloud Services CA-1",
            not_after=T0 + timedelta(days=200),
            verified=True,
        ),
        observed_ip=observed_ip,
        category=category,
        rule=rule,
        failed_stage=failed[0] if failed else None,
        reply=failed[1] if failed else None,
        finding=finding,
        remediation=remediation,
    )


def _device(
    ident: str,
    conversation: Conversation,
    *,
    model: str,
    location: str,
    password: bool = False,
    oauth: bool = False,
) -> DeviceObservation:
    return DeviceObservation(
        device=ident,
        model=model,
        location=location,
        mode=conversation.mode,
        authenticated=password or oauth,
        uses_password=password,
        tls_max=None,
        conversation=conversation,
    )


def _blocklist(ip: str, status: BlocklistStatus, **extra: object) -> BlocklistResult:
    return BlocklistResult.model_validate(
        {"ip": ip, "zone": "zen.spamhaus.org", "name": "Spamhaus ZEN", "status": status, **extra}
    )


def _site(
    ident: str,
    client: str,
    ip: str,
    devices: list[DeviceObservation],
    blocklists: list[BlocklistResult],
    checks: list[DirectSendCheck] | None = None,
) -> SiteObservation:
    return SiteObservation(
        site=ident,
        client=client,
        name=None,
        tags=[],
        egress=Egress(
            transport=EgressTransport.bind,
            bind=ip,
            declared_ip=ip,
            observed_ips=[ip],
            egress_ip=ip,
        ),
        devices=devices,
        blocklists=blocklists,
        checks=checks or [],
        started_at=T0,
        finished_at=T0 + timedelta(seconds=2),
        zones=1,
    )


def fixed_sweep() -> SweepResult:
    """Five sites that between them show every kind of row: critical, warn, ok, unknown."""
    banned = Reply(
        code=550,
        enhanced="5.7.606",
        text="5.7.606 Access denied, banned sending IP [203.0.113.20]. To request removal "
        "from this list please visit https://sender.office.com/ and follow the directions.",
    )
    hq_conv = _conversation(
        "contoso-hq#1",
        MX,
        25,
        Mode.direct_send,
        Category.ip_reputation,
        "Microsoft 365 refuses mail from 203.0.113.20: the IP is on Microsoft's own blocklist",
        failed=(Stage.rcpt, banned),
        rule="m365.banned_sending_ip",
        observed_ip="203.0.113.20",
    )
    hq = _site(
        "contoso-hq",
        "Contoso Dental",
        "203.0.113.20",
        [
            _device("mfp-frontdesk", hq_conv, model="Ricoh IM C3000", location="Front desk"),
            _device("mfp-backoffice", hq_conv, model="Ricoh IM C3000", location="Back office"),
        ],
        [
            _blocklist(
                "203.0.113.20",
                BlocklistStatus.listed,
                codes=["127.0.0.4"],
                lists=["XBL"],
                meaning="exploited or infected host",
                severity=ListingSeverity.abuse,
                delist="https://check.spamhaus.org/",
            )
        ],
        [
            MxCheck(
                device=d,
                domain="contoso.com",
                result=MxResult.match,
                detail=f"{MX} is an MX of contoso.com",
                host=MX,
                mx_hosts=[MX],
            )
            for d in ("mfp-frontdesk", "mfp-backoffice")
        ],
    )
    tailspin_mx = "tailspin-com.mail.protection.outlook.com"
    tailspin_conv = _conversation(
        "tailspin#1",
        "old-mx.tailspin.com",
        25,
        Mode.direct_send,
        Category.ok,
        "the server accepted the sender and recipient",
        observed_ip="198.51.100.24",
    )
    record = "v=spf1 include:spf.protection.outlook.com ~all"
    tailspin = _site(
        "tailspin",
        "Tailspin Toys",
        "198.51.100.24",
        [_device("brother-1", tailspin_conv, model="Brother MFC-L8900CDW", location="Warehouse")],
        [_blocklist("198.51.100.24", BlocklistStatus.clean)],
        [
            MxCheck(
                device="brother-1",
                domain="tailspin.com",
                result=MxResult.mismatch,
                detail=f"the copier sends to old-mx.tailspin.com, but the MX of tailspin.com "
                f"is {tailspin_mx}",
                host="old-mx.tailspin.com",
                mx_hosts=[tailspin_mx],
            ),
            SpfCheck(
                device="brother-1",
                domain="tailspin.com",
                ip="198.51.100.24",
                result=SpfResult.softfail,
                detail="198.51.100.24 is not authorised: it falls through to ~all",
                record=record,
                mechanism="~all",
                lookups=1,
                add="ip4:198.51.100.24",
            ),
        ],
    )
    disabled = Reply(
        code=535,
        enhanced="5.7.139",
        text="5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for "
        "the Tenant.",
    )
    northwind_conv = _conversation(
        "northwind#1",
        "smtp.office365.com",
        587,
        Mode.submission,
        Category.auth_disabled,
        "SMTP AUTH is turned off for this Microsoft 365 tenant or mailbox",
        failed=(Stage.auth, disabled),
        remediation="SMTP AUTH is disabled (5.7.139): enable it for scanner@northwind.com "
        "only, or move off passwords.",
        rule="m365.smtp_auth_disabled_tenant",
    )
    northwind = _site(
        "northwind",
        "Northwind Traders",
        "192.0.2.22",
        [
            _device(
                "konica-2f",
                northwind_conv,
                model="Konica Minolta bizhub C300i",
                location="2nd floor",
                password=True,
            )
        ],
        [_blocklist("192.0.2.22", BlocklistStatus.clean)],
    )
    fabrikam_conv = _conversation(
        "fabrikam#1",
        "smtp.office365.com",
        587,
        Mode.submission,
        Category.ok,
        "the server accepted the sender and recipient",
    )
    fabrikam = _site(
        "fabrikam",
        "Fabrikam Health",
        "192.0.2.23",
        [_device("sharp-lab", fabrikam_conv, model="Sharp MX-3071", location="Lab", oauth=True)],
        [_blocklist("192.0.2.23", BlocklistStatus.clean)],
    )
    woodgrove_conv = _conversation(
        "woodgrove#1",
        "woodgrove-com.mail.protection.outlook.com",
        25,
        Mode.direct_send,
        Category.ok,
        "the server accepted the sender and recipient",
    )
    woodgrove = _site(
        "woodgrove",
        "Woodgrove Bank",
        "192.0.2.25",
        [_device("hp-teller", woodgrove_conv, model="HP LaserJet M480", location="Teller desk")],
        [
            _blocklist(
                "192.0.2.25",
                BlocklistStatus.unknown,
                detail="the resolver did not answer in time",
            )
        ],
        [
            SpfCheck(
                device="hp-teller",
                domain="woodgrove.com",
                ip="192.0.2.25",
                result=SpfResult.temperror,
                detail="TXT lookup of woodgrove.com: the resolver did not answer in time",
                lookups=0,
                add="ip4:192.0.2.25",
            )
        ],
    )
    sites = [assess(s, TODAY) for s in (hq, tailspin, northwind, fabrikam, woodgrove)]
    info = SweepInfo(
        id="20261126T060000Z-abc123",
        started_at=T0,
        finished_at=T0 + timedelta(seconds=3),
        complete=True,
        tool_version="0.1.0",
        sites_planned=len(sites),
        origin="local",
    )
    return SweepResult(sweep=info, sites=sites)


def golden(name: str, text: str) -> None:
    """Compare with tests/golden/<name>; FLEET_UPDATE_GOLDEN=1 rewrites it instead."""
    path = GOLDEN / name
    if UPDATE_GOLDEN:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"{path} is missing: run with FLEET_UPDATE_GOLDEN=1 to create it"
    assert text == path.read_bytes().decode("utf-8"), f"{name} differs from its golden file"


# ---- the table -----------------------------------------------------------------------------


def test_the_table_has_one_row_per_site_then_what_to_do() -> None:
    result = fixed_sweep()
    text = render_table(result)
    golden("table.txt", text)
    lines = text.splitlines()
    assert lines[0] == (
        "fleet sweep 20261126T060000Z-abc123 at 2026-11-26 06:00 UTC: 5 sites: "
        "2 critical, 1 unknown, 1 warn, 1 ok"
    )
    header_line = lines[2]
    for column in ("client", "site", "egress IP", "blocklists", "mx / spf", "devices", "verdict"):
        assert column in header_line
    rows = {line.split()[2]: line for line in lines[4:9]}  # client names are two words
    assert set(rows) == {"contoso-hq", "tailspin", "northwind", "fabrikam", "woodgrove"}
    assert rows["contoso-hq"].split()[-2:] == ["critical", "DIRECT_SEND_DIRTY_IP"]
    assert "listed: XBL (zen.spamhaus.org)" in rows["contoso-hq"]
    assert "direct_send 2 (2 failing)" in rows["contoso-hq"]
    assert rows["tailspin"].split()[-2:] == ["warn", "MX_MISMATCH"]
    assert "mx mismatch; spf softfail" in rows["tailspin"]
    assert rows["northwind"].split()[-2:] == ["critical", "AUTH_DISABLED"]
    assert rows["fabrikam"].split()[-1] == "ok"
    assert rows["woodgrove"].split()[-2:] == ["unknown", "BLOCKLIST_UNKNOWN"]
    # then, per site with a problem, each flag with its evidence and what to do
    findings = text.split("\n\n", 2)[2]
    assert "contoso-hq (Contoso Dental): critical\n  DIRECT_SEND_DIRTY_IP [critical]" in findings
    assert "fabrikam" not in findings
    assert findings.count("    do: ") == sum(
        len([f for f in s.flags if f.severity.value != "info"]) for s in result.sites
    )
    assert "\x1b" not in text


def test_the_detail_table_has_one_row_per_device_with_its_failed_stage_and_reply() -> None:
    text = render_table(fixed_sweep(), detail=True)
    golden("table-detail.txt", text)
    lines = text.splitlines()
    assert lines[2].split() == [
        "client",
        "site",
        "device",
        "mode",
        "verdict",
        "category",
        "failed",
        "at",
        "reply",
        "mx",
        "/",
        "spf",
    ]
    device_rows = lines[4:11]
    assert len(device_rows) == 7
    frontdesk = next(line for line in device_rows if "mfp-frontdesk" in line)
    assert "ip_reputation" in frontdesk
    assert "rcpt" in frontdesk
    assert "550 5.7.606 Access denied" in frontdesk
    konica = next(line for line in device_rows if "konica-2f" in line)
    assert " auth " in konica
    assert "535 5.7.139" in konica


def test_colour_only_when_asked() -> None:
    result = fixed_sweep()
    plain = render_table(result, colour=False)
    coloured = render_table(result, colour=True)
    assert "\x1b" not in plain
    assert "\x1b[1;31mcritical\x1b[0m" in coloured
    assert "\x1b[1;35munknown\x1b[0m" in coloured
    assert "\x1b[32mok\x1b[0m" in coloured
    # the colour codes are the only difference
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured).split("\n\n")[1:] == plain.split("\n\n")[1:]


# ---- the CSV -------------------------------------------------------------------------------


def parse_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_the_csv_has_one_row_per_device_and_reads_back() -> None:
    result = fixed_sweep()
    text = render_csv(result)
    golden("devices.csv", text)
    reader = csv.reader(io.StringIO(text, newline=""))
    assert next(reader) == DEVICE_COLUMNS
    rows = parse_csv(text)
    assert [(r["site"], r["device"]) for r in rows] == [
        (s.site, d.device) for s in result.sites for d in s.devices
    ]
    for row in rows:
        assert datetime.fromisoformat(row["sweep_time"]) == T0
    frontdesk = rows[0]
    assert frontdesk["client"] == "Contoso Dental"
    assert frontdesk["model"] == "Ricoh IM C3000"
    assert frontdesk["location"] == "Front desk"
    assert frontdesk["mode"] == "direct_send"
    assert frontdesk["verdict"] == "critical"
    assert frontdesk["reply_code"] == "550"
    assert frontdesk["reply_enhanced"] == "5.7.606"
    assert frontdesk["reply_text"].startswith("5.7.606 Access denied, banned sending IP")
    assert frontdesk["failed_stage"] == "rcpt"
    assert frontdesk["egress_ip"] == "203.0.113.20"
    assert frontdesk["blocklists"] == "listed: XBL (zen.spamhaus.org)"
    assert frontdesk["flags"] == "DIRECT_SEND_DIRTY_IP LISTED"
    assert "OAuth" in frontdesk["recommended_action"]
    assert frontdesk["mx_check"] == "match"
    assert frontdesk["spf_check"] == "not checked"
    brother = next(r for r in rows if r["device"] == "brother-1")
    assert brother["verdict"] == "warn"
    assert brother["finding"].startswith("MX_MISMATCH: the copier sends to old-mx.tailspin.com")
    assert brother["flags"] == "MX_MISMATCH SPF_NOT_AUTHORISED"
    assert brother["mx_check"] == "mismatch"
    assert brother["spf_check"] == "softfail (198.51.100.24)"
    sharp = next(r for r in rows if r["device"] == "sharp-lab")
    assert sharp["verdict"] == "ok"
    assert sharp["recommended_action"] == ""
    assert sharp["reply_code"] == ""


def test_the_per_site_csv_has_one_row_per_site() -> None:
    result = fixed_sweep()
    text = render_csv(result, per_site=True)
    golden("sites.csv", text)
    assert next(csv.reader(io.StringIO(text, newline=""))) == SITE_COLUMNS
    rows = parse_csv(text)
    assert [r["site"] for r in rows] == [s.site for s in result.sites]
    by_site = {r["site"]: r for r in rows}
    assert by_site["contoso-hq"]["top_flag"] == "DIRECT_SEND_DIRTY_IP"
    assert by_site["contoso-hq"]["devices"] == "2"
    assert by_site["contoso-hq"]["devices_failing"] == "2"
    assert by_site["fabrikam"]["finding"] == "no problem found"
    assert by_site["woodgrove"]["verdict"] == "unknown"
    assert by_site["woodgrove"]["blocklists"] == "unknown (1)"
    assert by_site["woodgrove"]["spf_check"] == "temperror (192.0.2.25)"
    assert by_site["northwind"]["mx_check"] == "not checked"


# ---- the JSON ------------------------------------------------------------------------------


def assert_json_contract(document: dict[str, object]) -> None:
    """The stable keys issue 6 promises to machines."""
    sweep = document["sweep"]
    assert isinstance(sweep, dict)
    assert {"id", "started_at", "finished_at", "complete"} <= sweep.keys()
    sites = document["sites"]
    assert isinstance(sites, list)
    assert sites
    for site_doc in sites:
        assert {"site", "client", "verdict", "flags", "egress_ip", "blocklists", "devices"} <= (
            site_doc.keys()
        )
        for flag_doc in site_doc["flags"]:
            assert set(flag_doc) == {"code", "severity", "devices", "evidence", "remediation"}
        for listing in site_doc["blocklists"]:
            assert {"ip", "zone", "status", "codes", "meaning"} <= listing.keys()
        for device in site_doc["devices"]:
            assert {
                "device",
                "mode",
                "verdict",
                "category",
                "failed_stage",
                "reply",
                "tls",
                "transcript",
            } <= device.keys()
            if device["reply"] is not None:
                assert set(device["reply"]) == {"code", "enhanced", "text"}
        for check in site_doc["checks"]:
            assert {"device", "kind", "domain", "ip", "result", "detail", "record"} <= (
                check.keys()
            )


def test_the_json_is_the_typed_result_and_keeps_its_contract() -> None:
    result = fixed_sweep()
    text = render_json(result)
    assert read_json(text) == result
    assert SweepResult.model_validate_json(text) == result
    document = json.loads(text)
    assert_json_contract(document)
    hq = document["sites"][0]
    assert hq["verdict"] == "critical"
    assert hq["flags"][0]["code"] == "DIRECT_SEND_DIRTY_IP"
    assert hq["flags"][0]["severity"] == "critical"
    assert hq["blocklists"][0]["status"] == "listed"
    assert hq["blocklists"][0]["codes"] == ["127.0.0.4"]
    device = hq["devices"][0]
    assert device["failed_stage"] == "rcpt"
    assert device["reply"]["enhanced"] == "5.7.606"
    assert [s["stage"] for s in device["transcript"]] == ["connect", "banner", "rcpt"]
    assert device["tls"]["version"] == "TLSv1.3"
    tailspin = document["sites"][1]
    assert {f["code"] for f in tailspin["flags"]} == {"MX_MISMATCH", "SPF_NOT_AUTHORISED"}
    assert [c["kind"] for c in tailspin["checks"]] == ["mx", "spf"]


# ---- sanitising ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "safe"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd", "' =cmd"),
        ("\r=cmd", "'\n=cmd"),
        ("  =cmd", "'  =cmd"),
        ("\x1b[31m=red", "'=red"),
        ("5.7.1 =HYPERLINK(1)", "5.7.1 =HYPERLINK(1)"),
        ("plain", "plain"),
        (550, "550"),
        (None, ""),
    ],
)
def test_spreadsheet_cells_never_start_a_formula(cell: object, safe: str) -> None:
    assert for_spreadsheet(cell) == safe


def test_terminal_text_loses_every_escape_and_control() -> None:
    hostile = (
        "ok\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ "
        "\x9b2J \x1bPdcs\x1b\\ \u202eevil\u202c \x00\x08\x7f end"
    )
    clean = for_terminal(hostile)
    assert clean == "okred link evil end"
    assert strip_controls("a\r\nb\tc", keep_newlines=True) == "a\nb c"


def test_a_result_from_elsewhere_reaches_the_terminal_without_its_escapes() -> None:
    # An agent's file (or a damaged store) carries escapes in fields fleet normally fills
    # itself: identifiers, the egress IP, flag codes, the reason a sweep stopped.
    escape = "\x1b]0;pwned\x07\x1b[2J"
    result = fixed_sweep()
    site = result.sites[0]
    device = site.devices[0].model_copy(update={"device": f"mfp{escape}"})
    had = site.conversation_of(device).model_copy(update={"host": f"mx{escape}.test"})
    flag = site.flags[0].model_copy(update={"code": f"IP_REPUTATION{escape}"})
    egress = site.egress.model_copy(update={"egress_ip": f"203.0.113.20{escape}"})
    site = site.model_copy(
        update={
            "egress": egress,
            "devices": [device],
            "conversations": {device.conversation: had},
            "flags": [flag],
        }
    )
    sweep = result.sweep.model_copy(update={"complete": False, "interrupted": f"stop{escape}"})
    hostile = result.model_copy(update={"sweep": sweep, "sites": [site]})
    for text in (
        render_table(hostile),
        render_table(hostile, detail=True),
        render_transcript(hostile),
    ):
        assert "\x1b" not in text
        assert "\x07" not in text
    table = render_table(hostile)
    assert "203.0.113.20 " in table
    assert "IP_REPUTATION [critical] mfp" in table
    assert "INCOMPLETE (stop;" in table


def test_a_sweep_id_with_anything_but_plain_characters_is_refused() -> None:
    document = fixed_sweep().sweep.model_dump(mode="json")
    SweepInfo.model_validate(document)
    for bad in ("x\x1b[2J", "../../etc", "a b", "", "x\n"):
        with pytest.raises(ValueError, match="id"):
            SweepInfo.model_validate({**document, "id": bad})


class HostileHandler:
    """An MX that answers RCPT TO with terminal escapes and a spreadsheet formula."""

    replies: ClassVar[dict[str, str]] = {
        "escape": '550 5.7.1 =HYPERLINK("http://x")\x1b[31mred\x1b]0;title\x07',
        "formula": '550 =HYPERLINK("http://x")\x1b[31mred\x1b]0;title\x07',
        "minus": "550 -2+3 \x1b[2J cleared",
        "at": "550 @SUM(A1) \x07",
    }

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        return self.replies[address.partition("@")[0]]


async def test_a_hostile_server_reaches_no_terminal_and_no_spreadsheet_formula(
    lab_dns: LabDns, certs: LabCertificates, write_inventory: WriteInventory
) -> None:
    # Given a server whose banner and RCPT TO replies carry escape sequences and formulas
    publish_spf(lab_dns)
    server = LabSmtpServer(
        HostileHandler(),
        hostname="evil.test",
        ident="ESMTP \x1b[2J\x1b]0;pwned\x07 ready",
        tls_context=certs.server_context("localhost", "127.0.0.1"),
    )
    await server.start()
    try:
        devices = [
            direct_send(server.port, str(certs.ca_file), name, to=f"{name}@contoso.test")
            for name in HostileHandler.replies
        ]
        text = header(lab_dns).add(site("evil", "127.0.0.71", *devices))
        from fleet.inventory import load_inventory
        from fleet.pipeline import run_sweep
        from fleet.plan import plan_sweep

        result = await run_sweep(plan_sweep(load_inventory(str(write_inventory(text)))))
    finally:
        await server.stop()
    [evil] = result.sites
    # the raw text is kept in the result (and escaped in JSON)...
    by_device = {d.device: d for d in evil.devices}
    reply = by_device["escape"].reply
    assert reply is not None
    assert "\x1b[31m" in reply.text
    assert read_json(render_json(result)) == result
    assert "\x1b" not in render_json(result)

    # ...but no terminal output carries an escape or control character
    for output in (
        render_table(result),
        render_table(result, detail=True),
        render_transcript(result),
    ):
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", output), repr(output)
        assert "title" not in output
        assert "pwned" not in output
    detail = render_table(result, detail=True)
    assert '550 5.7.1 =HYPERLINK("http://x")red' in detail
    assert "<- 220 evil.test ESMTP ready\n" in render_transcript(result)

    # ...and in the CSV no cell starts a formula, and no control character remains
    rows = parse_csv(render_csv(result))
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (value, row)
            assert not re.search(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f]", value), value
    cells = {r["device"]: r["reply_text"] for r in rows}
    assert cells["escape"] == '5.7.1 =HYPERLINK("http://x")red'
    assert cells["formula"] == '\'=HYPERLINK("http://x")red'
    assert cells["minus"] == "'-2+3  cleared"
    assert cells["at"] == "'@SUM(A1) "


# ---- the command line: formats as files and streams --------------------------------------------


async def test_the_command_line_writes_each_format(
    lab_dns: LabDns,
    m365: M365Lab,
    write_inventory: WriteInventory,
    tmp_path: Path,
) -> None:
    # Given a site with a Direct Send copier and a password copier (whose secret must
    # appear nowhere), and another site on the blocklist
    lab_dns.blocklist(ZONE, {"127.0.0.73": ("127.0.0.4",)})
    publish_spf(lab_dns)
    m365.tenant.mailboxes["scanner@contoso.test"] = Mailbox(password=PASSWORD)
    text = header(lab_dns).add(
        site(
            "office",
            "127.0.0.72",
            direct_send(m365.mx.port, m365.ca_file, "mfp"),
            submission(m365.submission.port, m365.ca_file, "konica"),
        ),
        site("listed", "127.0.0.73", direct_send(m365.mx.port, m365.ca_file, "mfp")),
    )
    inventory = str(write_inventory(text))
    env = fleet_env(**{PASSWORD_ENV: PASSWORD})

    async def fleet(*args: str) -> tuple[int, str]:
        run = await run_fleet_async(
            "sweep", "-i", inventory, "--no-store", "-q", *args, env=env, cwd=tmp_path
        )
        assert PASSWORD not in run.stdout + run.stderr
        return run.code, run.stdout

    # CSV to a file: UTF-8 with a BOM, a header row, ISO times, one row per device
    code, _ = await fleet("--format", "csv", "--output", "devices.csv")
    assert code == 2
    raw = (tmp_path / "devices.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert PASSWORD.encode() not in raw
    rows = parse_csv(raw.decode("utf-8-sig"))
    assert [(r["site"], r["device"]) for r in rows] == [
        ("office", "mfp"),
        ("office", "konica"),
        ("listed", "mfp"),
    ]
    times = {datetime.fromisoformat(r["sweep_time"]) for r in rows}
    assert len(times) == 1
    assert next(iter(times)).tzinfo is not None
    assert rows[1]["flags"] == "BASIC_AUTH_RETIRING"
    assert rows[2]["flags"] == "DIRECT_SEND_DIRTY_IP LISTED"

    # --per-site: one row per site
    code, _ = await fleet("--format", "csv", "--per-site", "--output", "sites.csv")
    raw = (tmp_path / "sites.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    sites = parse_csv(raw.decode("utf-8-sig"))
    assert [(r["site"], r["verdict"]) for r in sites] == [
        ("office", "warn"),
        ("listed", "critical"),
    ]

    # JSON on stdout: the typed result, with the promised keys and redacted transcripts
    code, out = await fleet("--format", "json")
    assert code == 2
    result = SweepResult.model_validate_json(out)
    assert result.sweep.complete
    assert_json_contract(json.loads(out))
    konica = result.sites[0].devices[1]
    transcript = result.sites[0].conversation_of(konica).transcript
    auth = next(s for s in transcript if s.stage is Stage.auth)
    assert auth.command is not None
    assert "****" in auth.command

    # The table on stdout (not a terminal: no colour), and --detail
    code, out = await fleet()
    assert code == 2
    assert "\x1b" not in out
    assert len([line for line in out.splitlines() if line.startswith("Contoso ")]) == 2
    code, out = await fleet("--detail")
    assert len([line for line in out.splitlines() if line.startswith("Contoso ")]) == 3


@pytest.mark.parametrize("shape", ["whole", "no sites", "with changes"])
def test_one_json_writer_gives_pydantics_own_document_byte_for_byte(shape: str) -> None:
    # Given a sweep (and its edge shapes: no site at all, changes since a previous sweep)
    result = fixed_sweep()
    if shape == "no sites":
        result = result.model_copy(update={"sites": []})
    if shape == "with changes":
        change = Change(
            site="contoso-hq",
            client="Contoso",
            kind=ChangeKind.new_flag,
            severity=Severity.critical,
            summary="new DIRECT_SEND_DIRTY_IP (critical)",
            after="DIRECT_SEND_DIRTY_IP",
        )
        result = result.model_copy(update={"changes": [change], "previous_sweep": "s-1"})
    # When it is rendered (through the streaming writer the store's views use too)
    text = render_json(result)
    # Then it is exactly the typed model's own JSON
    assert text == result.model_dump_json(indent=2) + "\n"
