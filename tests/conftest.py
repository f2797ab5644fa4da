"""Shared fixtures: real servers on loopback (aiosmtpd, the lab DNS server), certificates
from a private CA, inventories written to disk, and the fleet command line.

Tests send traffic only to 127.0.0.0/8. A test that needs a real binary (rbldnsd,
microsocks, postfix, swaks) skips with a message saying what to install, except in CI
(CI=true), where a missing binary fails the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleet.lab.certs import LabCertificates
from fleet.lab.dns import LabDns
from fleet.lab.smtp import LabSmtpServer, Tenant, m365_mx, m365_submission

from .inventory_builder import InventoryBuilder

ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Debian package that provides each binary the lab tier uses.
PACKAGES = {
    "rbldnsd": "rbldnsd",
    "microsocks": "microsocks",
    "postfix": "postfix",
    "swaks": "swaks",
    "dnsmasq": "dnsmasq-base",
    "ncat": "ncat",
    "dovecot": "dovecot-core",
    "sievec": "dovecot-sieve",
    "policyd-spf": "postfix-policyd-spf-python",
    "chromium": "chromium",
}


def require_binary(name: str) -> str:
    """The path of a binary the test needs: skip without it, but fail in CI."""
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    message = f"{name} is not installed: apt-get install {PACKAGES.get(name, name)}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: a missing server fails the run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> LabCertificates:
    """A private CA (its PEM is `certs.ca_file`) and server certificates it signs."""
    return LabCertificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
async def lab_dns() -> AsyncIterator[LabDns]:
    server = LabDns()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclass
class M365Lab:
    tenant: Tenant
    mx: LabSmtpServer
    submission: LabSmtpServer
    ca_file: str


@pytest.fixture
async def m365(certs: LabCertificates) -> AsyncIterator[M365Lab]:
    """A Microsoft 365-like tenant: its MX (Direct Send) and its submission endpoint."""
    tenant = Tenant(accepted_domains={"contoso.test"})
    context = certs.server_context("localhost", "127.0.0.1")
    mx = m365_mx(tenant, context)
    submission = m365_submission(tenant, context)
    await mx.start()
    await submission.start()
    try:
        yield M365Lab(tenant, mx, submission, str(certs.ca_file))
    finally:
        await mx.stop()
        await submission.stop()


@pytest.fixture
def write_inventory(tmp_path: Path) -> Callable[..., Path]:
    """Write an inventory (built, or dedented YAML text) to a file and return its path."""

    def write(text: str | InventoryBuilder, name: str = "inventory.yaml") -> Path:
        if isinstance(text, InventoryBuilder):
            return text.write(tmp_path / name)
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str


# A sweep without --db must never write the user's own history: tests default to this one.
_TEST_DB = os.path.join(tempfile.gettempdir(), f"fleet-tests-{os.getpid()}", "fleet.db")
# ... nor the user's cache of validated inventories (fleet.inventory_cache): the tests keep
# theirs here, in process and in the command lines they run, so both its paths are taken.
_TEST_CACHE = os.path.join(tempfile.gettempdir(), f"fleet-tests-{os.getpid()}", "inventories")
os.environ["FLEET_INVENTORY_CACHE"] = _TEST_CACHE


@pytest.fixture(scope="session", autouse=True)
def _tests_inventory_cache() -> Iterator[None]:
    """The tests' cache of validated inventories goes with their session."""
    yield
    shutil.rmtree(_TEST_CACHE, ignore_errors=True)


def fleet_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env.update(
        {
            "PYTHONUNBUFFERED": "1",
            "NO_COLOR": "1",
            "FLEET_DB": _TEST_DB,
            "FLEET_INVENTORY_CACHE": _TEST_CACHE,
        }
    )
    env.update(extra)
    return env


def run_fleet(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 120
) -> Run:
    """Run the fleet command line in a child process (blocking: only for tests with no
    in-process servers)."""
    done = subprocess.run(
        [sys.executable, "-m", "fleet", *args],
        capture_output=True,
        text=True,
        env=env or fleet_env(),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


async def run_fleet_async(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None, limit_s: float = 120
) -> Run:
    """Run the fleet command line in a child process while this test's servers keep running.

    Its output goes to files, not pipes: asyncio's pipe reading (Python 3.11) sometimes ends
    at a 64 KiB boundary when the child exits while this loop is busy serving the test's
    servers, which cut a large JSON report short (the child had written all of it)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleet",
            *args,
            stdout=out,
            stderr=err,
            env=env or fleet_env(),
            cwd=cwd,
        )
        try:
            await asyncio.wait_for(process.wait(), limit_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise
        assert process.returncode is not None
        out.seek(0)
        err.seek(0)
        return Run(process.returncode, out.read().decode(), err.read().decode())


def free_port(host: str = "127.0.0.1") -> int:
    import socket

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout} s")


@pytest.fixture
def socks_proxy() -> Iterator[object]:
    """Start microsocks instances (`start(bind_ip) -> "socks5://127.0.0.1:PORT"`, or listening
    on `listen`, e.g. ::1); each one sends from its own source address, like a proxy at a
    different site. Stopped by PID."""
    binary = require_binary("microsocks")
    processes: list[subprocess.Popen[bytes]] = []

    def start(bind_ip: str, listen: str = "127.0.0.1") -> str:
        port = free_port(listen)
        process = subprocess.Popen(
            [binary, "-i", listen, "-p", str(port), "-b", bind_ip],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        wait_for_port(port, listen)
        return f"socks5://[{listen}]:{port}" if ":" in listen else f"socks5://{listen}:{port}"

    yield start
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def eventually(
    predicate: Callable[[], bool], limit_s: float = 20.0, step_s: float = 0.02
) -> None:
    """Wait until a condition seen from outside (a server's counters, a file) holds."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"condition not met within {limit_s} s")
        await asyncio.sleep(step_s)


def publish_spf(dns: LabDns, domain: str = "contoso.test") -> None:
    """Let every loopback source address send as `domain` (SPF), as a healthy Direct Send
    site's domain would: tests about other things then see no SPF finding."""
    dns.add(domain, "TXT", "v=spf1 ip4:127.0.0.0/8 -all")
