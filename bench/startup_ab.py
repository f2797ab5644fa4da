"""Start-up of the technician's commands, two commits side by side: each commit's `fleet/`
is exported to a folder and run with this venv, the commits taking turns run by run so that
the machine's load falls on both alike. CPU time comes from wait4(); the first run of each
is a warm-up (it byte-compiles) and is not counted.

    python -m bench.startup_ab --before 480f2fa --after HEAD [--runs 11]

The lab is the bench's own, without reply delay; the commands are those of `bench.run`'s
start-up figures: scan of site-0 from a 10-site and a 1,000-site inventory, of the refused
site-7 from the 10-site one, validate of the 1,000-site inventory, --version; each tree
keeps its own cache of validated inventories (fleet.inventory_cache) from run to run, as a
technician's machine does. The scans and the validate are measured again as the first
command after the inventory was edited (a new, empty cache folder for every run), unless
--quick.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

from bench.generate import PASSWORD_ENV, Mix
from bench.run import PASSWORD, REFUSED_SITE, ROOT, lab_for, write_inventory


def export(commit: str, folder: Path) -> Path:
    """The commit's fleet/ package, unpacked into folder (importable from there)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", commit, "fleet"], capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(folder, filter="data")
    return folder


def measure(
    trees: dict[str, Path], argv: list[str], runs: int, cache: str, codes: tuple[int, ...] = (0,)
) -> dict[str, list[float]]:
    """CPU seconds of each run of `python -m fleet ARGV` per tree, the trees taking turns.
    `cache` is FLEET_INVENTORY_CACHE for the runs: a folder of each tree's own (kept from
    run to run, as a technician's is), `off`, or `fresh` (an empty folder for every run: the
    first command after the inventory was edited, which validates and writes the entry)."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    env.update({PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"})
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    for turn in range(runs + 1):
        for name, tree in trees.items():
            folder = {"off": "off", "fresh": tempfile.mkdtemp(dir=tree.parent)}.get(
                cache, str(tree.parent / f"cache-{name}")
            )
            # cwd outside the worktree: `-m` puts the cwd first on sys.path
            process = subprocess.Popen(
                [sys.executable, "-m", "fleet", *argv],
                cwd=tree.parent,
                env={**env, "PYTHONPATH": str(tree), "FLEET_INVENTORY_CACHE": folder},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _, status, usage = os.wait4(process.pid, 0)
            if os.waitstatus_to_exitcode(status) not in codes:
                raise SystemExit(f"{name}: fleet {' '.join(argv)} failed")
            if turn:
                cpu[name].append(usage.ru_utime + usage.ru_stime)
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a commit")
    parser.add_argument("--after", default="HEAD", help="a commit")
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument(
        "--quick", action="store_true", help="skip the runs after an edit of the inventory"
    )
    args = parser.parse_args()
    lab_args = argparse.Namespace(dns_loss=0.0, dns_delay=0.0, global_cap=200, shape="direct")
    big, small = Mix(1000, 1, "direct"), Mix(10, 1, "direct")
    with tempfile.TemporaryDirectory(prefix="fleet-ab-") as temp:
        folder = Path(temp)
        trees = {
            name: export(commit, folder / name)
            for name, commit in (("before", args.before), ("after", args.after))
        }
        lab = lab_for(folder, big, lab_args, 0.0)
        try:
            big_path = write_inventory(folder / "big.yaml", big, lab, lab_args)
            small_path = write_inventory(folder / "small.yaml", small, lab, lab_args)
            db = str(folder / "scan.db")
            scan_small = ["scan", "site-0", "-i", str(small_path), "--db", db]
            scan_big = ["scan", "site-0", "-i", str(big_path), "--db", db]
            # the lab's refused site (bench.run): its reply is read, and the scan exits 2
            scan_refused = ["scan", REFUSED_SITE, "-i", str(small_path), "--db", db]
            # (label, argv, FLEET_INVENTORY_CACHE: see measure)
            commands = [
                ("fleet scan site-0 (10-site inventory)", scan_small, "kept"),
                ("fleet scan site-0 (1,000-site inventory)", scan_big, "kept"),
                (f"fleet scan {REFUSED_SITE}, refused (10-site inventory)", scan_refused, "kept"),
                ("fleet validate (1,000 sites)", ["validate", str(big_path)], "kept"),
                ("fleet --version", ["--version"], "kept"),
                ("fleet scan site-0 (10-site inventory), just edited", scan_small, "fresh"),
                ("fleet scan site-0 (1,000-site inventory), just edited", scan_big, "fresh"),
                ("fleet validate (1,000 sites), just edited", ["validate", str(big_path)], "fresh"),
            ]
            started = time.strftime("%H:%M UTC", time.gmtime())
            print(f"before {args.before}, after {args.after}, {args.runs} runs each, {started}")
            print(f"load average {os.getloadavg()[0]:.1f}")
            for label, argv, cache in commands:
                if args.quick and cache == "fresh":
                    continue
                codes = (2,) if argv is scan_refused else (0,)
                cpu = measure(trees, argv, args.runs, cache, codes)
                shown = ", ".join(
                    f"{name} {statistics.median(times) * 1000:.0f} ms"
                    f" ({min(times) * 1000:.0f}-{max(times) * 1000:.0f})"
                    for name, times in cpu.items()
                )
                print(f"  {label}: CPU median {shown}")
            print(f"load average {os.getloadavg()[0]:.1f}")
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
