"""An agent asked for `--format json` seals its sweep once: the JSON report and the spooled
result share one content digest (it reads every site and transcript), and their bytes are
what sealing each on its own wrote."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fleet import agent
from fleet.agent import content_digest, seal_info, seal_reading
from fleet.cli.output import emit
from fleet.pipeline import Outbox, push_result
from fleet.push import Spool, results_url
from fleet.report.json_report import write_json
from fleet.results import SiteResult, SweepInfo, SweepResult

from .conftest import free_port
from .test_reports import fixed_sweep

KEY = "0123456789abcdef" * 4


@pytest.fixture
def digests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every content digest computed (and no reading remembered from an earlier test)."""
    computed: list[str] = []

    def counting(info: SweepInfo, sites: object) -> str:
        digest = content_digest(info, sites)  # type: ignore[arg-type]
        computed.append(digest)
        return digest

    monkeypatch.setattr(agent, "content_digest", counting)
    monkeypatch.setattr(agent, "_last_digest", [])
    monkeypatch.setenv("FLEET_AGENT_KEY", KEY)
    return computed


def sealed_alone(result: SweepResult) -> bytes:
    """The JSON as sealing it on its own writes it."""
    out = io.StringIO(newline="")
    write_json(
        out,
        seal_info(result.sweep, result.sites),
        result.sites,
        result.changes,
        result.previous_sweep,
    )
    return out.getvalue().encode("utf-8")


def test_the_report_and_the_spool_share_one_digest_and_keep_their_bytes(
    digests: list[str], tmp_path: Path
) -> None:
    result = fixed_sweep()
    expected = sealed_alone(result)
    digests.clear()
    report = tmp_path / "sweep.json"
    spool = Spool(tmp_path / "spool")
    # Nothing listens there: the result stays in the spool for the next run
    outbox = Outbox(results_url(f"http://127.0.0.1:{free_port()}"), spool)

    emit(result, "json", str(report), detail=False, per_site=False)
    delivery = push_result(result, outbox)

    assert len(digests) == 1
    assert delivery.unreachable is not None
    (spooled,) = spool.pending()
    assert report.read_bytes() == expected
    assert spooled.read_bytes() == expected
    read_back = SweepResult.model_validate_json(expected)
    assert read_back.sweep.digest == digests[0] == content_digest(read_back.sweep, read_back.sites)


def test_another_reading_is_digested_again_and_the_key_is_read_each_time(
    digests: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = fixed_sweep()
    first = seal_reading(result)
    assert seal_reading(result) == first
    assert len(digests) == 1

    # The key as it is now signs the remembered digest
    monkeypatch.setenv("FLEET_AGENT_KEY", KEY[::-1])
    resigned = seal_reading(result)
    assert len(digests) == 1
    assert resigned.digest == first.digest
    assert resigned.signature not in (None, first.signature)

    # Another sweep, even one equal to it, is digested on its own
    fewer: list[SiteResult] = result.sites[1:]
    other = SweepResult(sweep=result.sweep, sites=fewer)
    assert seal_reading(other).digest != first.digest
    again = SweepResult(sweep=result.sweep, sites=list(result.sites))
    assert seal_reading(again).digest == first.digest
    assert len(digests) == 3
