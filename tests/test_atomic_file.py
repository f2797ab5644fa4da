"""Replacing a file atomically (fleet.atomic_file), shared by the report files, the agent's
spool and the inventory cache: the new content or the old one, never half, and no
temporary file left behind whatever stopped the write."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fleet import atomic_file
from fleet.atomic_file import replacing_bytes, replacing_text


def test_text_replaces_the_file_with_what_was_written(tmp_path: Path) -> None:
    target = tmp_path / "report.csv"
    target.write_text("old\n", encoding="utf-8")
    with replacing_text(target, prefix=".report.csv.", encoding="utf-8-sig") as handle:
        handle.write("a,b\r\nü\n")
    # The encoding's BOM, and the newlines as written (not translated on Windows).
    assert target.read_bytes() == "\ufeffa,b\r\nü\n".encode()
    assert os.listdir(tmp_path) == ["report.csv"]


def test_bytes_replace_the_file_and_durable_syncs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(atomic_file.os, "fsync", fsync)
    target = tmp_path / "entry.json"
    with replacing_bytes(target, prefix=".") as handle:
        handle.write(b"first\n")
    assert synced == []  # not asked to be durable: no fsync
    with replacing_bytes(target, prefix=".", durable=True) as handle:
        handle.write(b"second\n")
    assert len(synced) == 1
    assert target.read_bytes() == b"second\n"
    assert os.listdir(tmp_path) == ["entry.json"]


def test_the_temporary_file_is_beside_the_target_with_its_prefix(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    with replacing_text(target, prefix=".incoming-") as handle:
        (seen,) = os.listdir(tmp_path)
        assert seen.startswith(".incoming-")
        assert seen.endswith(".tmp")
        handle.write("{}")
    assert os.listdir(tmp_path) == ["x.json"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_an_error_while_writing_keeps_the_old_file_and_leaves_no_temporary(
    tmp_path: Path, error: BaseException
) -> None:
    target = tmp_path / "report.json"
    target.write_text("old", encoding="utf-8")

    def write_half() -> None:
        with replacing_text(target, prefix=".report.json.") as handle:
            handle.write("half")
            raise error

    with pytest.raises(type(error)):
        write_half()
    assert target.read_text(encoding="utf-8") == "old"
    assert os.listdir(tmp_path) == ["report.json"]


def test_a_failed_replace_raises_oserror_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(_source: str, _target: Path) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic_file.os, "replace", refuse)
    target = tmp_path / "report.json"
    with pytest.raises(PermissionError), replacing_bytes(target, prefix=".") as handle:
        handle.write(b"new")
    assert os.listdir(tmp_path) == []


def test_a_folder_that_does_not_exist_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError), replacing_text(tmp_path / "no" / "x", prefix="."):
        pass
