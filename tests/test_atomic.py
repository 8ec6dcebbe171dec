"""Atomic writes: an output appears whole or not at all, and parallel builds never collide."""

from __future__ import annotations

from pathlib import Path

import pytest

from hmsbrain.atomic import atomic_dir, atomic_path, write_json


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text('{"v": 2, "trunc')
        raise RuntimeError("crash half-way")
    assert target.read_text() == '{\n "v": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_the_temporary_keeps_the_suffix_writers_choose_formats_by(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "model.keras") as tmp:
        assert tmp.suffix == ".keras" and tmp.parent == tmp_path
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"


def test_two_builds_of_one_folder_at_once_do_not_delete_each_other(tmp_path: Path) -> None:
    """Two folds started in parallel build the same input cache: each in its own temporary
    folder; the first to finish wins, the second keeps the finished copy, nothing is lost."""
    target = tmp_path / "inputs-train-abc"
    with atomic_dir(target) as first, atomic_dir(target) as second:
        assert first != second
        (first / "meta.json").write_text("first")
        (second / "meta.json").write_text("second")
        assert not target.exists()
    assert (target / "meta.json").read_text() == "second"  # inner block finished first
    assert [p.name for p in tmp_path.iterdir()] == [target.name]


def test_a_failed_folder_build_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "dist"
    with pytest.raises(KeyError), atomic_dir(target) as tmp:
        (tmp / "half.bin").write_bytes(b"x")
        raise KeyError("export failed")
    assert list(tmp_path.iterdir()) == []
