"""Atomic writes of files and folders: a failure leaves the old version and no partial one."""

from __future__ import annotations

import pytest

from pddlib.files import atomic_dir, atomic_write


def test_a_failed_folder_build_keeps_the_old_folder_and_leaves_nothing_behind(tmp_path) -> None:
    dest = tmp_path / "model"
    with atomic_dir(dest) as tmp:
        (tmp / "weights").write_text("v1")
    with pytest.raises(RuntimeError), atomic_dir(dest) as tmp:
        (tmp / "weights").write_text("half of v2")
        raise RuntimeError("killed mid-build")
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
    assert (dest / "weights").read_text() == "v1"


def test_a_finished_folder_build_replaces_the_old_folder_whole(tmp_path) -> None:
    dest = tmp_path / "model"
    with atomic_dir(dest) as tmp:
        (tmp / "old-only").write_text("v1")
    with atomic_dir(dest) as tmp:
        assert not any(tmp.iterdir())  # every build starts empty
        (tmp / "new").write_text("v2")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]


def test_a_failed_file_write_keeps_the_old_file(tmp_path) -> None:
    path = atomic_write(tmp_path / "a.json", "{}")
    with pytest.raises(TypeError):
        atomic_write(path, 42)  # not bytes or text: nothing is written
    assert path.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
