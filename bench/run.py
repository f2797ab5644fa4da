"""`make bench`: sweep generated inventories against a loopback load lab and print how
close fleet comes to the critical-path bound, and how it compares with bare aiosmtplib and
swaks; then the start-up figures (--version, --help, validate, scan against swaks).

    python -m bench.run [--sizes 100,1000] [--big] [--shape direct|mixed] [--delay 0.025]
        [--sample 200] [--dns-loss SHARE] [--dns-delay S] [--no-startup] [--turns N]

`--turns 5` runs the sweep and the bare floor five times each, taking turns (the extra
turns on a lab of their own), and prints the medians of their CPU beside the first run's
figures: on a shared machine one run moves by 0.1-0.2 ms a conversation.

`--dns-loss 0.1` is the DNS-under-load scenario: the lab's resolver drops that share of
queries at random (`--dns-delay` makes it answer late as well); the run prints the questions
dropped, asked once more and answered, and how many sites ended `unknown`.

Everything runs on 127.0.0.0/8: the load lab (two SMTP responders that wait `delay` before
every reply, and a blocklist DNS server) runs in separate processes, and the scanner runs as
`fleet sweep` in a child process whose own CPU time and peak RSS are read with wait4().
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.generate import PASSWORD_ENV, SHAPES, ZONE, Mix, inventory
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

    def __init__(
        self,
        folder: Path,
        delay: float,
        dirty: list[str],
        *,
        clients: int = 0,
        dns_loss: float = 0.0,
        dns_delay: float = 0.0,
    ) -> None:
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
        self.dns = self._start(
            [
                "dns",
                "--zone",
                ZONE,
                "--dirty",
                dirty_arg,
                "--clients",
                str(clients),
                "--lose",
                str(dns_loss),
                "--answer-delay",
                str(dns_delay),
            ],
            "dns",
        )

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


def lab_for(folder: Path, mix: Mix, args: argparse.Namespace, delay: float) -> Lab:
    return Lab(
        folder,
        delay,
        mix.dirty_ips(),
        clients=math.ceil(mix.sites / 10),
        dns_loss=args.dns_loss,
        dns_delay=args.dns_delay,
    )


def write_inventory(path: Path, mix: Mix, lab: Lab, args: argparse.Namespace) -> Path:
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
    return path


@dataclass
class Outcome:
    """What the sweep concluded, read back from its store."""

    verdicts: dict[str, int]
    blocklists_unknown: int
    dns_retries: int
    dns_retries_answered: int


def outcome(db: Path) -> Outcome:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        verdicts = dict(
            connection.execute("SELECT verdict, count(*) FROM site_results GROUP BY verdict")
        )
        unknown = 0
        for (text,) in connection.execute("SELECT result FROM site_results"):
            site = json.loads(text)
            unknown += sum(1 for b in site.get("blocklists", []) if b["status"] == "unknown")
        row = connection.execute("SELECT info FROM sweeps").fetchone()
    info = json.loads(row[0]) if row else {}
    return Outcome(
        verdicts,
        unknown,
        int(info.get("dns_retries", 0)),
        int(info.get("dns_retries_answered", 0)),
    )


def cache_in(folder: Path) -> None:
    """Validated inventories (fleet.inventory_cache) are kept in the bench's own folder, never
    the user's. plan_facts reads the inventory first, so the sweep then takes it from the
    cache, as a nightly sweep of an unchanged inventory does; the start-up figures' warm-up
    run does the same for the technician's commands."""
    os.environ["FLEET_INVENTORY_CACHE"] = str(folder / "inventory-cache")


def sweep_argv(inventory_path: Path, db: Path, csv: Path) -> list[str]:
    """The measured `fleet sweep`: every turn runs the same command line."""
    return [sys.executable, "-m", "fleet", "sweep", "-i", str(inventory_path), "--db", str(db),
            "--format", "csv", "--output", str(csv), "-q"]  # fmt: skip


def bare_argv(bare_file: Path, global_cap: int) -> list[str]:
    """The bare aiosmtplib floor over the same conversations."""
    return [sys.executable, "-m", "bench.bare", str(bare_file), str(global_cap)]


def run_size(sites: int, args: argparse.Namespace, startup_cpu: float) -> dict[str, object]:
    mix = Mix(sites, 1 if args.shape == "direct" else 5, args.shape)
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as temp:
        folder = Path(temp)
        cache_in(folder)
        lab = lab_for(folder, mix, args, args.delay)
        try:
            path = write_inventory(folder / "inventory.yaml", mix, lab, args)
            facts = plan_facts(path)
            env = {**os.environ, PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"}
            fleet = run_measured(sweep_argv(path, folder / "fleet.db", folder / "out.csv"), env)
            concluded = outcome(folder / "fleet.db")
            bare: tuple[int, Child] | None = None
            if args.bare_sample > 0:
                bare_items = bare_conversations(path, args.bare_sample)
                bare_file = folder / "bare.json"
                bare_file.write_text(json.dumps(bare_items))
                bare = (
                    len(bare_items),
                    run_measured(bare_argv(bare_file, args.global_cap), env),
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
    # the baselines' own conversations
    connections -= (bare[0] if bare else 0) + (baseline[0] if baseline else 0)
    dns = servers.get("dns", {})
    limit, how = bound(facts, args.delay, fleet.cpu_s)
    turns = None
    if args.turns > 1 and bare is not None:
        fleet_more, bare_more = more_turns(mix, args)
        turns = ([fleet.cpu_s, *fleet_more], [bare[1].cpu_s, *bare_more])
    return {
        "facts": facts,
        "fleet": fleet,
        "shape": args.shape,
        "outcome": concluded,
        "connections": connections,
        "dns": dns,
        "bound": limit,
        "how": how,
        "baseline": baseline,
        "baseline_skipped": skipped,
        "bare": bare,
        "startup_cpu": startup_cpu,
        "bare_startup": args.bare_startup,
        "turns": turns,
    }


def more_turns(mix: Mix, args: argparse.Namespace) -> tuple[list[float], list[float]]:
    """`--turns`: the sweep and the bare floor run turns - 1 more times, taking turns, on a
    lab of their own (the first lab's counts stay the first sweep's): their CPU seconds."""
    fleet_cpu: list[float] = []
    bare_cpu: list[float] = []
    with tempfile.TemporaryDirectory(prefix="fleet-bench-turns-") as temp:
        folder = Path(temp)
        cache_in(folder)
        lab = lab_for(folder, mix, args, args.delay)
        try:
            path = write_inventory(folder / "inventory.yaml", mix, lab, args)
            plan_facts(path)  # the inventory read once, as before the first turn's sweep
            env = {**os.environ, PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"}
            bare_file = folder / "bare.json"
            bare_file.write_text(json.dumps(bare_conversations(path, args.bare_sample)))
            for turn in range(1, args.turns):
                sweep = sweep_argv(path, folder / f"fleet-{turn}.db", folder / "out.csv")
                fleet_cpu.append(run_measured(sweep, env).cpu_s)
                bare_cpu.append(run_measured(bare_argv(bare_file, args.global_cap), env).cpu_s)
        finally:
            lab.stop()
    return fleet_cpu, bare_cpu


@dataclass
class Timing:
    wall_s: float  # medians of the runs
    cpu_s: float
    code: int


def median_wall(argv: list[str], env: dict[str, str], runs: int) -> Timing:
    """Median wall and CPU time of `runs` runs (the first one warms the page cache, unmeasured).
    On a machine other people load, wall time waits for a core; CPU time does not."""
    run_measured(argv, env)
    children = [run_measured(argv, env) for _ in range(runs)]
    return Timing(
        statistics.median(c.wall_s for c in children),
        statistics.median(c.cpu_s for c in children),
        children[-1].code,
    )


# A site of the lab whose copier is refused: its IP is dirty (bench/generate.py, n % 100 == 7),
# banned at RCPT by the Microsoft-like responder.
REFUSED_INDEX = 7
REFUSED_SITE = f"site-{REFUSED_INDEX}"


def startup(args: argparse.Namespace) -> None:
    """Start-up and the technician's commands, on a lab without reply delay: --version,
    --help, validate of a 1,000-site inventory, and scan of a one-copier site beside swaks
    having the same conversation: a healthy site (site-0), and a refused one (site-7, the
    lab's Microsoft "banned sending IP" at RCPT: the rescan a technician types when a copier
    fails, whose reply the classifier reads)."""
    big, small = Mix(1000, 1, "direct"), Mix(10, 1, "direct")
    assert small.kind(REFUSED_INDEX) == big.kind(REFUSED_INDEX) == "dirty-direct"
    fleet = [sys.executable, "-m", "fleet"]
    runs = args.startup_runs
    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as temp:
        folder = Path(temp)
        cache_in(folder)
        env = {**os.environ, PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"}
        lab = lab_for(folder, big, args, 0.0)
        try:
            big_path = write_inventory(folder / "big.yaml", big, lab, args)
            small_path = write_inventory(folder / "small.yaml", small, lab, args)
            figures = {
                "fleet --version": median_wall([*fleet, "--version"], env, runs),
                "fleet --help": median_wall([*fleet, "--help"], env, runs),
                "fleet validate (1,000 sites)": median_wall(
                    [*fleet, "validate", str(big_path)], env, runs
                ),
            }
            scan = [*fleet, "scan", "site-0", "--db", str(folder / "scan.db")]
            figures["fleet scan site-0 (10-site inventory)"] = median_wall(
                [*scan, "-i", str(small_path)], env, runs
            )
            figures["fleet scan site-0 (1,000-site inventory)"] = median_wall(
                [*scan, "-i", str(big_path)], env, runs
            )
            refused = [*fleet, "scan", REFUSED_SITE, "--db", str(folder / "refused.db")]
            figures[f"fleet scan {REFUSED_SITE}, refused (10-site inventory)"] = median_wall(
                [*refused, "-i", str(small_path)], env, runs
            )
            figures[f"fleet scan {REFUSED_SITE}, refused (1,000-site inventory)"] = median_wall(
                [*refused, "-i", str(big_path)], env, runs
            )
            swaks = swaks_refused = None
            if shutil.which("swaks"):
                lines = swaks_lines(small_path, REFUSED_INDEX + 1)
                swaks = median_wall(["swaks", *lines[0].split()], env, runs)
                swaks_refused = median_wall(["swaks", *lines[REFUSED_INDEX].split()], env, runs)
        finally:
            lab.stop()
    print(f"== start-up and one site (median of {runs} runs, lab without reply delay)")
    for name, timing in figures.items():
        print(
            f"  {name}: {timing.wall_s * 1000:.0f} ms wall, {timing.cpu_s * 1000:.0f} ms CPU "
            f"(exit {timing.code})"
        )
    if swaks is not None:
        print(
            f"  swaks, the same one conversation: {swaks.wall_s * 1000:.0f} ms wall, "
            f"{swaks.cpu_s * 1000:.0f} ms CPU (exit {swaks.code})"
        )
        for name in (
            "fleet scan site-0 (10-site inventory)",
            "fleet scan site-0 (1,000-site inventory)",
        ):
            wall = figures[name].wall_s / swaks.wall_s
            cpu = figures[name].cpu_s / swaks.cpu_s
            print(f"  {name} / swaks: {wall:.2f}x wall, {cpu:.2f}x CPU")
    if swaks_refused is not None:
        print(
            f"  swaks, {REFUSED_SITE}'s conversation (refused at RCPT): "
            f"{swaks_refused.wall_s * 1000:.0f} ms wall, {swaks_refused.cpu_s * 1000:.0f} ms CPU "
            f"(exit {swaks_refused.code})"
        )
        for size in ("10-site", "1,000-site"):
            name = f"fleet scan {REFUSED_SITE}, refused ({size} inventory)"
            wall = figures[name].wall_s / swaks_refused.wall_s
            cpu = figures[name].cpu_s / swaks_refused.cpu_s
            print(f"  {name} / swaks: {wall:.2f}x wall, {cpu:.2f}x CPU")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run")
    parser.add_argument("--sizes", default="100,1000", help="site counts, comma separated")
    parser.add_argument("--big", action="store_true", help="also 10,000 sites")
    parser.add_argument(
        "--shape",
        choices=SHAPES,
        default="direct",
        help="direct: one Direct Send copier per site; mixed: 5 copiers, mostly submission",
    )
    parser.add_argument(
        "--delay", type=float, default=0.025, help="seconds added to every SMTP reply"
    )
    parser.add_argument("--sample", type=int, default=200, help="swaks baseline sample (0: skip)")
    parser.add_argument("--global-cap", type=int, default=200)
    parser.add_argument(
        "--bare-sample", type=int, default=2000, help="bare aiosmtplib conversations (0: skip)"
    )
    parser.add_argument("--dns-loss", type=float, default=0.0, help="share of DNS queries lost")
    parser.add_argument("--dns-delay", type=float, default=0.0, help="seconds before DNS answers")
    parser.add_argument("--no-startup", action="store_true", help="skip the start-up figures")
    parser.add_argument("--startup-runs", type=int, default=7)
    parser.add_argument(
        "--turns",
        type=int,
        default=1,
        help="run the sweep and the bare floor this many times, taking turns, and give the "
        "medians of their CPU as well (a shared machine's load then falls on both alike)",
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    if args.big and 10000 not in sizes:
        sizes.append(10000)
    # fleet as an installed package runs: its modules byte-compiled once (an environment with
    # PYTHONDONTWRITEBYTECODE would have every run compile them from source again).
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "fleet")], check=True)
    startup_run = run_measured([sys.executable, "-m", "fleet", "--version"], dict(os.environ))
    bare_startup = run_measured(
        [sys.executable, "-c", "import aiosmtplib, asyncio, ssl, json, uvloop"], dict(os.environ)
    )
    args.bare_startup = bare_startup.cpu_s
    print(
        f"fleet benchmark: {platform.node()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"shape {args.shape}, reply delay {args.delay * 1000:.0f} ms, global cap {args.global_cap}, "
        f"per-site cap 2 (the generated inventory's), DNS loss {args.dns_loss:.0%}, "
        f"DNS answer delay {args.dns_delay * 1000:.0f} ms"
    )
    print(f"(scanner start-up alone: {startup_run.cpu_s * 1000:.0f} ms CPU, included below)\n")
    if not args.no_startup:
        startup(args)
    for sites in sizes:
        result = run_size(sites, args, startup_run.cpu_s)
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
    shape = str(r["shape"])
    copiers = "one Direct Send copier each" if shape == "direct" else "5 copiers each (mixed)"
    print(f"== {sites} sites, {copiers} (exit {fleet.code})")
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
    concluded = r["outcome"]
    assert isinstance(concluded, Outcome)
    verdicts = ", ".join(f"{k} {v}" for k, v in sorted(concluded.verdicts.items()))
    print(
        f"  verdicts: {verdicts}; blocklist lookups unknown: {concluded.blocklists_unknown}; "
        f"DNS questions asked again after a timeout: {concluded.dns_retries} "
        f"(answered in the end: {concluded.dns_retries_answered}); lab resolver dropped "
        f"{dns.get('dropped', 0)} queries, at most {dns.get('max_in_flight', '?')} in flight"
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
    turns = r.get("turns")
    bare_run = r["bare"]
    if isinstance(turns, tuple) and isinstance(bare_run, tuple):
        fleet_cpu, bare_cpu = turns
        count = bare_run[0]
        fleet_ms = [c / max(facts.conversations, 1) * 1000 for c in fleet_cpu]
        bare_ms = [c / count * 1000 for c in bare_cpu]
        fleet_med, bare_med = statistics.median(fleet_ms), statistics.median(bare_ms)
        print(
            f"  over {len(fleet_ms)} turns, fleet and the floor taking turns (CPU per "
            f"conversation, each whole process, start-up included): fleet {fleet_med:.2f} ms "
            f"(median; {', '.join(f'{m:.2f}' for m in fleet_ms)}), bare aiosmtplib "
            f"{bare_med:.2f} ms (median; {', '.join(f'{m:.2f}' for m in bare_ms)}): "
            f"{fleet_med / bare_med:.2f}x"
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
