"""A sweep's CPU, two commits side by side: each commit's `fleet/` is exported and run with
this venv (`fleet sweep` of the bench's inventory, stored, CSV), taking turns run by run with
bare aiosmtplib on the same conversations, so that the machine's load falls on all alike.
CPU time comes from wait4(); the first round is a warm-up (it byte-compiles), not counted.

    python -m bench.sweep_ab --before main --after HEAD [--sites 1000] [--runs 5]
        [--phase all|sweep]

The lab is the bench's own (25 ms before every reply), the inventory the default shape:
one Direct Send copier per site. `--phase sweep` times only the sweep and its CSV, in
process (bench.sweep_cpu: start-up and inventory loading left out, which takes their noise
out of a comparison of the sweep's own work); the bare floor is still the whole process.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.generate import PASSWORD_ENV, Mix
from bench.run import PASSWORD, bare_argv, bare_conversations, lab_for, sweep_argv, write_inventory
from bench.startup_ab import export


def cpu_of(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    process = subprocess.Popen(
        argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) not in (0, 1, 2):
        raise SystemExit(f"{' '.join(argv)} failed")
    return usage.ru_utime + usage.ru_stime


def sweep_cpu_of(argv: list[str], env: dict[str, str], cwd: Path) -> float:
    """The CPU seconds bench.sweep_cpu prints for its sweep."""
    done = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {done.stderr[-2000:]}")
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="a commit")
    parser.add_argument("--after", default="HEAD", help="a commit")
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--phase",
        choices=("all", "sweep"),
        default="all",
        help="all: the whole `fleet sweep` process; sweep: the sweep and its CSV alone",
    )
    args = parser.parse_args()
    lab_args = argparse.Namespace(dns_loss=0.0, dns_delay=0.0, global_cap=200, shape="direct")
    mix = Mix(args.sites, 1, "direct")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    }
    env.update({PASSWORD_ENV: PASSWORD, "NO_COLOR": "1"})
    with tempfile.TemporaryDirectory(prefix="fleet-sweep-ab-") as temp:
        folder = Path(temp)
        trees = {
            name: export(commit, folder / name)
            for name, commit in (("before", args.before), ("after", args.after))
        }
        lab = lab_for(folder, mix, lab_args, 0.025)
        try:
            path = write_inventory(folder / "inventory.yaml", mix, lab, lab_args)
            bare_file = folder / "bare.json"
            bare_file.write_text(json.dumps(bare_conversations(path, args.sites)))
            cpu: dict[str, list[float]] = {"bare": [], **{name: [] for name in trees}}
            started = time.strftime("%H:%M UTC", time.gmtime())
            print(
                f"before {args.before}, after {args.after}, {args.sites} sites, {started}, "
                f"phase {args.phase}"
            )
            print(f"load average {os.getloadavg()[0]:.1f}")
            bare = bare_argv(bare_file, 200)
            for turn in range(args.runs + 1):
                for name, tree in trees.items():
                    db = folder / f"{name}-{turn}.db"
                    out = str(folder / "out.csv")
                    if args.phase == "sweep":
                        # fleet from the tree (the working directory), bench from here
                        argv = [sys.executable, "-m", "bench.sweep_cpu", str(path), str(db), out]
                        child_env = {**env, "PYTHONPATH": str(Path.cwd())}
                        seconds = sweep_cpu_of(argv, child_env, tree)
                    else:
                        argv = sweep_argv(path, db, Path(out))
                        seconds = cpu_of(argv, {**env, "PYTHONPATH": str(tree)}, tree.parent)
                    if turn:
                        cpu[name].append(seconds)
                seconds = cpu_of(bare, {**env, "PYTHONPATH": str(Path.cwd())}, Path.cwd())
                if turn:
                    cpu["bare"].append(seconds)
            for name, times in cpu.items():
                per = [t / args.sites * 1000 for t in times]
                print(
                    f"  {name}: {statistics.median(per):.2f} ms CPU per conversation (median; "
                    f"{', '.join(f'{p:.2f}' for p in per)})"
                )
            bare_ms = statistics.median(cpu["bare"]) / args.sites * 1000
            for name in trees:
                ratio = statistics.median(cpu[name]) / args.sites * 1000 / bare_ms
                print(f"  {name} / bare: {ratio:.2f}x")
            print(f"load average {os.getloadavg()[0]:.1f}")
        finally:
            lab.stop()


if __name__ == "__main__":
    main()
