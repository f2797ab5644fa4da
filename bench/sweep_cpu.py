"""One sweep's own CPU, in process: the inventory loaded and planned first (not counted),
then the sweep (stored) and its CSV, as `fleet sweep --format csv` runs them, timed with
the process's CPU clock. Start-up and inventory loading are left out, so two commits'
sweeps compare with less noise than whole runs do.

    python -m bench.sweep_cpu INVENTORY DB CSV

Run by `bench.sweep_ab --phase sweep` from an exported tree (its `fleet/` is imported);
prints the CPU seconds.
"""

from __future__ import annotations

import sys
import time


def main() -> None:
    inventory, db, csv_path = sys.argv[1:4]
    from fleet.cli.app import run_async
    from fleet.cli.output import emit
    from fleet.inventory import load_inventory
    from fleet.pipeline import opened_store, sweep
    from fleet.plan import plan_sweep

    plan = plan_sweep(load_inventory(inventory))

    async def swept() -> None:
        with opened_store(db) as store:
            result = await sweep(plan, store, light=True)
            emit(result.result, "csv", csv_path, detail=False, per_site=False, store=store)

    started = time.process_time()
    run_async(swept())
    print(f"{time.process_time() - started:.6f}")


if __name__ == "__main__":
    main()
