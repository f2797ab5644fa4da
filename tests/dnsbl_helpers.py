"""Helpers for the blocklist tests: rbldnsd on loopback (started and stopped by PID),
zones built the way the inventory builds them, and a probe on a chosen resolver."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.dns import Dns
from fleet.inventory import BlocklistZone
from fleet.inventory_models import validate
from fleet.plan import zones_from_inventory
from fleet.probes.dnsbl import BlocklistProbe
from fleet.probes.dnsbl_zones import Zone
from fleet.results import BlocklistResult, BlocklistStatus

TIMEOUT_S = 0.3  # per DNS attempt in these tests: small, so faults cost little time


def zone(zone_name: str | None = "zen.lab.test", kind: str = "spamhaus-zen", **extra: Any) -> Zone:
    """A zone exactly as `zones_from_inventory` makes it from an inventory entry."""
    entry: dict[str, Any] = {"kind": kind, **extra}
    if zone_name is not None:
        entry["zone"] = zone_name
    return zones_from_inventory([validate(BlocklistZone, entry)])[0]


@asynccontextmanager
async def probe_on(
    nameservers: str | list[str],
    *zones: Zone,
    timeout_s: float = TIMEOUT_S,
    tries: int = 1,
    concurrency: int = 100,
) -> AsyncIterator[BlocklistProbe]:
    """A probe (one sweep's worth of caching) on its own resolver, closed afterwards."""
    servers = [nameservers] if isinstance(nameservers, str) else nameservers
    dns = Dns(servers, timeout_s=timeout_s, tries=tries, concurrency=concurrency)
    try:
        yield BlocklistProbe(dns, list(zones))
    finally:
        await dns.close()


def assert_unknown(result: BlocklistResult, *words: str) -> None:
    """`unknown` with its reason, and nothing that would make it read as listed or clean."""
    assert result.status is BlocklistStatus.unknown, result
    assert result.severity is None
    assert result.lists == []
    assert result.meaning is None
    assert result.reason is None
    assert result.delist is None
    assert result.detail, "an unknown result must say why"
    for word in words:
        assert word in result.detail, (word, result.detail)


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class Rbldnsd:
    """One rbldnsd in the foreground on 127.0.0.1; its zone files live in `folder`."""

    binary: str
    folder: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    zones: list[str] = field(default_factory=list)

    @property
    def nameserver(self) -> str:
        return f"127.0.0.1:{self.port}"

    def write(self, filename: str, text: str) -> Path:
        """Write a zone file readable by user rbldns; a later mtime makes -c reload it."""
        path = self.folder / filename
        before = path.stat().st_mtime if path.exists() else 0.0
        staging = path.with_suffix(".new")
        staging.write_text(text, encoding="utf-8")
        staging.chmod(0o644)
        # rbldnsd compares whole-second mtimes: make sure a rewrite is seen as newer.
        newer = max(time.time(), before + 2)
        os.utime(staging, (newer, newer))
        staging.replace(path)
        return path

    def start(self, *zone_specs: str) -> Rbldnsd:
        """Start with `name:type:file[,file]` specs (files relative to `folder`)."""
        specs = []
        for spec in zone_specs:
            name, kind, files = spec.split(":", 2)
            paths = ",".join(str(self.folder / f) for f in files.split(","))
            specs.append(f"{name}:{kind}:{paths}")
        self.port = free_udp_port()
        log = (self.folder / "rbldnsd.log").open("wb")
        # -n: foreground (we stop it by PID); -c 1s: re-read changed zone files every second.
        self.process = subprocess.Popen(
            [self.binary, "-n", "-b", f"127.0.0.1/{self.port}", "-c", "1s", *specs],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 10
        while "started" not in self.output():
            if self.process.poll() is not None:
                raise RuntimeError(f"rbldnsd exited at start:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"rbldnsd did not start:\n{self.output()}")
            time.sleep(0.01)
        return self

    def output(self) -> str:
        return (self.folder / "rbldnsd.log").read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None


def rbldnsd_folder() -> Path:
    """A folder user rbldns can read (pytest's tmp_path is private to root)."""
    folder = Path(tempfile.mkdtemp(prefix="fleet-rbldnsd-"))
    folder.chmod(0o755)
    return folder


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
