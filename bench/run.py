"""`make bench`: sweep generated inventories against a loopback load lab and print how
close fleet comes to the critical-path bound, and how it compares with swaks.

    python -m bench.run [--sizes 100,1000] [--big] [--delay 0.025] [--sample 200]

Everything runs on 127.0.0.0/8: the load lab (two SMTP responders that wait `delay` before
every reply, and a blocklist DNS server) runs in separate processes, and the scanner runs as
`fleet sweep` in a child process whose own CPU time and peak RSS are read with wait4().
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.generate import PASSWORD_ENV, ZONE, Mix, inventory
from fleet.inventory import load_inventory
from fleet.plan import plan_sweep
from fleet.results import Security

PASSWORD = "bench-password-not-a-secret"  # noqa: S105 - the load lab's test mailbox
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Child:
    wall_s: float
    cpu_s: float
    max_rss_mb: float
    code: int


def run_measured(argv: list[str], env: dict[str, str], stdin: str | None = None) -> Child:
    """Run a command; its own (and its waited-for children's) CPU and peak RSS via wait4."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        env=env,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    if stdin is not None:
        assert process.stdin is not None
        process.stdin.write(stdin)
        process.stdin.close()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    errors = process.stderr.read()
    if process.returncode not in (0, 1, 2, 123) and errors:
        print(errors[-2000:], file=sys.stderr)
    return Child(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, process.returncode)


class Lab:
    """The load lab's processes: two SMTP responders and the DNS server."""

    def __init__(self, folder: Path, delay: float, dirty: list[str]) -> None:
        self.folder = folder
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        dirty_arg = ",".join(dirty)
        self.mx = self._start(
            [
                "smtp",
                "--role",
                "mx",
                "--delay",
                str(delay),
                "--dirty",
                dirty_arg,
                "--folder",
                str(folder / "certs-mx"),
            ],
            "mx",
        )
        self.submission = self._start(
            [
                "smtp",
                "--role",
                "submission",
                "--delay",
                str(delay),
                "--folder",
                str(folder / "certs-submission"),
            ],
            "submission",
        )
        self.dns = self._start(["dns", "--zone", ZONE, "--dirty", dirty_arg], "dns")

    def _start(self, args: list[str], name: str) -> dict[str, object]:
        ready = self.folder / f"{name}.json"
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.servers", *args, "--ready", str(ready)], cwd=ROOT
        )
        self.processes.append((process, ready))
        for _ in range(400):
            if ready.exists() and ready.stat().st_size:
                return dict(json.loads(ready.read_text()))
            time.sleep(0.025)
        raise RuntimeError(f"the load lab's {name} server did not start")

    def stop(self) -> dict[str, dict[str, int]]:
        stats = {}
        for process, ready in self.processes:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=20)
            path = ready.with_suffix(".stats")
            if path.exists():
                stats[ready.stem] = json.loads(path.read_text())
        return stats


@dataclass
class PlanFacts:
    sites: int
    devices: int
    conversations: int
    round_trips: int  # delayed replies over all conversations, from each one's settings
    global_cap: int
    waves_global: int  # conversations / the global cap
    waves_site: int  # the busiest site's conversations / its per-site cap
    declared_ips: int
    zones: int

    @property
    def waves(self) -> int:
        return max(self.waves_global, self.waves_site)


def round_trips(username: str | None, starttls: bool) -> int:
    """Replies the responder delays in one conversation: banner, EHLO, MAIL, RCPT, RSET,
    QUIT; with STARTTLS also its reply and the second EHLO; with a login, AUTH LOGIN's 334
    and 235. The TLS handshake itself is not delayed."""
    return 6 + (2 if starttls else 0) + (2 if username else 0)


def plan_facts(path: Path) -> PlanFacts:
    plan = plan_sweep(load_inventory(str(path)))
    cap = plan.inventory.defaults.concurrency.global_
    conversations = [c for s in plan.sites for c in s.conversations]
    trips = sum(
        round_trips(c.spec.username, c.spec.security is Security.starttls) for c in conversations
    )
    return PlanFacts(
        sites=len(plan.sites),
        devices=sum(len(s.site.devices) for s in plan.sites),
        conversations=len(conversations),
        round_trips=trips,
        global_cap=cap,
        waves_global=math.ceil(len(conversations) / cap),
        waves_site=max(
            (math.ceil(len(s.conversations) / s.per_site) for s in plan.sites), default=0
        ),
        declared_ips=len({s.declared_ip for s in plan.sites}),
        zones=len(plan.zones),
    )


def bound(facts: PlanFacts, delay: float, cpu_s: float) -> tuple[float, str]:
    """The critical path, as the issue defines it: round trips per conversation x the
    injected delay x the waves the per-site and global caps force, or the scanner's own
    measured CPU time (one event loop, one core), whichever is larger."""
    per_conversation = facts.round_trips / max(facts.conversations, 1)
    network = per_conversation * delay * facts.waves
    text = (
        f"network: {per_conversation:.2f} round trips per conversation (mean over the plan) x "
        f"{delay * 1000:.0f} ms x {facts.waves} waves (global cap {facts.global_cap}: "
        f"{facts.waves_global}; per-site cap: {facts.waves_site}) = {network:.2f} s; "
        f"scanner CPU floor {cpu_s:.2f} s"
    )
    return max(network, cpu_s), text


def bare_conversations(path: Path, sample: int) -> list[dict[str, object]]:
    """The plan's first `sample` distinct conversations, as bench.bare takes them."""
    plan = plan_sweep(load_inventory(str(path)))
    out: list[dict[str, object]] = []
    for site_plan in plan.sites:
        for planned in site_plan.conversations:
            spec = planned.spec
            out.append(
                {
                    "host": spec.host,
                    "port": spec.port,
                    "ca_file": spec.ca_file,
                    "ehlo": spec.ehlo_name,
                    "bind": site_plan.site.egress.bind,
                    "from": spec.mail_from,
                    "to": spec.rcpt_to,
                    "username": spec.username,
                    "password": PASSWORD if spec.username else None,
                }
            )
            if len(out) >= sample:
                return out
    return out


def swaks_lines(path: Path, sample: int) -> list[str]:
    """swaks argument lines for a sample of the plan's distinct conversations."""
    plan = plan_sweep(load_inventory(str(path)))
    lines = []
    for site_plan in plan.sites:
        for planned in site_plan.conversations:
            spec = planned.spec
            args = [
                "--server",
                "127.0.0.1",
                "--port",
                str(spec.port),
                "--from",
                spec.mail_from,
                "--to",
                spec.rcpt_to,
                "--ehlo",
                spec.ehlo_name,
                "--tls",
                "--quit-after",
                "RCPT",
                "--hide-all",
                "--local-interface",
                str(site_plan.site.egress.bind),
            ]
            if spec.username:
                args += [
                    "--auth",
                    "LOGIN",
                    "--auth-user",
                    spec.username,
                    "--auth-password",
                    PASSWORD,
                ]
            lines.append(" ".join(args))
            if len(lines) >= sample:
                return lines
    return lines


def run_size(sites: int, args: argparse.Namespace, startup_cpu: float) -> dict[str, object]:
    mix = Mix(sites, 5)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as temp:
        folder = Path(temp)
        lab = Lab(folder, args.delay, mix.dirty_ips())
        try:
            path = folder / "inventory.yaml"
            path.write_text(
                inventory(
                    mix,
                    mx_port=int(str(lab.mx["port"])),
                    submission_port=int(str(lab.submission["port"])),
                    mx_ca=str(lab.mx["ca_file"]),
                    submission_ca=str(lab.submission["ca_file"]),
                    nameserver=f"127.0.0.1:{lab.dns['dns']}",
                    global_cap=args.global_cap,
                )
            )
            facts = plan_facts(path)
            env = {**os.environ, PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"}
            fleet = run_measured(
                [
                    sys.executable,
                    "-m",
                    "fleet",
                    "sweep",
                    "-i",
                    str(path),
                    "--db",
                    str(folder / "fleet.db"),
                    "--format",
                    "csv",
                    "--output",
                    str(folder / "out.csv"),
                    "-q",
                ],
                env,
            )
            bare_items = bare_conversations(path, args.bare_sample)
            bare_file = folder / "bare.json"
            bare_file.write_text(json.dumps(bare_items))
            bare = (
                len(bare_items),
                run_measured(
                    [sys.executable, "-m", "bench.bare", str(bare_file), str(args.global_cap)], env
                ),
            )
            baseline = None
            skipped = (
                "--sample 0"
                if args.sample <= 0
                else "swaks is not installed: apt-get install swaks"
                if not shutil.which("swaks")
                else ""
            )
            if not skipped:
                lines = swaks_lines(path, args.sample)
                baseline = (
                    len(lines),
                    run_measured(
                        ["xargs", "-P", str(args.global_cap), "-L", "1", "swaks"],
                        env,
                        stdin="\n".join(lines) + "\n",
                    ),
                )
        finally:
            servers = lab.stop()
    connections = servers.get("mx", {}).get("connections", 0) + servers.get("submission", {}).get(
        "connections", 0
    )
    connections -= bare[0] + (baseline[0] if baseline else 0)  # the baselines' own conversations
    dns = servers.get("dns", {})
    limit, how = bound(facts, args.delay, fleet.cpu_s)
    return {
        "facts": facts,
        "fleet": fleet,
        "connections": connections,
        "dns": dns,
        "bound": limit,
        "how": how,
        "baseline": baseline,
        "baseline_skipped": skipped,
        "bare": bare,
        "startup_cpu": startup_cpu,
        "bare_startup": args.bare_startup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--sizes", default="100,1000", help="site counts, comma separated")
    parser.add_argument("--big", action="store_true", help="also 10,000 sites")
    parser.add_argument(
        "--delay", type=float, default=0.025, help="seconds added to every SMTP reply"
    )
    parser.add_argument("--sample", type=int, default=200, help="swaks baseline sample (0: skip)")
    parser.add_argument("--global-cap", type=int, default=200)
    parser.add_argument(
        "--bare-sample", type=int, default=2000, help="bare aiosmtplib conversations"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.big and 10000 not in sizes:
        sizes.append(10000)
    startup = run_measured([sys.executable, "-m", "fleet", "--version"], dict(os.environ))
    bare_startup = run_measured(
        [sys.executable, "-c", "import aiosmtplib, asyncio, ssl, json"], dict(os.environ)
    )
    args.bare_startup = bare_startup.cpu_s
    print(
        f"fleet benchmark: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"reply delay {args.delay * 1000:.0f} ms, global cap {args.global_cap}, per-site cap 2 "
        "(the generated inventory's)"
    )
    print(f"(scanner start-up alone: {startup.cpu_s * 1000:.0f} ms CPU, included below)\n")
    for sites in sizes:
        result = run_size(sites, args, startup.cpu_s)
        report(sites, result)


def report(sites: int, r: dict[str, object]) -> None:
    facts = r["facts"]
    fleet = r["fleet"]
    assert isinstance(facts, PlanFacts)
    assert isinstance(fleet, Child)
    dns = r["dns"]
    assert isinstance(dns, dict)
    per_conv = fleet.cpu_s / max(facts.conversations, 1) * 1000
    bound_s = float(str(r["bound"]))
    print(f"== {sites} sites x 5 copiers (exit {fleet.code})")
    pairs = facts.declared_ips * facts.zones
    low, high = dns.get("min_per_name", "?"), dns.get("max_per_name", "?")
    each = "each asked exactly once" if low == high == 1 else f"each asked {low} to {high} times"
    print(
        f"  sites {facts.sites}, devices {facts.devices}, distinct conversations {facts.conversations} "
        f"(made: {r['connections']}), blocklist lookups made {dns.get('lookups', '?')} for "
        f"{pairs} (ip, zone) pairs, {each} (DNS queries received in all: {dns.get('queries', '?')})"
    )
    print(
        f"  wall {fleet.wall_s:.2f} s, scanner CPU {fleet.cpu_s:.2f} s ({per_conv:.2f} ms per conversation), "
        f"peak RSS {fleet.max_rss_mb:.0f} MB"
    )
    bare = r["bare"]
    if isinstance(bare, tuple):
        count, child = bare
        assert isinstance(child, Child)
        if child.code != 0:  # a crash part-way: no floor to speak of
            print(f"  bare aiosmtplib: no figure (bench.bare exited {child.code})")
        else:
            floor = (child.cpu_s - float(str(r["bare_startup"]))) / count * 1000
            steady = (
                (fleet.cpu_s - float(str(r["startup_cpu"]))) / max(facts.conversations, 1) * 1000
            )
            print(
                f"  bare aiosmtplib on the same conversations and lab: {floor:.2f} ms CPU per "
                f"conversation; fleet without its start-up: {steady:.2f} ms; fleet's own share "
                f"{steady - floor:.2f} ms ({steady / floor:.2f}x the floor)"
            )
    print(f"  bound {bound_s:.2f} s = max({r['how']})")
    print(f"  wall / bound = {fleet.wall_s / bound_s:.2f}")
    baseline = r["baseline"]
    if isinstance(baseline, tuple):
        sample, swaks = baseline
        assert isinstance(swaks, Child)
        swaks_cpu = swaks.cpu_s / sample * 1000
        swaks_wall = swaks.wall_s / sample * facts.conversations
        print(
            f"  swaks baseline: {sample} conversations in {swaks.wall_s:.2f} s wall, {swaks_cpu:.1f} ms CPU each; "
            f"extrapolated to {facts.conversations}: {swaks_wall:.1f} s wall"
        )
        print(
            f"  fleet vs swaks: {swaks_wall / fleet.wall_s:.1f}x faster wall, {swaks_cpu / per_conv:.0f}x less CPU "
            "per conversation"
        )
    else:
        print(f"  swaks baseline: skipped ({r['baseline_skipped']})")
    print()


if __name__ == "__main__":
    main()
