"""End to end against real mail software none of us wrote: Postfix, rbldnsd, dnsmasq,
microsocks and swaks (the lab tier, marker `lab`; see tests/lab/).

The story of the ticket that started the project: a copier's full conversation from its
site's egress is accepted through STARTTLS, then rejected at RCPT TO because the site's
IP is on a blocklist. Three sites each leave through their own microsocks (`-b 127.0.0.x`):
one XBL-listed (rejected), one PBL-listed (accepted, but a warning), one clean.

Without the programs the tier skips, saying what to install; under CI=true it fails.
The lab must leave the machine as it found it: no process it started survives, and
/etc/resolv.conf and /etc/postfix/main.cf are byte for byte what they were.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.report.json_report import read_json
from fleet.results import (
    BlocklistStatus,
    Category,
    ListingSeverity,
    SiteResult,
    Stage,
    StageStatus,
    SweepResult,
    Verdict,
)
from tests.conftest import IN_CI, ROOT, Run, fleet_env, require_binary, run_fleet
from tests.lab import processes, system
from tests.lab.services import EHLO_NAME, RECIPIENT, SITES, ZONE, Lab, LabError, LabSite, Ports
from tests.lab.swaks import swaks_conversation

pytestmark = pytest.mark.lab

RESOLV_CONF = Path("/etc/resolv.conf")
DIRTY, DYNAMIC, CLEAN = SITES  # 127.0.0.20 (XBL), 127.0.0.21 (PBL), 127.0.0.30
LAB_BINARIES = (
    "postfix", "rbldnsd", "dnsmasq", "microsocks", "swaks", "ncat",
    # the lab's mailbox (--verify-delivery): Dovecot with Sieve, and the SPF policy service
    "dovecot", "sievec", "policyd-spf",
)  # fmt: skip
SENDER = "scanner@contoso.test"  # as in the lab's inventory


def require_lab() -> None:
    """Skip (fail under CI=true) without root or any of the lab's programs, naming them all."""
    missing = []
    for name in LAB_BINARIES:
        try:
            require_binary(name)
        except pytest.skip.Exception as exc:
            missing.append(str(exc.msg))
    if missing:
        pytest.skip(
            f"lab tier: {'; '.join(missing)} (or, as root: bash tests/lab/install-packages.sh)"
        )
    if os.geteuid() != 0:
        message = "lab tier: needs root (Postfix's master, a private mount namespace)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def machine_as_found() -> Iterator[dict[Path, bytes | None]]:
    """The system files the lab must leave as it found them; checked once it has stopped."""
    before = {path: system.snapshot(path) for path in (RESOLV_CONF, system.MAIN_CF)}
    yield before
    assert system.snapshot(RESOLV_CONF) == before[RESOLV_CONF], "/etc/resolv.conf changed"
    assert_main_cf_restored(before[system.MAIN_CF])


def assert_main_cf_restored(before: bytes | None, lab_dir: Path | None = None) -> None:
    """main.cf is byte for byte as it was, unless another lab (another test session) started
    or stopped meanwhile: then only the lab block may differ, and must not name `lab_dir`."""
    after = system.snapshot(system.MAIN_CF)
    if after == before:
        return
    now = system.original_of(after)
    assert now.text == system.original_of(before).text, f"{system.MAIN_CF} was not restored"
    if lab_dir is not None:
        assert not [d for d in now.lab_directories if d.startswith(str(lab_dir))]


@pytest.fixture(scope="module")
def lab(machine_as_found: dict[Path, bytes | None]) -> Iterator[Lab]:
    """The lab, on free ports, in a folder of its own; stopped by PID afterwards."""
    require_lab()
    run_dir = Path(tempfile.mkdtemp(prefix="fleet-lab-"))
    lab = Lab(run_dir, Ports.free())
    try:
        lab.start()
    except LabError as exc:
        shutil.rmtree(run_dir, ignore_errors=True)
        pytest.fail(f"the lab did not start: {exc}")
    try:
        yield lab
    finally:
        stopped = lab.stop()
        left = processes.survivors(stopped)
        shutil.rmtree(run_dir, ignore_errors=True)
        assert not left, f"still running after the lab stopped: {left}"


@pytest.fixture(scope="module")
def sweep(lab: Lab) -> tuple[Run, SweepResult]:
    """One sweep of the lab's three sites, by the real command line, as JSON."""
    run = run_fleet("sweep", "-i", str(lab.inventory), "--format", "json", "--quiet", "--no-store")
    assert run.stdout, run.stderr
    return run, read_json(run.stdout)


def site_result(result: SweepResult, site: LabSite) -> SiteResult:
    return next(s for s in result.sites if s.site == site.id)


def test_the_sweep_exits_critical(sweep: tuple[Run, SweepResult]) -> None:
    run, result = sweep
    assert run.code == 2, run.stderr
    assert result.sweep.complete
    assert {s.site: s.verdict for s in result.sites} == {
        DIRTY.id: Verdict.critical,
        DYNAMIC.id: Verdict.warn,
        CLEAN.id: Verdict.ok,
    }


def test_the_listed_site_is_rejected_at_rcpt_with_postfixs_own_words(
    sweep: tuple[Run, SweepResult],
) -> None:
    # Given a site whose egress IP is listed as an exploited host (127.0.0.4)
    site = site_result(sweep[1], DIRTY)

    # Then Postfix accepted EHLO and STARTTLS, and rejected the recipient
    assert site.verdict is Verdict.critical
    assert "DIRECT_SEND_DIRTY_IP" in [f.code for f in site.flags]
    (device,) = site.devices
    assert device.category is Category.ip_reputation
    assert device.failed_stage is Stage.rcpt
    assert device.reply is not None
    assert device.reply.code == 554
    assert f"Client host [{DIRTY.egress_ip}] blocked using {ZONE}" in device.reply.text
    assert "Listed by lab XBL" in device.reply.text  # rbldnsd's TXT, relayed by Postfix
    tls = site.conversation_of(device).tls
    assert tls is not None
    assert tls.verified is True

    # And the blocklist says the same thing, with the abuse code
    (listing,) = site.blocklists
    assert (listing.ip, listing.zone, listing.status) == (
        DIRTY.egress_ip,
        ZONE,
        BlocklistStatus.listed,
    )
    assert listing.codes == ["127.0.0.4"]
    assert listing.severity is ListingSeverity.abuse


def test_the_dynamic_range_site_is_accepted_but_warned_about(
    sweep: tuple[Run, SweepResult],
) -> None:
    # Given a site in a PBL-listed range, which this Postfix (like many receivers) accepts
    site = site_result(sweep[1], DYNAMIC)

    assert site.verdict is Verdict.warn
    assert "DIRECT_SEND_DYNAMIC_IP" in [f.code for f in site.flags]
    (device,) = site.devices
    assert device.category is Category.ok
    transcript = site.conversation_of(device).transcript
    assert [(s.stage, s.status) for s in transcript if s.stage is Stage.rcpt] == [
        (Stage.rcpt, StageStatus.ok)
    ]
    (listing,) = site.blocklists
    assert listing.status is BlocklistStatus.listed
    assert listing.codes == ["127.0.0.10"]
    assert listing.severity is ListingSeverity.policy


def test_the_clean_site_is_ok(sweep: tuple[Run, SweepResult]) -> None:
    site = site_result(sweep[1], CLEAN)

    assert site.verdict is Verdict.ok
    assert site.flags == []
    assert site.egress_ip == CLEAN.egress_ip  # declared: Postfix never echoes it
    (device,) = site.devices
    assert device.category is Category.ok
    tls = site.conversation_of(device).tls
    assert tls is not None
    assert tls.verified is True
    assert [b.status for b in site.blocklists] == [BlocklistStatus.clean]


@pytest.mark.parametrize("site", SITES, ids=[s.id for s in SITES])
def test_fleets_transcript_matches_swaks(
    lab: Lab, sweep: tuple[Run, SweepResult], site: LabSite
) -> None:
    # Given fleet's conversation from the site
    result = site_result(sweep[1], site)
    (device,) = result.devices
    fleet_replies = [
        (s.stage.value, s.reply.code)
        for s in result.conversation_of(device).transcript
        if s.reply is not None and s.reply.code is not None and s.stage is not Stage.quit
    ]

    # When swaks has the same conversation through the same proxy
    replies, output = swaks_conversation(
        proxy_port=lab.ports.socks[site.id],
        smtp_port=lab.ports.smtp,
        mail_from=SENDER,
        rcpt_to=RECIPIENT,
        ehlo=EHLO_NAME,
    )

    # Then both reached the same stages with the same reply codes
    swaks_replies = [(r.stage, r.code) for r in replies if r.stage != "quit"]
    assert swaks_replies == fleet_replies, output
    expected_rcpt = 554 if site is DIRTY else 250
    assert fleet_replies == [
        ("banner", 220),
        ("ehlo", 250),
        ("starttls", 220),
        ("ehlo_tls", 250),
        ("mail", 250),
        ("rcpt", expected_rcpt),
    ]
    # And fleet reports the rejection in Postfix's words, as swaks saw them
    if site is DIRTY:
        rcpt = next(r for r in replies if r.stage == "rcpt")
        assert device.reply is not None
        assert rcpt.text.split(" ", 1)[1] in device.reply.text, output


def test_lab_up_and_down_by_hand_leave_the_machine_as_found(lab: Lab) -> None:
    # Given the machine as it is now (the module's lab is running)
    resolv_conf = system.snapshot(RESOLV_CONF)
    main_cf = system.snapshot(system.MAIN_CF)
    run_dir = Path(tempfile.mkdtemp(prefix="fleet-lab-cli-"))
    try:
        # When someone runs `make lab-up` and then `make lab-down`
        up = _lab_cli("up", run_dir)
        assert up.returncode == 0, up.stderr
        assert f"fleet sweep -i {run_dir / 'inventory.yaml'}" in up.stdout
        started = Lab.load(run_dir)
        assert started is not None
        assert {p.name for p in started.processes} == {
            "rbldnsd",
            "dnsmasq",
            "postfix",
            "dovecot",
            *(f"microsocks-{s.id}" for s in SITES),
        }
        swept = run_fleet(
            "sweep", "-i", str(run_dir / "inventory.yaml"), "--format", "csv", "--no-store"
        )
        assert swept.code == 2, swept.stderr
        down = _lab_cli("down", run_dir)

        # Then every process it started is gone, and the system files are as they were
        assert down.returncode == 0, down.stderr
        assert processes.survivors(started.processes) == []
        assert system.snapshot(RESOLV_CONF) == resolv_conf
        assert_main_cf_restored(main_cf, run_dir)
    finally:
        leftover = Lab.load(run_dir)
        if leftover is not None:
            leftover.stop()
        shutil.rmtree(run_dir, ignore_errors=True)


def _lab_cli(command: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.lab", command, "--run-dir", str(run_dir), "--free-ports"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=fleet_env(),
        timeout=60,
        check=False,
    )
