"""History and nightly operations: the store, what changed since last night, agent mode,
the sweep lock, and a sweep killed half-way (issue 7)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fleet.lab.dns import LabDns
from fleet.lab.smtp import Tenant, m365_mx
from fleet.results import SweepResult

from .conftest import M365Lab, eventually, fleet_env, publish_spf, run_fleet_async
from .inventory_builder import InventoryBuilder, device, lab_defaults

ZONE = "zen.lab.test"


def history_inventory(
    dns: LabDns,
    mx_port: int,
    ca_file: str,
    sites: int = 3,
    site_s: int = 30,
    concurrency: dict[str, int] | None = None,
) -> InventoryBuilder:
    """`sites` sites on one MX, each from its own address (127.0.0.40 up), four at a time
    unless `concurrency` says otherwise."""
    defaults = lab_defaults(dns, connect_s=5, command_s=5, site_s=site_s, dns_timeout_s=1)
    defaults["concurrency"] = concurrency or {"global": 4, "per_site": 1, "per_host": 4}
    built = InventoryBuilder(defaults, blocklists=[{"zone": ZONE, "kind": "spamhaus-zen"}])
    for n in range(sites):
        ip = f"127.0.0.{40 + n}"
        mfp = device(mx_port, ca_file)
        built.site(f"site-{n}", mfp, client=f"Client {n % 2}", egress={"bind": ip, "ip": ip})
    return built


ONE_AT_A_TIME = {"global": 1, "per_site": 1, "per_host": 1}


@pytest.fixture
def inventory(lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path]) -> Path:
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    return write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file))


async def sweep_json(inventory: Path, db: Path, *extra: str) -> tuple[int, SweepResult]:
    run = await run_fleet_async(
        "sweep", "-i", str(inventory), "--db", str(db), "--format", "json", "-q", *extra
    )
    assert run.code in (0, 1, 2), run.stderr
    return run.code, SweepResult.model_validate_json(run.stdout)


@pytest.mark.slow  # several seconds
async def test_listing_then_delisting_are_reported_as_changes(
    inventory: Path, lab_dns: LabDns, m365: M365Lab, tmp_path: Path
) -> None:
    db = tmp_path / "fleet.db"
    # Given a first sweep where every site is clean
    code, first = await sweep_json(inventory, db)
    assert code == 0
    assert first.changes == []
    assert first.previous_sweep is None

    # When site-1's IP gets listed (exploited host) and the MX starts refusing it
    lab_dns.list_ip(ZONE, "127.0.0.41", "127.0.0.4", reason="Listed by lab XBL")
    m365.tenant.banned_ips.add("127.0.0.41")
    code, second = await sweep_json(inventory, db)

    # Then the second sweep reports exactly that, compared with the first
    assert code == 2
    assert second.previous_sweep == first.sweep.id
    changed = {(c.site, c.kind, c.after) for c in second.changes}
    assert changed == {
        ("site-1", "verdict", "critical"),
        ("site-1", "new_flag", "DIRECT_SEND_DIRTY_IP"),
        ("site-1", "new_flag", "LISTED"),
        ("site-1", "listed", f"127.0.0.41 {ZONE}"),
    }

    # And after delisting, a third sweep reports it resolved
    lab_dns.delist_ip(ZONE, "127.0.0.41")
    m365.tenant.banned_ips.clear()
    code, third = await sweep_json(inventory, db)
    assert code == 0
    assert third.previous_sweep == second.sweep.id
    kinds = {(c.site, c.kind, c.before) for c in third.changes}
    assert ("site-1", "delisted", f"127.0.0.41 {ZONE}") in kinds
    assert ("site-1", "resolved_flag", "DIRECT_SEND_DIRTY_IP") in kinds
    assert ("site-1", "verdict", "critical") in kinds
    assert {c.site for c in third.changes} == {"site-1"}

    # The table shows the changes at the top, and diff/history/report agree
    table = await run_fleet_async("report", "--db", str(db), "--sweep", second.sweep.id)
    assert table.code == 2
    head = table.stdout.split("\n\n")[1]
    assert head.startswith(f"Changes since sweep {first.sweep.id}:")
    assert "site-1: 127.0.0.41 newly listed on zen.lab.test (XBL)" in head
    diff = await run_fleet_async("diff", "--db", str(db), first.sweep.id, third.sweep.id)
    assert diff.code == 0
    assert "no changes" in diff.stdout  # clean then, clean again
    diff = await run_fleet_async("diff", "--db", str(db), "--format", "json", second.sweep.id)
    assert json.loads(diff.stdout)["from"] == first.sweep.id
    history = await run_fleet_async("history", "--db", str(db), "--site", "site-1")
    lines = history.stdout.splitlines()
    assert [line.split()[0] for line in lines[2:]] == [
        third.sweep.id,
        second.sweep.id,
        first.sweep.id,
    ]
    assert "127.0.0.41 on zen.lab.test (XBL)" in lines[3]
    sweeps = await run_fleet_async("history", "--db", str(db))
    assert sweeps.stdout.count("yes") == 3


async def test_report_rerenders_a_stored_sweep_as_csv(inventory: Path, tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    _, result = await sweep_json(inventory, db)
    out = tmp_path / "morning.csv"
    run = await run_fleet_async(
        "report", "--db", str(db), "--last", "--format", "csv", "--output", str(out)
    )
    assert run.code == 0, run.stderr
    text = out.read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].startswith("sweep_time,client,site,device")
    assert text.count("\n") == 1 + len(result.sites)


@pytest.mark.slow  # several seconds
async def test_a_killed_sweep_keeps_finished_sites_and_the_next_one_runs(
    lab_dns: LabDns, certs: object, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    from fleet.lab.certs import LabCertificates

    assert isinstance(certs, LabCertificates)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    # A slow MX: every reply waits, so a sweep of 6 sites one at a time takes a while.
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.15)
    await slow.start()
    try:
        text = history_inventory(
            lab_dns, slow.port, str(certs.ca_file), sites=6, concurrency=ONE_AT_A_TIME
        )
        inventory = write_inventory(text)
        db = tmp_path / "fleet.db"
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "fleet",
            "sweep",
            "-i",
            str(inventory),
            "--db",
            str(db),
            "-q",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=fleet_env(),
        )
        # Wait until at least two sites are stored, then kill without warning.
        await eventually(
            lambda: db.exists() and _count(db, "SELECT COUNT(*) FROM site_results") >= 2
        )
        process.send_signal(signal.SIGKILL)
        await process.wait()

        with sqlite3.connect(db) as check:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = check.execute("SELECT COUNT(*) FROM site_results").fetchone()[0]
            complete = check.execute("SELECT complete FROM sweeps").fetchall()
        assert 2 <= stored < 6
        assert complete == [(0,)]

        # The lock died with the process: the next sweep runs, and compares with no
        # incomplete sweep.
        code, result = await sweep_json(inventory, db, "--site", "site-0")
        assert code == 0
        assert result.previous_sweep is None
        history = await run_fleet_async("history", "--db", str(db))
        assert "unfinished or killed" in history.stdout
    finally:
        await slow.stop()


def _count(db: Path, query: str) -> int:
    try:
        with sqlite3.connect(db, timeout=1) as connection:
            return int(connection.execute(query).fetchone()[0])
    except sqlite3.Error:
        return 0


@pytest.mark.slow  # several seconds
async def test_two_sweeps_on_one_store_never_overlap(
    lab_dns: LabDns, certs: object, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    from fleet.lab.certs import LabCertificates

    assert isinstance(certs, LabCertificates)
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    slow = m365_mx(Tenant(accepted_domains={"contoso.test"}), certs.server_context(), delay_s=0.2)
    await slow.start()
    try:
        inventory = write_inventory(
            history_inventory(lab_dns, slow.port, str(certs.ca_file), sites=2)
        )
        db = tmp_path / "fleet.db"
        first = asyncio.ensure_future(sweep_json(inventory, db))
        # until the first sweep holds the lock
        await eventually(lambda: db.exists() and _count(db, "SELECT COUNT(*) FROM sweeps") == 1)
        second = await run_fleet_async("sweep", "-i", str(inventory), "--db", str(db), "-q")
        assert second.code == 3
        assert "another sweep is already using the store" in second.stderr
        assert "(pid " in second.stderr
        code, _ = await first
        assert code == 0
    finally:
        await slow.stop()


@pytest.mark.slow  # several seconds
async def test_agent_results_are_ingested_and_bad_ones_refused(
    inventory: Path, tmp_path: Path
) -> None:
    central = tmp_path / "central.db"
    result_file = tmp_path / "site-1.json"
    # At the site: the RMM runs a one-site sweep that writes a self-contained result.
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--site",
        "site-1",
        "--no-store",
        "--format",
        "json",
        "--output",
        str(result_file),
        "-q",
    )
    assert run.code == 0, run.stderr
    document = json.loads(result_file.read_text())
    assert len(document["sweep"]["digest"]) == 64

    # On the central machine: ingested as if swept there.
    run = await run_fleet_async(
        "ingest", "-i", str(inventory), "--db", str(central), str(result_file)
    )
    assert run.code == 0, run.stderr
    assert "stored sweep" in run.stdout
    history = await run_fleet_async("history", "--db", str(central))
    assert f"ingest:{result_file.name}" in history.stdout
    report = await run_fleet_async("report", "--db", str(central), "--format", "csv")
    assert report.code == 0, report.stderr
    assert "site-1" in report.stdout  # the ingested sweep reports like a local one

    # A duplicate is refused
    again = await run_fleet_async(
        "ingest", "-i", str(inventory), "--db", str(central), str(result_file)
    )
    assert again.code == 3
    assert "already in the store (a duplicate)" in again.stderr

    # A tampered file is refused: someone turned a verdict green
    tampered = tmp_path / "tampered.json"
    document["sweep"]["id"] = "20991231T000000Z-feed00"
    document["sites"][0]["verdict"] = "ok"
    document["sites"][0]["flags"] = []
    tampered.write_text(json.dumps(document))
    run = await run_fleet_async("ingest", "-i", str(inventory), "--db", str(central), str(tampered))
    assert run.code == 3
    assert "does not match its digest" in run.stderr

    # Malformed files are refused with a clear error, and nothing is stored
    garbage = tmp_path / "garbage.json"
    garbage.write_text('{"sweep": {"id": 1}')
    truncated = tmp_path / "truncated.json"
    truncated.write_text(result_file.read_text()[:500])
    run = await run_fleet_async(
        "ingest", "-i", str(inventory), "--db", str(central), str(garbage), str(truncated)
    )
    assert run.code == 3
    assert "garbage.json: not a fleet sweep result" in run.stderr
    assert "truncated.json: not a fleet sweep result" in run.stderr
    assert "2 of 2 file(s) refused" in run.stderr
    assert _count(central, "SELECT COUNT(*) FROM sweeps") == 1


async def test_ingest_refuses_a_site_the_inventory_does_not_know(
    inventory: Path,
    tmp_path: Path,
    write_inventory: Callable[..., Path],
    lab_dns: LabDns,
    m365: M365Lab,
) -> None:
    result_file = tmp_path / "r.json"
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--site",
        "site-0",
        "--no-store",
        "--format",
        "json",
        "-o",
        str(result_file),
        "-q",
    )
    assert run.code == 0, run.stderr
    renamed = history_inventory(lab_dns, m365.mx.port, m365.ca_file)  # as `inventory`...
    renamed.sites[0]["id"] = "elsewhere"  # ...but without site-0
    other = write_inventory(renamed, name="other.yaml")
    run = await run_fleet_async(
        "ingest", "-i", str(other), "--db", str(tmp_path / "c.db"), str(result_file)
    )
    assert run.code == 3
    assert "site 'site-0' is not in the inventory" in run.stderr

    # A crafted file (its digest recomputed by whoever made it) reaches no terminal raw
    from fleet.agent import seal

    crafted = SweepResult.model_validate_json(result_file.read_text())
    site = crafted.sites[0].model_copy(update={"site": "x\x1b]0;pwned\x07\x1b[2Jy"})
    crafted_file = tmp_path / "crafted.json"
    crafted_file.write_text(seal(crafted.model_copy(update={"sites": [site]})).model_dump_json())
    run = await run_fleet_async(
        "ingest", "-i", str(other), "--db", str(tmp_path / "c.db"), str(crafted_file)
    )
    assert run.code == 3
    assert "site 'xy' is not in the inventory" in run.stderr
    assert "\x1b" not in run.stderr


MASTER = "central-master-key-0123456789abcdef"


async def site_key(inventory: Path, site_id: str, master: str = MASTER) -> str:
    """What `fleet agent-key` prints on the central for a site."""
    run = await run_fleet_async(
        "agent-key", site_id, "-i", str(inventory), env=fleet_env(FLEET_AGENT_MASTER_KEY=master)
    )
    assert run.code == 0, run.stderr
    return run.stdout.strip()


async def test_agent_keys_are_per_site_and_derived_from_the_master_key(
    inventory: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a master key on the central, each site gets its own key
    key_0, key_1 = await site_key(inventory, "site-0"), await site_key(inventory, "site-1")
    assert len(key_0) == 64
    assert int(key_0, 16) >= 0
    assert key_0 != key_1
    assert key_0 == await site_key(inventory, "site-0")  # derived: nothing to keep per site
    assert key_0 != await site_key(inventory, "site-0", master="another-master-key-0123456789")
    key_file = tmp_path / "master.key"
    key_file.write_text(MASTER + "\n")
    key_file.chmod(0o600)
    run = await run_fleet_async(
        "agent-key", "site-0", "-i", str(inventory), "--master-key-file", str(key_file)
    )
    assert (run.code, run.stdout.strip()) == (0, key_0)
    assert MASTER not in run.stdout + run.stderr
    assert "accessible by other users" not in run.stderr
    if os.name == "posix":  # a master key others can read draws a warning, as ssh's keys do
        key_file.chmod(0o644)
        run = await run_fleet_async(
            "agent-key", "site-0", "-i", str(inventory), "--master-key-file", str(key_file)
        )
        assert (run.code, run.stdout.strip()) == (0, key_0)
        assert f"the secret file {key_file} is accessible by other users" in run.stderr

    # When the agent at site-0 sweeps with its own key (pasted into the RMM with a newline)
    result_file = tmp_path / "site-0.json"
    run = await run_fleet_async(
        "sweep",
        "-i",
        str(inventory),
        "--site",
        "site-0",
        "--no-store",
        "--format",
        "json",
        "-o",
        str(result_file),
        "-q",
        env=fleet_env(FLEET_AGENT_KEY=key_0 + "\n"),
    )
    assert run.code == 0, run.stderr
    text = result_file.read_text()
    assert key_0 not in text
    assert json.loads(text)["sweep"]["signature"]

    # Then the central with the master key stores it, and says nothing about the key
    central = fleet_env(FLEET_AGENT_MASTER_KEY=MASTER)
    db = tmp_path / "c.db"
    run = await run_fleet_async(
        "ingest", "-i", str(inventory), "--db", str(db), str(result_file), env=central
    )
    assert run.code == 0, run.stderr
    assert "WARNING" not in run.stderr
    assert MASTER not in run.stdout + run.stderr
    assert key_0 not in run.stdout + run.stderr

    # A file for site-0 signed with site-1's key is refused: site-1 cannot write site-0
    result = SweepResult.model_validate_json(text)
    forged = result.model_copy(
        update={"sweep": result.sweep.model_copy(update={"id": "20260101T000000Z-f0f0f0"})}
    )
    monkeypatch.setenv("FLEET_AGENT_KEY", key_1)
    from fleet.agent import seal

    forged_file = tmp_path / "forged.json"
    forged_file.write_text(seal(forged).model_dump_json())
    # An unsigned file is refused too, and so is one signed with an unknown key
    monkeypatch.delenv("FLEET_AGENT_KEY")
    unsigned_file = tmp_path / "unsigned.json"
    unsigned_file.write_text(seal(forged).model_dump_json())
    monkeypatch.setenv("FLEET_AGENT_KEY", "a-key-no-site-has-0123456789")
    stranger_file = tmp_path / "stranger.json"
    stranger_file.write_text(seal(forged).model_dump_json())
    monkeypatch.delenv("FLEET_AGENT_KEY")
    run = await run_fleet_async(
        "ingest",
        "-i",
        str(inventory),
        "--db",
        str(db),
        str(forged_file),
        str(unsigned_file),
        str(stranger_file),
        env=central,
    )
    assert run.code == 3
    assert "forged.json: signed with the key of site 'site-1', not of site 'site-0'" in run.stderr
    assert "unsigned.json: the result is not signed" in run.stderr
    assert "stranger.json: the signature does not match the key of site 'site-0'" in run.stderr
    assert "3 of 3 file(s) refused" in run.stderr
    assert _count(db, "SELECT COUNT(*) FROM sweeps") == 1

    # A central without a master key takes them all, but says so loudly on every run
    for _ in range(2):
        run = await run_fleet_async(
            "ingest",
            "-i",
            str(inventory),
            "--db",
            str(tmp_path / "open.db"),
            str(unsigned_file),
            env=fleet_env(FLEET_AGENT_KEY=key_0),
        )
        assert "WARNING: no agent master key" in run.stderr
        assert "FLEET_AGENT_KEY is an agent's own site key" in run.stderr
    assert _count(tmp_path / "open.db", "SELECT COUNT(*) FROM sweeps") == 1


async def test_agent_key_refuses_what_it_cannot_do(inventory: Path, tmp_path: Path) -> None:
    run = await run_fleet_async("agent-key", "site-0", "-i", str(inventory))
    assert run.code == 3
    assert "no master key" in run.stderr
    central = fleet_env(FLEET_AGENT_MASTER_KEY=MASTER)
    run = await run_fleet_async("agent-key", "nowhere", "-i", str(inventory), env=central)
    assert run.code == 3
    assert "site 'nowhere' is not in the inventory" in run.stderr
    run = await run_fleet_async(
        "agent-key", "site-0", "-i", str(inventory), env=fleet_env(FLEET_AGENT_MASTER_KEY="short")
    )
    assert run.code == 3
    assert "too short" in run.stderr
    assert "short" not in run.stdout
    run = await run_fleet_async(
        "agent-key", "site-0", "-i", str(inventory), "--master-key-file", str(tmp_path / "none")
    )
    assert run.code == 3
    assert "cannot read the master key file" in run.stderr


async def test_prune_keeps_recent_sweeps(inventory: Path, tmp_path: Path) -> None:
    db = tmp_path / "fleet.db"
    await sweep_json(inventory, db)
    with sqlite3.connect(db) as connection:  # age the sweep by 40 days
        connection.execute("UPDATE sweeps SET started_at = '2026-01-01T00:00:00.000000Z'")
    await sweep_json(inventory, db)
    run = await run_fleet_async("prune", "--db", str(db), "--keep-days", "30")
    assert run.code == 0
    assert "removed 1 sweep(s)" in run.stdout
    assert _count(db, "SELECT COUNT(*) FROM sweeps") == 1
    assert _count(db, "SELECT COUNT(*) FROM site_results") == 3  # cascade


def test_store_schema_is_versioned_and_private(tmp_path: Path) -> None:
    from fleet.store import MIGRATIONS, Store

    store = Store(str(tmp_path / "sub" / "fleet.db"))
    try:
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.integrity() == "ok"
    finally:
        store.close()
    assert oct(os.stat(tmp_path / "sub" / "fleet.db").st_mode & 0o777) == "0o600"


def test_a_store_from_a_newer_fleet_is_refused(tmp_path: Path) -> None:
    from fleet.errors import StoreError
    from fleet.store import Store

    path = tmp_path / "fleet.db"
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer than this fleet knows"):
        Store(str(path))


async def test_an_unwritable_store_is_a_clear_error(inventory: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    run = await run_fleet_async(
        "sweep", "-i", str(inventory), "--db", str(blocker / "fleet.db"), "-q"
    )
    assert run.code == 3
    assert "cannot open the store" in run.stderr
    assert "Traceback" not in run.stderr


async def test_json_from_a_stored_sweep_carries_every_transcript(
    inventory: Path, tmp_path: Path
) -> None:
    # A sweep kept in the store is streamed back for its report: JSON must still hold the
    # whole conversation of every device, both from `sweep` and later from `report`.
    db = tmp_path / "fleet.db"
    _, swept = await sweep_json(inventory, db)
    stages = [
        [s.stage.value for s in site.conversation_of(d).transcript]
        for site in swept.sites
        for d in site.devices
    ]
    assert stages
    assert all(names[:3] == ["connect", "banner", "ehlo"] and "rcpt" in names for names in stages)
    run = await run_fleet_async("report", "--db", str(db), "--last", "--format", "json")
    assert run.code == 0, run.stderr
    again = SweepResult.model_validate_json(run.stdout)
    assert [[len(s.conversation_of(d).transcript) for d in s.devices] for s in again.sites] == [
        [len(s.conversation_of(d).transcript) for d in s.devices] for s in swept.sites
    ]


def test_save_is_all_or_nothing_and_the_store_files_stay_private(tmp_path: Path) -> None:
    from datetime import timedelta

    from fleet.errors import StoreError
    from fleet.store import Store

    from .test_reports import fixed_sweep

    result = fixed_sweep()
    assert len(result.sites) >= 3
    earlier = result.model_copy(
        update={
            "sweep": result.sweep.model_copy(
                update={"id": "earlier", "started_at": result.sweep.started_at - timedelta(days=1)}
            )
        }
    )
    store = Store(str(tmp_path / "fleet.db"))
    try:
        store.save(earlier)
        # SQLite itself refuses the third site, mid-way through the statement that writes
        # the sweep's sites, as a full disk would (a temporary trigger: nothing patched)
        store.db.execute(
            "CREATE TEMP TRIGGER refuse BEFORE INSERT ON main.site_results "
            f"WHEN NEW.site = '{result.sites[2].site}' AND NEW.sweep_id = '{result.sweep.id}' "
            "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
        )
        with pytest.raises(StoreError, match="disk is full"):
            store.save(result)
        assert not store.has(result.sweep.id)  # no half-ingested sweep
        assert (
            store.db.execute(
                "SELECT COUNT(*) FROM site_results WHERE sweep_id = ?", (result.sweep.id,)
            ).fetchone()[0]
            == 0
        )
        # and nothing already recorded is lost
        assert [s.site for s in store.sites("earlier")] == [s.site for s in result.sites]

        store.db.execute("DROP TRIGGER refuse")
        store.save(result)
        assert store.has(result.sweep.id)
        assert len(list(store.sites(result.sweep.id))) == len(result.sites)
        for suffix in ("", "-wal", "-shm"):  # SQLite gives its side files the db's mode
            mode = os.stat(tmp_path / f"fleet.db{suffix}").st_mode & 0o777
            assert mode == 0o600, suffix
    finally:
        store.close()


async def test_a_site_added_to_the_inventory_has_its_findings_as_new(
    lab_dns: LabDns, m365: M365Lab, write_inventory: Callable[..., Path], tmp_path: Path
) -> None:
    """A site newly added to an existing history is compared with nothing found: its flags
    and listings are new changes (so `when: changes` alerts on a dirty new site), with no
    verdict change from a state it never had; the sites swept before compare as ever."""
    lab_dns.blocklist(ZONE)
    publish_spf(lab_dns)
    db = tmp_path / "fleet.db"
    two = write_inventory(history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=2))
    code, first = await sweep_json(two, db)
    assert code == 0
    # Given site-2 added to the inventory, from an IP that is listed and refused
    lab_dns.list_ip(ZONE, "127.0.0.42", "127.0.0.4", reason="Listed by lab XBL")
    m365.tenant.banned_ips.add("127.0.0.42")
    three = tmp_path / "three.yaml"
    history_inventory(lab_dns, m365.mx.port, m365.ca_file, sites=3).write(three)
    code, second = await sweep_json(three, db)
    assert code == 2
    assert second.previous_sweep == first.sweep.id
    assert {(c.site, c.kind, c.after) for c in second.changes} == {
        ("site-2", "new_flag", "DIRECT_SEND_DIRTY_IP"),
        ("site-2", "new_flag", "LISTED"),
        ("site-2", "listed", f"127.0.0.42 {ZONE}"),
    }


def test_store_timestamps_sort_as_written_before() -> None:
    # The store's timestamps (written with isoformat since issue 20, strftime before) keep
    # one form whatever the zone they are given in, so old and new rows still sort together
    from datetime import UTC, datetime, timedelta, timezone

    from fleet.store import _ts

    moments = [
        datetime(2026, 11, 29, 16, 45, 4, 736839, tzinfo=UTC),
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 11, 29, 18, 45, 4, 5, tzinfo=timezone(timedelta(hours=2))),
        datetime.fromisoformat("2026-06-01T00:00:00.5Z"),  # pydantic-like, a UTC of its own
    ]
    for moment in moments:
        assert _ts(moment) == moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
