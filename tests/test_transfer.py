"""Packing a trained run into one zip and unpacking it elsewhere, checked on the way in."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from pddlib.cli import main
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.runs import trained_steps
from pddlib.transfer import pack, unpack

# `data` and `model` (a tiny 2-step run): tests/conftest.py.


def test_a_packed_run_unpacks_whole_and_loads(model, tmp_path: Path) -> None:
    archive = pack(model, tmp_path / "course.zip")
    folder = unpack(archive, tmp_path / "laptop")
    assert folder == tmp_path / "laptop" / model.name
    assert trained_steps(folder) == trained_steps(model) == 2  # the notebooks reuse it
    assert PDDiffusionPipeline.from_run(folder).class_names == PDDiffusionPipeline.from_run(
        model).class_names
    with pytest.raises(ValueError, match="exists already: delete it first"):
        unpack(archive, tmp_path / "laptop")


def test_a_cut_short_or_damaged_zip_is_refused_and_leaves_nothing(model, tmp_path: Path) -> None:
    archive = pack(model, tmp_path / "course.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ValueError, match="not a zip file"):
        unpack(cut, tmp_path / "laptop")
    damaged = tmp_path / "damaged.zip"
    with zipfile.ZipFile(archive) as src, zipfile.ZipFile(damaged, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename.endswith("unet/diffusion_pytorch_model.safetensors"):
                data = data[:-100]  # a weights file cut short inside a well-formed zip
            dst.writestr(info, data)
    with pytest.raises(ValueError, match="unet"):
        unpack(damaged, tmp_path / "laptop")
    assert not any((tmp_path / "laptop").iterdir())  # no partial folder left behind


def test_names_that_leave_the_folder_are_refused(tmp_path: Path) -> None:
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("run/model_index.json", "{}")
        z.writestr("run/../../outside.txt", "x")
    with pytest.raises(ValueError, match="outside its folder"):
        unpack(evil, tmp_path / "laptop")
    assert not (tmp_path / "outside.txt").exists()


def test_the_cli_packs_and_unpacks(model, tmp_path: Path, capsys) -> None:
    archive = tmp_path / "course.zip"
    assert main(["pack", "--model", str(model), "--out", str(archive)]) == 0
    assert main(["unpack", str(archive), "--runs", str(tmp_path / "laptop")]) == 0
    assert f"unpacked and checked {tmp_path / 'laptop' / model.name}" in capsys.readouterr().out
    assert main(["unpack", str(tmp_path / "missing.zip")]) == 2
