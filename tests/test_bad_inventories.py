"""The bad-inventory corpus: every file gives exit 3, names file:line:column and the
field, and nothing is probed (issues 2 and 10)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet.cli import main

CORPUS = sorted((Path(__file__).parent / "bad_inventories").glob("*.yaml"))


def test_the_corpus_is_large_enough() -> None:
    assert len(CORPUS) >= 30


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A port nothing should connect to: any connection attempt waits in its backlog."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        yield sock


def fleet(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    code = exited.value.code
    return (code if isinstance(code, int) else 1), capsys.readouterr().err


@pytest.mark.parametrize("source", CORPUS, ids=[p.stem for p in CORPUS])
def test_bad_inventory_is_refused_with_its_line_and_field(
    source: Path, tmp_path: Path, listener: socket.socket, capsys: pytest.CaptureFixture[str]
) -> None:
    first_line = source.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("# expect: "), "each corpus file says what error it must give"
    expected = first_line.removeprefix("# expect: ")
    port = listener.getsockname()[1]
    path = tmp_path / source.name
    path.write_text(source.read_text(encoding="utf-8").replace("PORT", str(port)), encoding="utf-8")

    code, err = fleet(["validate", str(path)], capsys)
    assert code == 3
    assert err.splitlines()[0] == f"{path}:{expected}"
    assert "Traceback" not in err

    code, err = fleet(["sweep", "-i", str(path), "--no-store", "-q"], capsys)
    assert code == 3
    assert "nothing was probed" in err
    with pytest.raises(BlockingIOError):
        listener.accept()  # no connection was ever attempted
