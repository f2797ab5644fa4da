"""The lab's edits to /etc/postfix/main.cf, on a copy: the file always comes back byte for byte,
whether it existed or not, and two labs running at once do not undo each other."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.lab.system import (
    allow_config_directory,
    disallow_config_directory,
    read_original,
)


@pytest.fixture
def lab_dirs(tmp_path: Path) -> tuple[Path, Path]:
    first, second = tmp_path / "lab-a" / "etc", tmp_path / "lab-b" / "etc"
    first.mkdir(parents=True)
    second.mkdir(parents=True)
    return first, second


def test_a_main_cf_the_lab_created_is_removed_again(
    tmp_path: Path, lab_dirs: tuple[Path, Path]
) -> None:
    main_cf = tmp_path / "postfix" / "main.cf"
    main_cf.parent.mkdir()

    allow_config_directory(lab_dirs[0], main_cf)
    assert f"alternate_config_directories = {lab_dirs[0]}\n" in main_cf.read_text()
    assert main_cf.stat().st_mode & 0o777 == 0o644

    disallow_config_directory(lab_dirs[0], main_cf)
    assert not main_cf.exists()


def test_an_existing_main_cf_comes_back_byte_for_byte(
    tmp_path: Path, lab_dirs: tuple[Path, Path]
) -> None:
    # Given a main.cf with its own alternate directories and no newline at its end
    main_cf = tmp_path / "main.cf"
    original = "myhostname = mx.example.test\nalternate_config_directories =\n  /etc/postfix-out"
    main_cf.write_text(original)
    main_cf.chmod(0o640)

    # When a lab starts, its directory is added and the existing one kept (the last line wins)
    allow_config_directory(lab_dirs[0], main_cf)
    text = main_cf.read_text()
    assert text.startswith(original + "\n# >>> fleet lab")
    assert f"alternate_config_directories = /etc/postfix-out {lab_dirs[0]}\n" in text
    assert read_original(main_cf).text == original

    # Then when it stops, the file is exactly as it was, mode included
    disallow_config_directory(lab_dirs[0], main_cf)
    assert main_cf.read_text() == original
    assert main_cf.stat().st_mode & 0o777 == 0o640


def test_two_labs_at_once_keep_each_others_directory(
    tmp_path: Path, lab_dirs: tuple[Path, Path]
) -> None:
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("biff = no\n")
    first, second = lab_dirs

    allow_config_directory(first, main_cf)
    allow_config_directory(second, main_cf)
    assert read_original(main_cf).lab_directories == (str(first), str(second))

    disallow_config_directory(first, main_cf)
    assert read_original(main_cf).lab_directories == (str(second),)
    assert f"alternate_config_directories = {second}\n" in main_cf.read_text()

    disallow_config_directory(second, main_cf)
    assert main_cf.read_text() == "biff = no\n"


def test_a_crashed_labs_directory_is_dropped(tmp_path: Path, lab_dirs: tuple[Path, Path]) -> None:
    # Given a lab that died without stopping, and whose folder is gone
    main_cf = tmp_path / "main.cf"
    first, second = lab_dirs
    allow_config_directory(first, main_cf)
    first.rmdir()

    # When another lab starts and stops, the file is restored all the same
    allow_config_directory(second, main_cf)
    assert read_original(main_cf).lab_directories == (str(second),)
    disallow_config_directory(second, main_cf)
    assert not main_cf.exists()


@pytest.mark.lab
def test_postfix_reads_the_block(tmp_path: Path, lab_dirs: tuple[Path, Path]) -> None:
    postfix = Path(require_binary("postfix"))
    main_cf = tmp_path / "main.cf"
    main_cf.write_text("alternate_config_directories = /etc/postfix-out\n")
    allow_config_directory(lab_dirs[0], main_cf)

    value = subprocess.run(
        [
            str(postfix.parent / "postconf"), "-c", str(tmp_path),
            "-h", "alternate_config_directories",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout  # fmt: skip
    assert value.split() == ["/etc/postfix-out", str(lab_dirs[0])]
