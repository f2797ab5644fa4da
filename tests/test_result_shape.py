"""The shape of a site's result: each fact kept once in memory and in the store, while the JSON a
user sees stays byte for byte the contract (tests/golden/sweep.json), and the history files
written before the redesign (tests/data/history-v1.db) still load; and the one way renderers
read a sweep, held in memory or streamed from the store."""

from __future__ import annotations

import inspect
import json
import re
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from fleet.agent import content_digest, seal
from fleet.notify import alert_changes, compose, should_send
from fleet.report import render
from fleet.report.csv_report import render_csv, write_csv
from fleet.report.html import render_email_html, render_html
from fleet.report.json_report import read_json, render_json
from fleet.report.summary import exit_code, headline, only_client, verdict_counts
from fleet.report.table import render_table, render_transcript
from fleet.results import (
    ResultError,
    SiteResult,
    SweepReading,
    SweepResult,
    SweepView,
    ValidationError,
)
from fleet.store import Store

from .test_reports import GOLDEN, fixed_sweep

DATA = Path(__file__).parent / "data"
# Written by fleet before the redesign (`Store.save(fixed_sweep())`, then VACUUM): every
# site's `egress_ip` beside its `egress`, every device with its own copy of the transcript.
OLD_STORE = DATA / "history-v1.db"
SWEEP_ID = "20261126T060000Z-abc123"


def _golden_json() -> str:
    return (GOLDEN / "sweep.json").read_text(encoding="utf-8")


def _golden_json_without_rules() -> str:
    """The golden JSON as a store written before devices carried the rule that decided their
    category reads back: every device's `rule` null (the store never had it)."""
    return re.sub(r'("rule": )"[^"]*"', r"\1null", _golden_json())


def _old_store(tmp_path: Path) -> Store:
    copy = tmp_path / "fleet.db"
    shutil.copyfile(OLD_STORE, copy)
    return Store(str(copy))


def _rows(path: str) -> list[dict[str, object]]:
    with closing(sqlite3.connect(path)) as db:
        return [json.loads(r) for (r,) in db.execute("SELECT result FROM site_results")]


def test_the_json_a_user_sees_is_the_contract_byte_for_byte() -> None:
    assert render_json(fixed_sweep()) == _golden_json()
    assert fixed_sweep().model_dump_json(indent=2) + "\n" == _golden_json()


def test_the_contract_reads_back_to_the_same_json() -> None:
    # What agents send and `--format json` wrote: read, it writes the same bytes again.
    again = read_json(_golden_json())
    assert render_json(again) == _golden_json()
    assert again == fixed_sweep()


def test_the_egress_ip_is_the_egress_s() -> None:
    site = fixed_sweep().sites[0]
    assert site.egress_ip == site.egress.egress_ip == "203.0.113.20"
    assert "egress_ip" not in SiteResult.__struct_fields__
    contract = json.loads(site.model_dump_json())
    assert list(contract)[6:8] == ["egress_ip", "egress"]


def test_a_contract_whose_egress_ip_contradicts_its_egress_is_refused() -> None:
    contract = json.loads(fixed_sweep().sites[0].model_dump_json())
    contract["egress_ip"] = "192.0.2.99"
    with pytest.raises(ValidationError, match="egress_ip"):
        SiteResult.from_contract(contract)


def test_the_store_keeps_the_egress_ip_once(tmp_path: Path) -> None:
    path = str(tmp_path / "fleet.db")
    store = Store(path)
    store.save(fixed_sweep())
    store.close()
    rows = _rows(path)
    assert len(rows) == 5
    for row in rows:
        assert "egress_ip" not in row
        assert isinstance(row["egress"], dict)
        assert "egress_ip" in row["egress"]


def test_the_store_s_text_is_the_struct_s_own_encoding() -> None:
    # stored_json is the struct's own shape (issue 20): every fact once, no contract
    # reshaping, and it reads back to the same site
    for site in fixed_sweep().sites:
        text = site.stored_json()
        stored = json.loads(text)
        assert "egress_ip" not in stored
        assert "conversations" in stored
        assert SiteResult.from_json(text) == site


def test_a_store_written_before_the_redesign_still_loads(tmp_path: Path) -> None:
    assert all("egress_ip" in row for row in _rows(str(OLD_STORE)))  # the old shape
    store = _old_store(tmp_path)
    try:
        info, changes, previous = store.info(SWEEP_ID)
        full = SweepResult(
            sweep=info,
            sites=list(store.view(SWEEP_ID, light=False).sites),
            changes=changes,
            previous_sweep=previous,
        )
        assert render_json(full) == _golden_json_without_rules()
        light = [site.model_dump_json() for site in store.view(SWEEP_ID).sites]
        assert light == [site.without_transcripts().model_dump_json() for site in full.sites]
        assert [row.egress_ip for row in store.site_history("contoso-hq")] == ["203.0.113.20"]
    finally:
        store.close()


def test_an_old_store_takes_new_sweeps_and_compares_them_with_its_old_ones(
    tmp_path: Path,
) -> None:
    store = _old_store(tmp_path)
    try:
        again = fixed_sweep()
        later = again.sweep.model_copy(
            update={
                "id": "20261127T060000Z-def456",
                "started_at": again.sweep.started_at.replace(day=27),
                "finished_at": None,
            }
        )
        changes, previous = store.save(again.model_copy(update={"sweep": later}))
        assert previous == SWEEP_ID
        assert changes == []  # the same sites, the same state: nothing changed
        assert [s.model_dump_json() for s in store.view(later.id, light=False).sites] == [
            s.model_dump_json() for s in again.sites
        ]
    finally:
        store.close()


def test_devices_that_share_a_conversation_refer_to_it_once() -> None:
    hq = fixed_sweep().sites[0]
    front, back = hq.devices
    assert front.conversation == back.conversation == "contoso-hq#1"
    assert list(hq.conversations) == ["contoso-hq#1"]
    assert hq.conversation_of(front) is hq.conversation_of(back)
    assert not {"host", "transcript", "tls"} & set(type(front).__struct_fields__)
    # ... and the JSON contract still gives each device its own copy, where it always was
    devices = json.loads(hq.model_dump_json())["devices"]
    assert devices[0]["transcript"] == devices[1]["transcript"] != []
    keys = list(devices[0])
    at = keys.index("conversation")
    assert keys[at : at + 7] == [
        "conversation",
        "host",
        "port",
        "tls",
        "transcript",
        "test_message_id",
        "queue_id",
    ]


def test_the_store_keeps_a_shared_conversation_once(tmp_path: Path) -> None:
    path = str(tmp_path / "fleet.db")
    store = Store(path)
    store.save(fixed_sweep())
    store.close()
    hq = next(row for row in _rows(path) if row["site"] == "contoso-hq")
    assert isinstance(hq["devices"], list)
    assert all("transcript" not in device for device in hq["devices"])
    assert isinstance(hq["conversations"], dict)
    assert list(hq["conversations"]) == ["contoso-hq#1"]
    with closing(sqlite3.connect(path)) as db:
        (raw,) = db.execute("SELECT result FROM site_results WHERE site = 'contoso-hq'").fetchone()
        (old,) = (
            sqlite3.connect(OLD_STORE)
            .execute("SELECT result FROM site_results WHERE site = 'contoso-hq'")
            .fetchone()
        )
    assert raw.count('"transcript"') == 1
    assert old.count('"transcript"') == 2  # before: one copy per device
    assert len(raw) < len(old)


def test_an_old_store_s_copies_become_one_conversation(tmp_path: Path) -> None:
    store = _old_store(tmp_path)
    try:
        hq = next(iter(store.view(SWEEP_ID, light=False).sites))
        assert list(hq.conversations) == ["contoso-hq#1"]
        assert len(hq.conversation_of(hq.devices[0]).transcript) == 3
    finally:
        store.close()


def test_shared_copies_that_differ_are_refused() -> None:
    # A file from elsewhere whose devices tell one conversation two ways: which is true
    # cannot be told, so it is not read (rather than one of them silently dropped).
    contract = json.loads(fixed_sweep().sites[0].model_dump_json())
    contract["devices"][1]["transcript"] = []
    with pytest.raises(ValidationError, match="tell it differently"):
        SiteResult.from_contract(contract)


def test_a_device_whose_conversation_is_missing_is_refused() -> None:
    stored = json.loads(fixed_sweep().sites[0].stored_json())
    stored["conversations"] = {}
    with pytest.raises(ValidationError, match="which the site does not have"):
        SiteResult.from_contract(stored)


def test_a_light_site_has_the_contract_s_keys_with_empty_transcripts() -> None:
    hq = fixed_sweep().sites[0]
    light = hq.without_transcripts()
    assert all(c.transcript == [] for c in light.conversations.values())
    assert hq.conversation_of(hq.devices[0]).transcript  # the original is untouched
    devices = json.loads(light.model_dump_json())["devices"]
    assert [d["transcript"] for d in devices] == [[], []]
    assert devices[0]["host"] == "contoso-com.mail.protection.outlook.com"


# ---- one way to read a sweep ------------------------------------------------------------


def _renderings(reading: SweepReading) -> dict[str, str]:
    return {
        "table": render_table(reading),
        "detail": render_table(reading, detail=True),
        "transcript": render_transcript(reading),
        "csv": render_csv(reading),
        "sites.csv": render_csv(reading, per_site=True),
        "json": render_json(reading),
        "html": render_html(reading),
        "email": render_email_html(reading),
        "headline": headline(reading),
        "exit": str(exit_code(reading)),
        "client": render_table(only_client(reading, "Contoso Dental")),
    }


def test_a_sweep_in_memory_and_the_same_sweep_stored_render_alike(tmp_path: Path) -> None:
    # Renderers read one shape (SweepReading), whether the sweep is held whole or streamed
    # from the store: the two cannot be told apart in any output.
    result = fixed_sweep()
    store = Store(str(tmp_path / "fleet.db"))
    try:
        store.save(result)
        stored = store.view(SWEEP_ID, light=False)
        assert isinstance(stored, SweepView)
        assert stored.counts == result.counts
        assert stored.site_count == result.site_count == 5
        assert _renderings(stored) == _renderings(result)
        for name in ("csv", "json", "transcript"):  # any of them read twice gives the same
            assert _renderings(stored)[name] == _renderings(stored)[name]
    finally:
        store.close()


@pytest.mark.parametrize(
    "renderer",
    [
        render_table,
        render_transcript,
        render_csv,
        write_csv,
        render_json,
        render_html,
        render_email_html,
        headline,
        exit_code,
        verdict_counts,
        only_client,
        render,
        compose,
        alert_changes,
        should_send,
    ],
    ids=lambda f: f.__name__,
)
def test_every_renderer_takes_the_one_reading_of_a_sweep(renderer: Callable[..., object]) -> None:
    annotations = [str(p.annotation) for p in inspect.signature(renderer).parameters.values()]
    assert "SweepReading" in annotations
    assert not [a for a in annotations if "SweepResult" in a or "SweepView" in a]


def test_a_dump_that_leaves_the_conversations_out_still_works() -> None:
    hq = fixed_sweep().sites[0]
    devices = hq.model_dump(mode="json", exclude={"conversations"})["devices"]
    assert [d["conversation"] for d in devices] == ["contoso-hq#1", "contoso-hq#1"]
    assert not {"host", "transcript"} & set(devices[0])


def test_a_result_read_from_outside_is_checked_field_by_field() -> None:
    # The results are built without validation (issue 20: msgspec structs), so whatever is
    # read back is checked on the way in, and the error says where.
    stored = json.loads(fixed_sweep().sites[0].stored_json())
    stored["devices"][0]["verdict"] = "fine"
    with pytest.raises(ValidationError, match=r"devices\[0\]\.verdict"):
        SiteResult.from_json(json.dumps(stored))
    document = json.loads(render_json(fixed_sweep()))
    document["sites"][1]["checks"] = [{"kind": "dkim"}]
    with pytest.raises(ValidationError, match=r"sites\[1\].*kind"):
        read_json(json.dumps(document))
    document = json.loads(render_json(fixed_sweep()))
    document["sweep"]["id"] = "../etc"
    with pytest.raises(ValidationError, match="sweep id"):
        read_json(json.dumps(document))
    with pytest.raises(ResultError):
        read_json('{"sweep": ')


def test_each_site_compares_with_its_own_latest_complete_sweep(tmp_path: Path) -> None:
    # Store.previous reads the newest complete sweep's digests in one query and looks up
    # one by one only the sites it lacks (issue 20): the same answer as a lookup per site.
    base = fixed_sweep()
    hq, branch = base.sites[0], base.sites[1]

    def sweep(day: int, sites: list[str], *, complete: bool = True) -> SweepResult:
        started = base.sweep.started_at + timedelta(days=day)
        info = msgspec.structs.replace(
            base.sweep, id=f"sweep-{day}", started_at=started, complete=complete
        )
        kept = [
            msgspec.structs.replace(hq if n % 2 else branch, site=s) for n, s in enumerate(sites)
        ]
        return msgspec.structs.replace(base, sweep=info, sites=kept, changes=[])

    store = Store(str(tmp_path / "fleet.db"))
    try:
        store.save(sweep(1, ["a", "b", "c"]))
        store.save(sweep(2, ["a", "b"]))  # c not swept: its latest stays day 1
        store.save(sweep(3, ["a", "d"], complete=False))  # incomplete: never compared with
        now = sweep(4, ["a", "b", "c", "d"])
        found, previous = store.previous(["a", "b", "c", "d"], now.sweep.started_at, "sweep-4")
        assert previous == "sweep-2"
        assert list(found) == ["a", "b", "c"]
        assert found["c"].site == "c"
        # only sites the newest complete sweep lacks: the newest of theirs
        found, previous = store.previous(["c", "d"], now.sweep.started_at, "sweep-4")
        assert (list(found), previous) == (["c"], "sweep-1")
        # excluding the newest complete sweep, and before the first: nothing
        found, previous = store.previous(["a"], now.sweep.started_at, "sweep-2")
        assert previous == "sweep-1"
        assert store.previous(["a"], base.sweep.started_at, "x") == ({}, None)
    finally:
        store.close()


def test_asking_for_one_site_reads_that_site_not_the_whole_sweep(tmp_path: Path) -> None:
    # `fleet scan SITE` at a big store: Store.previous reads the asked site's row of the
    # newest complete sweep, not every row of it (issue 20 review: 18-20 ms at 10,000 sites).
    # The work is counted in SQLite's steps, so the test does not time anything.
    base = fixed_sweep()
    hq = base.sites[0]

    def sweep(day: int, names: list[str]) -> SweepResult:
        started = base.sweep.started_at + timedelta(days=day)
        info = msgspec.structs.replace(base.sweep, id=f"sweep-{day}", started_at=started)
        kept = [msgspec.structs.replace(hq, site=name) for name in names]
        return msgspec.structs.replace(base, sweep=info, sites=kept, changes=[])

    def steps_for_one_site(size: int) -> int:
        names = [f"site-{n:04d}" for n in range(size)]
        store = Store(str(tmp_path / f"fleet-{size}.db"))
        try:
            store.save(sweep(1, names))
            later = base.sweep.started_at + timedelta(days=2)
            steps = [0]

            def count() -> int:
                steps[0] += 1
                return 0

            store.db.set_progress_handler(count, 1)
            found, previous = store.previous([names[size // 2]], later, "x")
            store.db.set_progress_handler(None, 1)
            assert (list(found), previous) == ([names[size // 2]], "sweep-1")
            assert found[names[size // 2]].site == names[size // 2]
            return steps[0]
        finally:
            store.close()

    small, big = steps_for_one_site(20), steps_for_one_site(400)
    assert big < small * 2, (small, big)


def test_a_non_finite_float_is_hashed_as_the_file_holds_it() -> None:
    # JSON has no infinity: the file holds null, so the dump an agent hashes must too, or
    # the central finds the content changed (issue 20 review: to_builtins kept inf).
    base = fixed_sweep()
    hq = base.sites[0]
    key, record = next(iter(hq.conversations.items()))
    stages = [msgspec.structs.replace(record.transcript[0], elapsed_s=float("inf"))]
    odd = msgspec.structs.replace(
        hq, conversations={key: msgspec.structs.replace(record, transcript=stages)}
    )
    assert odd.model_dump(mode="json") == json.loads(odd.model_dump_json())
    sealed = seal(msgspec.structs.replace(base, sites=[odd, *base.sites[1:]]))
    read = SweepResult.model_validate_json(sealed.model_dump_json())
    assert read.sites[0].conversations[key].transcript[0].elapsed_s is None
    assert content_digest(read.sweep, read.sites) == sealed.sweep.digest
