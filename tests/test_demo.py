"""`fleet demo` (issues 6 and 11): the README's first command prints the matrix with one
site per story and its remediation, writes the CSV, exits 0, in well under 20 seconds,
and touches nothing beyond loopback."""

from __future__ import annotations

import csv
import io
import ipaddress
import re
import subprocess
import sys
import time
from pathlib import Path

from fleet.report.csv_report import DEVICE_COLUMNS

from .conftest import fleet_env, require_binary, run_fleet

# site -> (verdict, top flag) as the demo promises them
STORIES = {
    "contoso-hq": ("critical", "DIRECT_SEND_DIRTY_IP"),
    "contoso-branch": ("warn", "DIRECT_SEND_DYNAMIC_IP"),
    "northwind": ("critical", "AUTH_DISABLED"),
    "fabrikam": ("ok", ""),
    "tailspin": ("warn", "SPF_NOT_AUTHORISED"),
}


def site_rows(stdout: str) -> dict[str, list[str]]:
    """The matrix's rows by site id (columns split on runs of two or more spaces)."""
    rows = {}
    for line in stdout.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) >= 7 and cells[1] in STORIES:
            rows[cells[1]] = cells
    return rows


def test_the_demo_prints_the_matrix_and_writes_the_csv(tmp_path: Path) -> None:
    # When `fleet demo` runs in an empty folder
    started = time.monotonic()
    run = run_fleet("demo", cwd=tmp_path, timeout=60)
    elapsed = time.monotonic() - started

    # Then it succeeds quickly (the limit is 20 s; it takes about one)
    assert run.code == 0, run.stderr
    assert elapsed < 10, elapsed
    assert "five sites" in run.stdout or "5 sites" in run.stdout
    rows = site_rows(run.stdout)
    assert set(rows) == set(STORIES)
    for name, (verdict, top_flag) in STORIES.items():
        cells = rows[name]
        assert cells[-1 if not top_flag else -2] == verdict, cells
        if top_flag:
            assert cells[-1] == top_flag, cells

    # ...with each story's remediation under the matrix
    findings = run.stdout.split("contoso-hq (Contoso Dental): critical", 1)[1]
    assert "DIRECT_SEND_DIRTY_IP [critical] mfp-frontdesk, mfp-backoffice" in findings
    assert "connector relay from a clean static IP" in findings
    assert "DIRECT_SEND_DYNAMIC_IP [warn] mfp-1" in findings
    assert "AUTH_DISABLED [critical] konica-2f" in findings
    assert "Set-CASMailbox" in findings
    assert "SPF_NOT_AUTHORISED [warn] brother-warehouse" in findings
    assert "make it `v=spf1 ip4:127.0.0.24 include:" in " ".join(findings.split())
    assert "fabrikam (" not in findings  # nothing to do there
    assert "(a real sweep would exit 2" in run.stdout

    # And the CSV for account managers is there: UTF-8 with a BOM, one row per device
    raw = (tmp_path / "fleet-demo.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    reader = csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline=""))
    assert reader.fieldnames == DEVICE_COLUMNS
    devices = {r["device"]: r for r in reader}
    assert len(devices) == 7
    assert devices["mfp-frontdesk"]["verdict"] == "critical"
    assert devices["mfp-frontdesk"]["reply_enhanced"] == "5.7.606"
    assert devices["konica-2f"]["flags"] == "AUTH_DISABLED"
    assert devices["xerox-records"]["verdict"] == "ok"
    assert devices["brother-warehouse"]["spf_check"] == "softfail (127.0.0.24)"

    # And the HTML report is there too, with every site and its verdict, and it says where
    html_path = (tmp_path / "fleet-demo.html").resolve()
    assert f"HTML report (open it in a browser): {html_path}" in run.stdout
    page = html_path.read_text(encoding="utf-8")
    for name, (verdict, _) in STORIES.items():
        assert f'data-site="{name}" data-client=' in page
        assert re.search(f'data-site="{name}" data-client="[^"]+" data-verdict="{verdict}"', page)

    # the demo's secrets stay out of its outputs
    for secret in ("demo-password-northwind", "demo-oauth-token-fabrikam"):
        assert secret not in run.stdout + run.stderr
        assert secret.encode() not in raw
        assert secret not in page


_ADDRESS = re.compile(
    r"sa_family=(?P<family>AF_INET6?|AF_UNIX|AF_NETLINK)"
    r'(?:.*?inet_pton\(AF_INET6, "(?P<v6>[^"]+)"|.*?inet_addr\("(?P<v4>[^"]+)"\))?'
)


def test_the_demo_touches_nothing_beyond_loopback(tmp_path: Path) -> None:
    # Given every socket call that names a destination, traced in the demo and its threads
    strace = require_binary("strace")
    trace = tmp_path / "demo.strace"
    command = [sys.executable, "-m", "fleet", "demo"]
    done = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace), *command],
        capture_output=True,
        text=True,
        env=fleet_env(),
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    destinations = []
    for line in trace.read_text(encoding="utf-8").splitlines():
        match = _ADDRESS.search(line)
        if match is None:
            continue  # no address: a connected socket, or a call that names none
        address = match.group("v4") or match.group("v6")
        destinations.append((match.group("family"), address))
    # Then it connected and sent, and only to loopback (or to local sockets)
    inet = [address for family, address in destinations if family.startswith("AF_INET")]
    assert inet, "the trace saw no network call at all"
    for address in inet:
        assert address is not None
        assert ipaddress.ip_address(address).is_loopback, address


# A child process in which the demo lab's libraries (the `lab` extra) are not installed.
WITHOUT_LAB = (
    "import sys\n"
    "for name in ('aiosmtpd', 'dnslib', 'trustme'):\n"
    "    sys.modules[name] = None  # import fails as if the package were not installed\n"
)


def test_a_sweep_needs_none_of_the_lab_libraries(tmp_path: Path) -> None:
    # Given an install without the `lab` extra
    code = WITHOUT_LAB + (
        "import fleet.cli, fleet.runner, fleet.plan, fleet.store, fleet.report\n"
        "from fleet.cli import main\n"
        "main(['--help'])\n"
    )
    # When the command line and everything a sweep runs are imported
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=fleet_env(), check=False
    )
    # Then nothing asks for the lab's servers
    assert done.returncode == 0, done.stderr
    assert "fleet demo" not in done.stderr


def test_the_demo_without_the_lab_extra_says_how_to_install_it(tmp_path: Path) -> None:
    # Given an install without the `lab` extra
    code = WITHOUT_LAB + "from fleet.cli import main\nmain(['demo'])\n"
    # When `fleet demo` runs
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=fleet_env(),
        cwd=tmp_path,
        check=False,
    )
    # Then it stops with exit 3 and names the extra, without a traceback
    assert done.returncode == 3, done.stderr
    assert "pip install 'fleet[lab]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "fleet-demo.csv").exists()
