"""fleet.pipeline: one sweep end to end (plan -> run -> store -> changes -> view), the same
for every command, run here in-process against the demo lab on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from fleet.agent import SiteKeys, seal
from fleet.errors import IngestError, PreflightError, StoreError
from fleet.inventory import load_inventory
from fleet.lab.demo import DEMO_SECRETS, DemoLab
from fleet.pipeline import (
    Execute,
    Outbox,
    Published,
    check_ready,
    chosen_sweep,
    difference,
    ingest,
    opened_store,
    plan_for,
    publish,
    run_sweep,
    sweep,
)
from fleet.plan import SweepPlan
from fleet.push import Spool, results_url
from fleet.report.csv_report import render_csv
from fleet.report.table import render_table
from fleet.results import SweepResult, SweepView, Verdict
from fleet.runner import SweepOptions

from .inventory_builder import InventoryBuilder, device


@pytest.fixture
async def demo_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Path]:
    # The demo sets its secrets in the environment: through monkeypatch, so they leave with
    # the test.
    for key, value in DEMO_SECRETS.items():
        monkeypatch.setenv(key, value)
    lab = DemoLab(tmp_path / "lab")
    (tmp_path / "lab").mkdir()
    path = await lab.start()
    try:
        yield path
    finally:
        await lab.stop()


async def test_a_stored_sweep_is_read_back_as_a_view_and_the_next_one_has_changes_measured(
    demo_inventory: Path, tmp_path: Path
) -> None:
    # Given the demo's five sites and an empty store
    plan = plan_for(load_inventory(str(demo_inventory)))
    db = str(tmp_path / "fleet.db")
    seen: list[str] = []

    # When two sweeps go through the pipeline into the store
    with opened_store(db, lock="test") as store:
        first = await sweep(plan, store, on_site=lambda site: seen.append(site.site))
        second = await sweep(plan, store)
        found = difference(store, None, None)
        last = chosen_sweep(store, None)

        # Then each site was reported as it finished, and each sweep is a view of the store
        assert sorted(seen) == sorted(sp.site.id for sp in plan.sites)
        assert isinstance(first.result, SweepView)
        assert first.unstored is None
        assert first.result.site_count == 5
        verdicts = {site.site: site.verdict for site in first.result.sites}
        assert verdicts["contoso-hq"] is Verdict.critical
        assert verdicts["fabrikam"] is Verdict.ok
        # ...and the second is compared with the first: the lab did not change, nor did they
        assert last == second.result.sweep.id
        assert found.newer.id == second.result.sweep.id
        assert found.previous == first.result.sweep.id
        assert found.changes == []


async def test_without_a_store_the_result_is_held_in_memory(demo_inventory: Path) -> None:
    plan = plan_for(load_inventory(str(demo_inventory)), site_ids=["fabrikam"])
    swept = await sweep(plan, None)
    assert isinstance(swept.result, SweepResult)
    assert [site.site for site in swept.result.sites] == ["fabrikam"]


async def test_the_runner_is_a_seam_and_gets_the_plan_and_the_store_hooks(
    demo_inventory: Path, tmp_path: Path
) -> None:
    # Given a runner of our own that records what the pipeline hands it
    plan = plan_for(load_inventory(str(demo_inventory)), site_ids=["tailspin"])
    calls: list[tuple[SweepPlan, bool, bool]] = []

    async def execute(plan: SweepPlan, options: SweepOptions) -> SweepResult:
        calls.append((plan, options.on_start is not None, options.retain is not None))
        return await run_sweep(plan, options)

    runner: Execute = execute
    # When the pipeline sweeps into a store with it
    with opened_store(str(tmp_path / "fleet.db")) as store:
        swept = await sweep(plan, store, execute=runner)
        # Then it ran the plan once, with the store's hooks, and the site went into the store
        assert calls == [(plan, True, True)]
        assert [site.site for site in store.view(swept.result.sweep.id).sites] == ["tailspin"]


def test_a_missing_secret_stops_the_sweep_before_anything_is_sent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEET_TEST_PIPELINE_PASSWORD", raising=False)
    login = {"username": "scanner@contoso.test", "password_env": "FLEET_TEST_PIPELINE_PASSWORD"}
    inventory = InventoryBuilder().site("hq", device(2525, auth=login)).write(tmp_path / "inv.yaml")
    plan = plan_for(load_inventory(str(inventory)))
    with pytest.raises(PreflightError) as caught:
        check_ready(plan)
    assert len(caught.value.problems) == 1
    assert "FLEET_TEST_PIPELINE_PASSWORD" in caught.value.problems[0]


def test_a_store_locked_by_another_sweep_is_a_store_error(tmp_path: Path) -> None:
    db = str(tmp_path / "fleet.db")
    with opened_store(db, lock="fleet sweep"), pytest.raises(StoreError, match="already using"):
        with opened_store(db, lock="fleet sweep"):
            pass


def test_an_empty_store_has_no_sweep_to_choose(tmp_path: Path) -> None:
    with opened_store(str(tmp_path / "fleet.db")) as store:
        with pytest.raises(StoreError, match="holds no sweep yet"):
            chosen_sweep(store, None)


async def test_an_agent_result_is_ingested_once(demo_inventory: Path, tmp_path: Path) -> None:
    # Given an agent's sealed result for one site
    inventory = load_inventory(str(demo_inventory))
    swept = await sweep(plan_for(inventory, site_ids=["fabrikam"]), None)
    assert isinstance(swept.result, SweepResult)
    text = seal(swept.result).model_dump_json()
    keys = SiteKeys(None)
    with opened_store(str(tmp_path / "fleet.db")) as store:
        # When it is ingested, it is stored with where it came from
        stored = ingest(store, text, "site.json", inventory, keys)
        info, _, _ = store.info(stored.result.sweep.id)
        assert info.origin == "ingest:site.json"
        # ...and the same file a second time is refused as a duplicate
        with pytest.raises(IngestError, match="duplicate"):
            ingest(store, text, "site.json", inventory, keys)


async def test_a_light_sweep_reports_the_sites_it_stored_as_the_store_reads_them_back(
    demo_inventory: Path, tmp_path: Path
) -> None:
    # Given the demo's five sites, swept into a store for a report without transcripts
    plan = plan_for(load_inventory(str(demo_inventory)))
    with opened_store(str(tmp_path / "fleet.db"), lock="test") as store:
        swept = await sweep(plan, store, light=True)
        sweep_id = swept.result.sweep.id
        # When the report reads its sites (kept in memory as they were stored, issue 20)
        kept = list(swept.result.sites)
        # Then they are the stored sites, in the plan's order, as a read-back gives them
        read_back = [site.without_transcripts() for site in store.sites(sweep_id)]
        assert kept == read_back
        assert [site.site for site in kept] == [sp.site.id for sp in plan.sites]
        assert all(not c.transcript for site in kept for c in site.conversations.values())
        # ...and a report of either is the same, byte for byte
        from_store = store.view(sweep_id, light=True)
        assert render_csv(swept.result) == render_csv(from_store)
        assert render_csv(swept.result, per_site=True) == render_csv(from_store, per_site=True)
        assert render_table(swept.result, detail=True) == render_table(from_store, detail=True)
        # ...and each reading starts again from the first site
        assert list(swept.result.sites) == kept


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def test_after_a_sweep_the_pipeline_spools_the_sealed_result_and_says_what_the_push_did(
    demo_inventory: Path, tmp_path: Path
) -> None:
    # Given a swept site, and a central that is down
    inventory = load_inventory(str(demo_inventory))
    swept = await sweep(plan_for(inventory, site_ids=["fabrikam"]), None)
    outbox = Outbox(results_url(f"http://127.0.0.1:{_closed_port()}"), Spool(tmp_path / "spool"))
    # When the pipeline publishes it (no alerts asked for)
    published = await publish(swept.result, outbox=outbox)
    # Then the sealed result waits in the spool, and the outcome says why
    assert published.alerted is None
    assert published.pushed is not None
    assert published.pushed.delivered == []
    assert published.pushed.refused == []
    assert published.pushed.unreachable is not None
    assert "cannot reach" in published.pushed.unreachable
    assert published.pushed.waiting == 1
    [spooled] = outbox.spool.pending()
    assert swept.result.sweep.id in spooled.read_text(encoding="utf-8")
    # And with nothing to push and no alerts, nothing happens
    assert await publish(swept.result) == Published(None, None)
