"""Where a sweep's CPU goes: the benchmark's sweep run under py-spy, its samples sorted
into the parts of fleet they were spent in.

    python -m bench.profile [--sites 1000] [--shape direct] [--rate 200] [--raw FILE]

py-spy is not a dependency: `pip install py-spy` into the virtualenv first. The load lab
and the inventory are the benchmark's (bench/run.py), on loopback.
"""

from __future__ import annotations

import argparse
import collections
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.generate import PASSWORD_ENV, SHAPES, Mix
from bench.run import PASSWORD, ROOT, lab_for, write_inventory

# (part, pattern on a frame's file): the first part whose pattern matches a frame, looking
# from the innermost frame outwards, takes the sample.
LOOP = "event loop and sockets (uvloop, asyncio), outside fleet's frames"
NATIVE = "a thread without Python frames (c-ares's own thread, when it has one)"
PARTS: list[tuple[str, re.Pattern[str]]] = [
    ("start-up: imports", re.compile(r"<frozen importlib|importlib/__init__")),
    ("TLS (ssl, OpenSSL)", re.compile(r"(^|/)ssl\.py|sslproto\.py")),
    (LOOP, re.compile(r"asyncio/(runners|base_events)\.py")),
    ("inventory: YAML and validation", re.compile(r"fleet/(inventory|yaml_source)\.py|/yaml/")),
    ("plan", re.compile(r"fleet/plan\.py")),
    ("store (SQLite, site JSON)", re.compile(r"fleet/(store|changes)\.py")),
    ("reports (CSV, table, JSON)", re.compile(r"fleet/report/")),
    (
        "matrix and classification",
        re.compile(r"fleet/(matrix|classify|readiness)\.py|fleet/judgement/"),
    ),
    ("blocklists, MX, SPF (DNS)", re.compile(r"fleet/(dns|probes/(dnsbl|direct_send|spf))")),
    ("SMTP conversation (aiosmtplib, probe)", re.compile(r"aiosmtplib/|fleet/probes/smtp\.py")),
    ("egress (connect, bind, SOCKS)", re.compile(r"fleet/egress\.py")),
    ("runner (caps, site clock, results)", re.compile(r"fleet/runner\.py")),
    ("results (fleet/results.py, msgspec)", re.compile(r"fleet/results\.py|/msgspec/")),
    ("pydantic (inventory models)", re.compile(r"/pydantic")),
    ("command line", re.compile(r"fleet/cli/")),
]
FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*):\d+\)$")


def part_of(stack: list[str]) -> str:
    files = []
    for frame in stack:
        match = FRAME.match(frame)
        files.append(match.group("file") if match else frame)
    for file in reversed(files):
        for part, pattern in PARTS:
            if pattern.search(file):
                return part
    return LOOP


def summarise(raw: Path) -> list[tuple[str, int]]:
    counts: collections.Counter[str] = collections.Counter()
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, number = line.rpartition(" ")
        if not number.isdigit():
            continue
        if not stack_text.strip():
            counts[NATIVE] += int(number)
            continue
        # The outermost frame first (py-spy's raw format names no process or thread); a
        # coroutine stepped by uvloop's C code is a stack of its own, rooted at it.
        stack = stack_text.split(";")
        counts[part_of(stack)] += int(number)
    return counts.most_common()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--shape", choices=SHAPES, default="direct")
    parser.add_argument("--delay", type=float, default=0.025)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--raw", help="keep py-spy's raw samples (flamegraph input) here")
    parser.add_argument("--summarise", metavar="RAW", help="only sort the samples of a raw file")
    args = parser.parse_args()
    if args.summarise:
        show(summarise(Path(args.summarise)), f"samples of {args.summarise}")
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        sys.exit("py-spy is not installed: .venv/bin/pip install py-spy (not a dependency)")
    args.dns_loss, args.dns_delay, args.global_cap = 0.0, 0.0, 200
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # fleet byte-compiled, as installed
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "fleet")], check=True)
    mix = Mix(args.sites, 1 if args.shape == "direct" else 5, args.shape)
    with tempfile.TemporaryDirectory(prefix="fleet-profile-") as temp:
        folder = Path(temp)
        lab = lab_for(folder, mix, args, args.delay)
        try:
            path = write_inventory(folder / "inventory.yaml", mix, lab, args)
            raw = Path(args.raw) if args.raw else folder / "samples.txt"
            env = {**os.environ, PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"}
            subprocess.run(
                [
                    spy,
                    "record",
                    "-r",
                    str(args.rate),
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                    "--nonblocking",
                    "--",
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
                env=env,
                check=False,
                stdout=subprocess.DEVNULL,
            )
            parts = summarise(raw)
        finally:
            lab.stop()
    show(parts, f"py-spy, {args.rate} samples/s, {args.sites} sites ({args.shape})")


def show(parts: list[tuple[str, int]], title: str) -> None:
    total = sum(n for _, n in parts) or 1
    print(f"{title}: {total} samples")
    for part, n in parts:
        print(f"  {math.floor(n / total * 1000) / 10:5.1f} %  {part}")


if __name__ == "__main__":
    main()
