"""The hostile-server corpus: for every way a broken or malicious SMTP server misbehaves
(tests/hostile.py), a sweep ends that device in a classified result, in time, while the rest
of the sweep carries on.

Each behaviour is one site of a real sweep (inventory -> plan -> run_sweep), next to a
healthy Microsoft 365-like site that must come out `ok`. The time each takes is measured
against a bound computed from the timeouts, never waited for with a sleep.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleet.classify import Fault, fault_remedy
from fleet.egress import InStepProtocol, OutOfStep
from fleet.inventory import load_inventory
from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.pipeline import run_sweep
from fleet.plan import plan_sweep
from fleet.report import render
from fleet.report.table import render_transcript
from fleet.results import Category, SiteResult, Stage, StageStatus, SweepResult, Verdict

from .conftest import M365Lab
from .hostile import (
    BEHAVIOURS,
    ECHOES,
    GOOD_ENDINGS,
    PASSWORD_ENV,
    QUIET_LEAKS,
    HostileServer,
    healthy_site,
    hostile_device,
    lab_inventory,
    publish_contoso,
)
from .inventory_builder import InventoryBuilder

CONNECT_S = 0.5
COMMAND_S = 0.5
SITE_S = 3.0
# What a loaded machine may add (TLS handshakes, DNS, scheduling; about 0.02 s measured
# here). Less than command_s on purpose: a second timeout waited out (a QUIT to a silent
# server, a retry) would break the bound.
MARGIN_S = 0.4


def bound_s(stalls: int, site_s: float = SITE_S) -> float:
    """How long a hostile site may take: a server that goes quiet costs one stage timeout
    (command_s: the probe stops at the first broken stage and hangs up without a QUIT that
    would wait again); one that breaks the protocol costs nothing but the margin. Never more
    than the site's budget (site_s), however slowly the server dribbles its replies."""
    return min(site_s, stalls * COMMAND_S) + MARGIN_S


def header(dns: LabDns) -> InventoryBuilder:
    return lab_inventory(dns, connect_s=CONNECT_S, command_s=COMMAND_S, site_s=SITE_S)


def hostile_site(
    inventory: InventoryBuilder,
    behaviour: str,
    port: int,
    ca_file: str,
    site_id: str = "hostile",
    bind: str | None = None,
    site_s: float | None = None,
) -> InventoryBuilder:
    budget = {"timeouts": {"site_s": site_s}} if site_s else {}
    device = hostile_device(BEHAVIOURS[behaviour], port, ca_file)
    return inventory.site(site_id, device, client="Hostile", bind=bind, **budget)


@dataclass(frozen=True)
class Case:
    behaviour: str
    category: Category
    stage: Stage
    stalls: int = 0  # stage timeouts the server makes the probe wait out
    finding: str = ""  # words in the finding
    remedy: str = ""  # words in the remediation
    site_s: float = SITE_S  # the site's budget

    @property
    def limit_s(self) -> float:
        return bound_s(self.stalls, self.site_s)

    @property
    def least_s(self) -> float:
        """A stall costs the configured timeout, no less: proof that it is what ended it."""
        return min(self.site_s, self.stalls * COMMAND_S) * 0.95


CASES = [
    # Timeouts after the server accepted the connection: the port is open, so the remedy
    # says where the server stopped answering, not to check the firewall.
    Case(
        "silent",
        Category.timeout,
        Stage.banner,
        1,
        "no complete greeting",
        "accepted the connection but did not answer in time with a greeting",
    ),
    Case(
        "greets_then_silent",
        Category.timeout,
        Stage.ehlo,
        1,
        "no complete reply to ehlo",
        "accepted the connection but did not answer in time at ehlo",
    ),
    Case(
        "tls_then_silent",
        Category.timeout,
        Stage.banner,
        1,
        "no complete greeting",
        "accepted the connection but did not answer in time at banner",
    ),
    Case("endless_banner", Category.timeout, Stage.banner, 1, "no complete greeting"),
    Case("ten_megabyte_line", Category.protocol_error, Stage.ehlo, 0, "too long", "broke"),
    Case("non_utf8", Category.recipient_rejected, Stage.rcpt, 0, "does not know the recipient"),
    # ... and its QUIT, which it never answers, waited out: one stall
    Case("refuses_greeting_then_deaf", Category.unrecognised_refusal, Stage.banner, 1, "554"),
    Case("busy_at_banner", Category.temporary_failure, Stage.banner, 0, "421", "later"),
    # One reply whose lines say 250, 251 and 550: no code to trust.
    Case("mismatched_multiline", Category.protocol_error, Stage.ehlo, 0, "codes: 250, 251, 550"),
    # A reply too many, in the same packet as a reply or in one of its own: the conversation
    # is out of step, and the 550 to RCPT behind it is never read as (or hidden by) a 250.
    Case("ehlo_lines_without_hyphens", Category.protocol_error, Stage.ehlo, 0, "out of step"),
    Case("extra_reply_after_banner", Category.protocol_error, Stage.banner, 0, "out of step"),
    Case("extra_reply_after_mail", Category.protocol_error, Stage.mail, 0, "out of step"),
    # RFC 5321 3.8: an unasked 421 is the answer to the next command, not a reply too many
    Case("closing_421_after_mail", Category.temporary_failure, Stage.rcpt, 0, ""),
    Case("closing_421_alone_after_mail", Category.temporary_failure, Stage.rcpt, 0, ""),
    Case("implicit_tls_extra_reply", Category.protocol_error, Stage.banner, 0, "out of step"),
    Case("mixed_codes_in_rcpt", Category.protocol_error, Stage.rcpt, 0, "codes: 550, 250"),
    Case("replies_one_behind", Category.protocol_error, Stage.quit, 0, "answered RSET with '550"),
    Case("unterminated_multiline", Category.timeout, Stage.ehlo, 1, "no complete reply to ehlo"),
    Case("code_out_of_range", Category.protocol_error, Stage.ehlo, 0, "999"),
    Case("code_not_a_number", Category.protocol_error, Stage.banner, 0, "malformed", "broke"),
    Case("starttls_454", Category.tls_failure, Stage.starttls, 0, "could not start TLS"),
    Case(
        "starttls_then_plaintext",
        Category.tls_failure,
        Stage.tls,
        0,
        "not answer with TLS",
        "firewall",
    ),
    Case(
        "starttls_then_garbage",
        Category.tls_failure,
        Stage.tls,
        0,
        "not answer with TLS",
        "firewall",
    ),
    # The injected plain text is a reply too many, never read as a reply: no handshake.
    Case("starttls_pipelined_plaintext", Category.protocol_error, Stage.starttls, 0, "out of step"),
    Case("tls_reset_mid_handshake", Category.tls_failure, Stage.tls, 0, "reset"),
    Case("tls_closed_mid_handshake", Category.tls_failure, Stage.tls, 0, "closed"),
    Case("expired_certificate", Category.tls_failure, Stage.tls, 0, "expired", "certificate"),
    Case(
        "self_signed_certificate", Category.tls_failure, Stage.tls, 0, "self-signed", "certificate"
    ),
    Case(
        "wrong_host_certificate", Category.tls_failure, Stage.tls, 0, "not valid for", "certificate"
    ),
    Case("tls_1_0_only", Category.tls_failure, Stage.tls, 0, "no TLS version in common", "TLS 1.2"),
    Case("close_after_ehlo", Category.protocol_error, Stage.mail, 0, "closed the connection"),
    Case("close_after_auth", Category.protocol_error, Stage.auth, 0, "closed the connection"),
    Case("close_after_rcpt", Category.protocol_error, Stage.rcpt, 0, "closed the connection"),
    Case("slowloris", Category.timeout, Stage.banner, 1, "no complete greeting"),
    # Replies 0.3 s apart, each within command_s: the site's budget of 0.75 s ends it at MAIL.
    Case("tarpit", Category.timeout, Stage.mail, 2, "site_s", "try again later", site_s=0.75),
    Case("endless_4xx", Category.temporary_failure, Stage.ehlo, 0, "450", "later"),
    Case(
        "escape_in_rcpt", Category.recipient_rejected, Stage.rcpt, 0, "does not know the recipient"
    ),
    Case("echo_auth_line", Category.auth_failed, Stage.auth, 0, "rejected the login"),
    Case("malformed_auth_echo", Category.protocol_error, Stage.auth, 0, "malformed"),
    Case("multiline_auth_echo", Category.auth_failed, Stage.auth, 0, "rejected the login"),
    Case("truncated_auth_echo", Category.auth_failed, Stage.auth, 0, "rejected the login"),
    Case("auth_asks_again", Category.protocol_error, Stage.auth, 0, "334"),
    Case("rcpt_quotes_another_login", Category.relay_denied, Stage.rcpt, 0, "relay"),
]


def test_every_behaviour_has_a_case() -> None:
    assert {c.behaviour for c in CASES} == set(BEHAVIOURS)


# ---- hygiene of what a hostile server can put into results -------------------------------

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list):
        return [s for item in value for s in strings_in(item)]
    return []


def assert_clean_json(result: SweepResult) -> None:
    """Serialisable, valid UTF-8, and no NUL or lone surrogate anywhere."""
    dumped = result.model_dump_json()
    dumped.encode("utf-8")  # strict: a lone surrogate would fail here
    assert "\\u0000" not in dumped
    for text in strings_in(json.loads(dumped)):
        assert "\x00" not in text
        assert not _SURROGATE.search(text), text
    assert SweepResult.model_validate_json(dumped) == result


# ---- the corpus ---------------------------------------------------------------------------


@pytest.fixture
async def lab(lab_dns: LabDns, monkeypatch: pytest.MonkeyPatch) -> LabDns:
    publish_contoso(lab_dns)
    monkeypatch.setenv(PASSWORD_ENV, "hostile-test-password")
    return lab_dns


async def sweep_with(
    behaviour: str | Callable[[str], str],
    sites: Callable[[int], InventoryBuilder],
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
) -> tuple[SweepResult, float, HostileServer]:
    server = HostileServer(behaviour, certs)
    port = await server.start()
    try:
        path = write_inventory(sites(port))
        began = time.perf_counter()
        result = await run_sweep(plan_sweep(load_inventory(str(path))))
        took_s = time.perf_counter() - began
    finally:
        await server.stop()
    return result, took_s, server


def site_seconds(site: SiteResult) -> float:
    return (site.finished_at - site.started_at).total_seconds()


@pytest.mark.parametrize("case", CASES, ids=[c.behaviour for c in CASES])
async def test_a_hostile_server_ends_in_a_classified_result_in_time(
    case: Case,
    m365: M365Lab,
    lab: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a sweep of two sites: a healthy one, and one whose server misbehaves
    def inventory(port: int) -> InventoryBuilder:
        healthy = healthy_site(header(lab), m365.mx.port, m365.ca_file)
        return hostile_site(healthy, case.behaviour, port, str(certs.ca_file), site_s=case.site_s)

    # When it runs
    result, took_s, server = await sweep_with(case.behaviour, inventory, certs, write_inventory)

    # Then every site is accounted for, and the healthy one is untouched
    sites = {s.site: s for s in result.sites}
    assert result.sweep.complete
    assert [s.site for s in result.sites] == ["healthy", "hostile"]
    assert sites["healthy"].verdict is Verdict.ok, sites["healthy"].flags
    # ... the hostile device got a category, a finding and a remediation, from one conversation
    (device,) = sites["hostile"].devices
    assert (device.category, device.failed_stage) == (case.category, case.stage), device.finding
    assert device.verdict is Verdict.critical or case.category is Category.temporary_failure
    assert case.finding.lower() in device.finding.lower()
    assert device.remediation is not None
    assert case.remedy.lower() in device.remediation.lower()
    assert server.connections == 1
    transcript = sites["hostile"].conversation_of(device).transcript
    failed = [s for s in transcript if s.stage is case.stage][-1]
    assert failed.status in (StageStatus.failed, StageStatus.error)
    assert failed.reply is not None or failed.detail  # the evidence is kept
    # ... in time: the whole sweep, and the hostile site on its own clock
    assert took_s <= case.limit_s, f"{took_s:.2f} s > {case.limit_s:.2f} s"
    assert site_seconds(sites["hostile"]) <= case.limit_s
    assert took_s >= case.least_s
    # ... and what the server sent is safe to store and show
    assert_clean_json(result)


# ---- what the corpus proves beyond the category ---------------------------------------------


async def sweep_one(
    behaviour: str, lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> tuple[SiteResult, HostileServer]:
    def inventory(port: int) -> InventoryBuilder:
        return hostile_site(header(lab), behaviour, port, str(certs.ca_file))

    result, _, server = await sweep_with(behaviour, inventory, certs, write_inventory)
    (site,) = result.sites
    return site, server


def verbs(server: HostileServer) -> list[str]:
    return [line.split(b" ", 1)[0].strip().decode().upper() for line in server.lines]


async def test_escape_sequences_and_formulas_from_a_server_are_neutralised_in_reports(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given a server whose RCPT rejection carries terminal escapes and a spreadsheet formula
    def inventory(port: int) -> InventoryBuilder:
        return hostile_site(header(lab), "escape_in_rcpt", port, str(certs.ca_file))

    result, _, _ = await sweep_with("escape_in_rcpt", inventory, certs, write_inventory)
    (device,) = result.sites[0].devices
    assert device.reply is not None
    assert device.reply.text.startswith("=HYPERLINK(")  # kept as evidence, as the server said it

    # Then no table shows an escape sequence or a control character
    tables = [render("table", result), render("table", result, detail=True)]
    tables.append(render_transcript(result))  # what `fleet scan` shows
    for table in tables:
        assert "\x1b" not in table
        assert "\x07" not in table
        assert "\x9b" not in table
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", table)
    assert "=HYPERLINK(" in tables[1]  # shown, as text
    assert "user unknown" in tables[2]
    # ... and in the CSV the formula is text, in every cell where it appears
    for per_site in (False, True):
        rows = list(csv.reader(io.StringIO(render("csv", result, per_site=per_site))))
        cells = [cell for row in rows[1:] for cell in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
        assert "\x1b" not in "".join(cells)
        if not per_site:
            reply_text = rows[1][rows[0].index("reply_text")]
            assert reply_text.startswith("'=HYPERLINK(")
            assert "user unknown" in reply_text
    # ... and the JSON keeps the exact text, escaped as JSON does
    assert "\\u001b[31m" in render("json", result)


async def test_non_utf8_bytes_are_kept_as_replacement_characters(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    site, _ = await sweep_one("non_utf8", lab, certs, write_inventory)

    (device,) = site.devices
    assert device.reply is not None
    assert device.reply.code == 550
    assert device.reply.enhanced == "5.1.1"
    assert "user unknown" in device.reply.text
    assert "\ufffd" in device.reply.text  # the undecodable bytes and the NUL, visibly replaced
    banner = next(s for s in site.conversation_of(device).transcript if s.stage is Stage.banner)
    assert banner.reply is not None
    assert "\ufffd" in banner.reply.text
    assert "\x00" not in banner.reply.text


async def test_an_endless_4xx_server_gets_one_try_and_no_retry_loop(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    site, server = await sweep_one("endless_4xx", lab, certs, write_inventory)

    assert site.devices[0].category is Category.temporary_failure
    assert server.connections == 1
    assert verbs(server) == ["EHLO", "QUIT"]


async def test_a_server_that_hangs_up_on_auth_gets_one_auth_attempt(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given two copiers at one site that share a login to a server that hangs up on AUTH
    def inventory(port: int) -> InventoryBuilder:
        behaviour, ca_file = BEHAVIOURS["close_after_auth"], str(certs.ca_file)
        device = hostile_device(behaviour, port, ca_file)
        # the same login (its username comes from "mfp"), through a second conversation
        twin = hostile_device(
            behaviour,
            port,
            ca_file,
            "mfp-2",
            username="scanner-mfp@contoso.test",
            ehlo_name="second.contoso.test",
        )
        return header(lab).site("hostile", device, twin, client="Hostile")

    result, _, server = await sweep_with("close_after_auth", inventory, certs, write_inventory)

    # Then the login was tried once: the second conversation did not try it again
    assert verbs(server).count("AUTH") == 1
    categories = {d.device: d.category for d in result.sites[0].devices}
    assert categories["mfp"] is Category.protocol_error
    assert server.connections == 2


async def test_plaintext_injected_after_starttls_is_never_read_as_a_reply(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given a server that pipelines a plain-text greeting and EHLO reply behind its 220
    site, server = await sweep_one("starttls_pipelined_plaintext", lab, certs, write_inventory)

    # Then nothing after STARTTLS was taken from it: its 220 with text behind it is a reply
    # too many, and the conversation ends there: no handshake, no MAIL, no AUTH
    (device,) = site.devices
    had = site.conversation_of(device)
    assert [s.stage for s in had.transcript if s.status is StageStatus.ok][-1] is Stage.ehlo
    assert (device.category, device.failed_stage) == (Category.protocol_error, Stage.starttls)
    assert "MAIL" not in verbs(server)
    assert had.tls is None or had.tls.version is None


async def test_a_reply_too_many_in_a_packet_of_its_own_stops_the_next_command() -> None:
    # Given a server that greets, and once the greeting was read sends a reply nobody asked
    # for, in a packet of its own (aiosmtplib drops such bytes without a word)
    greeted, served, heard = asyncio.Event(), asyncio.Event(), []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            writer.write(b"220 hi\r\n")
            await greeted.wait()
            writer.write(b"250 extra\r\n")
            await writer.drain()
            heard.extend([line async for line in reader])
        finally:
            writer.close()
            served.set()

    flagged = asyncio.Event()

    class Watched(InStepProtocol):
        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.out_of_step:
                flagged.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    loop = asyncio.get_running_loop()
    try:
        transport, protocol = await loop.create_connection(
            lambda: Watched(loop=loop), "127.0.0.1", port
        )
        assert (await protocol.read_response(timeout=2)).code == 220
        greeted.set()
        async with asyncio.timeout(2):  # until the extra reply has arrived
            await flagged.wait()

        # Then the next command is not sent, and nothing is read as its reply
        with pytest.raises(OutOfStep, match="more replies than commands"):
            await protocol.execute_command(b"NOOP", timeout=2)
        transport.close()
        async with asyncio.timeout(2):  # the server heard the hang-up, and nothing before it
            await served.wait()
    finally:
        server.close()
        await server.wait_closed()
    assert heard == []


async def test_a_reply_too_many_through_a_socks5_proxy_stops_the_conversation_too(
    lab: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
    socks_proxy: Callable[[str], str],
) -> None:
    # Given a site that leaves through its SOCKS5 proxy to a server whose EHLO capabilities
    # come as separate replies (the proxy hands over a socket: aiosmtplib's own connect path)
    proxy = socks_proxy("127.0.0.1")

    def inventory(port: int) -> InventoryBuilder:
        device = hostile_device(BEHAVIOURS["ehlo_lines_without_hyphens"], port, "")
        return header(lab).site("hostile", device, client="Hostile", egress={"via": proxy})

    result, _, server = await sweep_with(
        "ehlo_lines_without_hyphens", inventory, certs, write_inventory
    )

    # Then it ends out of step at EHLO, as on the direct way, and RCPT is never sent
    (device,) = result.sites[0].devices
    assert (device.category, device.failed_stage) == (Category.protocol_error, Stage.ehlo)
    assert "out of step" in device.finding
    assert verbs(server) == ["EHLO"]


@pytest.mark.parametrize(
    ("behaviour", "declared", "seen", "changed"),
    [
        # the same address, as an IPv4-mapped IPv6 address: no change, however declared
        ("echoes_mapped_client", "127.0.0.9", ["127.0.0.9"], False),
        ("echoes_mapped_client", "::ffff:127.0.0.9", ["127.0.0.9"], False),
        # what an on-site relay sees, not the public IP: ignored
        ("echoes_private_client", "127.0.0.9", [], False),
        ("echoes_link_local_client", "127.0.0.9", [], False),
        # ... unless the site itself is declared on a private network
        ("echoes_private_client", "192.168.1.9", ["192.168.1.50"], True),
    ],
)
async def test_an_echoed_address_that_is_not_another_public_ip_is_no_egress_change(
    behaviour: str,
    declared: str,
    seen: list[str],
    changed: bool,
    lab: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a site declared as `declared` whose server greets it under another form
    def inventory(port: int) -> InventoryBuilder:
        device = hostile_device(ECHOES[behaviour], port, "")
        return header(lab).site("echo", device, client="Echo", egress={"ip": declared})

    result, _, _ = await sweep_with(behaviour, inventory, certs, write_inventory)

    # Then the servers saw what they saw, unmapped, and only a real change is flagged
    (site,) = result.sites
    assert site.egress.observed_ips == seen
    assert site.egress_ip == (seen[0] if seen else site.egress.declared_ip)
    flags = [f for f in site.flags if f.code == "EGRESS_IP_CHANGED"]
    assert bool(flags) is changed, flags


def test_no_greeting_on_port_465_says_to_use_implicit_tls() -> None:
    # Given a copier set to STARTTLS (or none) on port 465, whose server waits for a TLS
    # handshake and so never greets: the common "465 with STARTTLS" mistake
    timeout = Fault(StageStatus.error, Category.timeout, "connected, but no greeting")
    remedy = fault_remedy(
        timeout, host="smtp.example", port=465, tls_max=None, implicit_tls=False, stage=Stage.banner
    )
    # Then the remedy says so, and not to check the firewall for a port that answered
    assert "port 465 expects implicit TLS" in remedy
    assert "security: tls" in remedy
    assert "firewall" not in remedy
    # ... while a connection that never came up still points at the firewall
    unanswered = fault_remedy(
        timeout, host="smtp.example", port=25, tls_max=None, implicit_tls=False, stage=Stage.connect
    )
    assert "firewall" in unanswered


async def test_a_login_the_server_still_waits_on_is_cancelled_before_quit(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given a server that asks for the password again after it came (334), so that it still
    # expects an AUTH line when the conversation ends
    site, server = await sweep_one("auth_asks_again", lab, certs, write_inventory)

    # Then fleet cancels the exchange with `*` (RFC 4954 4) before its QUIT, and the QUIT
    # is answered as a QUIT, not taken for a password
    assert verbs(server)[-2:] == ["*", "QUIT"]
    (device,) = site.devices
    assert device.failed_stage is Stage.auth
    quit_ = [s for s in site.conversation_of(device).transcript if s.stage is Stage.quit][-1]
    assert quit_.status is StageStatus.ok, quit_
    assert quit_.reply is not None
    assert quit_.reply.code == 221


async def test_the_starttls_reply_is_kept_when_the_handshake_after_it_fails(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given a server that says 220 to STARTTLS, then answers the handshake with garbage
    site, _ = await sweep_one("starttls_then_garbage", lab, certs, write_inventory)

    # Then the transcript shows the 220 as the server worded it, and the handshake failed
    (device,) = site.devices
    had = site.conversation_of(device).transcript
    starttls = next(s for s in had if s.stage is Stage.starttls)
    assert starttls.reply is not None
    assert starttls.reply.code == 220
    assert "Ready to start TLS" in starttls.reply.text
    assert device.failed_stage is Stage.tls


async def test_a_refused_greeting_is_timed_without_the_quit_that_followed(
    lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given a server that refuses in its greeting and never answers the QUIT after it
    site, _ = await sweep_one("refuses_greeting_then_deaf", lab, certs, write_inventory)

    # Then the greeting's row has the greeting's time, and the QUIT's row the wait for it
    (device,) = site.devices
    had = site.conversation_of(device).transcript
    banner = next(s for s in had if s.stage is Stage.banner)
    quit_ = next(s for s in had if s.stage is Stage.quit)
    assert banner.reply is not None
    assert banner.reply.code == 554
    assert quit_.status is StageStatus.error
    assert quit_.elapsed_s is not None
    assert banner.elapsed_s is not None
    assert quit_.elapsed_s >= COMMAND_S * 0.95  # the QUIT waited out its timeout ...
    assert banner.elapsed_s < COMMAND_S / 2  # ... and the greeting is not charged with it


@pytest.mark.parametrize("behaviour", ["tls_then_silent", "implicit_tls_extra_reply"])
async def test_an_implicit_tls_handshake_that_worked_is_recorded_when_the_greeting_fails(
    behaviour: str, lab: LabDns, certs: LabCertificates, write_inventory: Callable[..., Path]
) -> None:
    # Given an implicit TLS server whose handshake works, and whose greeting then does not
    # (it never comes, or comes with a reply too many)
    site, _ = await sweep_one(behaviour, lab, certs, write_inventory)

    # Then the transcript says the handshake worked, with what was negotiated and shown
    (device,) = site.devices
    had = site.conversation_of(device)
    assert device.failed_stage is Stage.banner
    tls = next(s for s in had.transcript if s.stage is Stage.tls)
    assert tls.status is StageStatus.ok
    assert had.tls is not None
    assert had.tls.version is not None
    assert had.tls.subject


@pytest.mark.parametrize("behaviour", ["closing_421_after_mail", "closing_421_alone_after_mail"])
async def test_an_unasked_421_is_the_answer_to_the_next_command_not_out_of_step(
    behaviour: str,
    m365: M365Lab,
    lab: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a server that, shutting down, says 421 unasked after MAIL and hangs up
    # (RFC 5321 3.8: "the SMTP client will normally read the 421 response code after
    # sending its next command"), with the MAIL reply or in a packet of its own
    def inventory(port: int) -> InventoryBuilder:
        healthy = healthy_site(header(lab), m365.mx.port, m365.ca_file)
        return hostile_site(healthy, behaviour, port, str(certs.ca_file))

    result, _, _ = await sweep_with(behaviour, inventory, certs, write_inventory)

    # Then the 421 is what the server said to RCPT: a deferral in its own words
    site = next(s for s in result.sites if s.site == "hostile")
    (device,) = site.devices
    assert (device.category, device.failed_stage) == (Category.temporary_failure, Stage.rcpt)
    rcpt = [s for s in site.conversation_of(device).transcript if s.stage is Stage.rcpt][-1]
    assert rcpt.reply is not None
    assert rcpt.reply.code == 421
    assert "closing" in rcpt.reply.text.lower() or "shutting down" in rcpt.reply.text.lower()
    assert "out of step" not in device.finding


@pytest.mark.parametrize(
    "behaviour", ["closing_421_after_rcpt", "rset_421", "rset_not_implemented"]
)
async def test_an_accepted_recipient_stays_ok_when_rset_gets_its_own_answer(
    behaviour: str,
    m365: M365Lab,
    lab: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
) -> None:
    # Given a server that accepts the recipient, then answers RSET in its own right: a 421
    # as it shuts down (with the 250 or to RSET itself), or 502 (it has no RSET)
    def inventory(port: int) -> InventoryBuilder:
        healthy = healthy_site(header(lab), m365.mx.port, m365.ca_file)
        device = hostile_device(GOOD_ENDINGS[behaviour], port, str(certs.ca_file))
        return healthy.site("hostile", device, client="Hostile")

    result, _, _ = await sweep_with(behaviour, inventory, certs, write_inventory)

    # Then the recipient's acceptance stands: those are no replies left over from RCPT
    site = next(s for s in result.sites if s.site == "hostile")
    (device,) = site.devices
    # (the verdict is the site's SPF's, which a hostile site without an egress IP cannot know)
    assert device.category is Category.ok, device.finding
    assert device.failed_stage is None


async def test_a_password_made_of_a_sites_name_blanks_the_echo_not_the_site(
    m365: M365Lab,
    lab: LabDns,
    certs: LabCertificates,
    write_inventory: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a password made of a site's id, as MSPs' often are, that a server echoes back
    password = "Contoso-HQ-Pass!"
    monkeypatch.setenv(PASSWORD_ENV, password)

    def inventory(port: int) -> InventoryBuilder:
        healthy = healthy_site(header(lab), m365.mx.port, m365.ca_file, site_id="contoso-hq")
        device = hostile_device(QUIET_LEAKS["quit_echoes_auth"], port, str(certs.ca_file))
        return healthy.site("hostile", device, client="Hostile")

    result, _, _ = await sweep_with("quit_echoes_auth", inventory, certs, write_inventory)

    # Then the site keeps the id it is stored, compared and pushed under (review H 2) ...
    assert [s.site for s in result.sites] == ["contoso-hq", "hostile"]
    # ... and the echo of the login is blanked all the same
    dumped = result.model_dump_json()
    assert password.lower() not in dumped.lower()
    assert "contoso-hq-pass" not in dumped.lower()
    hostile = result.sites[1]
    (quit_row,) = [
        s for s in hostile.conversation_of(hostile.devices[0]).transcript if s.stage is Stage.quit
    ]
    assert "****" in str(quit_row.reply or quit_row.detail)


@pytest.mark.parametrize(
    ("reply", "out_of_step"),
    [
        (b"250 2.1.0 Sender OK\r\n", False),
        (b"250-mx.example\r\n250-SIZE 1000\r\n250 STARTTLS\r\n", False),
        # different bytes, the same code as aiosmtplib reads it (int(b"025") == int(b"25 "))
        (b"025-first\r\n25  second\r\n", False),
        (b"250-mx.example\r\n550 no\r\n", True),
        (b"250-mx.example\r\n250-SIZE 1000\r\n251 STARTTLS\r\n", True),
    ],
)
async def test_one_reply_carries_one_code_read_as_aiosmtplib_reads_it(
    reply: bytes, out_of_step: bool
) -> None:
    """The codes of a reply's lines are compared by value (bytes first, the cheap case of
    every reply read; bench/RESULTS.md, perfcheck)."""
    loop = asyncio.get_running_loop()
    protocol = InStepProtocol(loop=loop)
    protocol._response_waiter = waiter = loop.create_future()
    protocol._response_pending = True
    protocol.data_received(reply)
    if out_of_step:
        with pytest.raises(OutOfStep, match="different codes"):
            waiter.result()
    else:
        assert waiter.result().code in (250, 25)
    assert protocol.out_of_step is out_of_step
