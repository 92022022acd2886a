"""A learner's runs/ survives between Colab notebooks (PDD_RUNS on Drive), checked without Colab."""

from __future__ import annotations

import builtins
import json
import os
import types
from pathlib import Path

from pddlib.runs import runs_dir
from pddlib.trained import (
    course_config,
    course_model,
    course_run_dir,
    explore_model,
    reference_notice,
)

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def setup_cell(path: Path) -> str:
    cells = json.loads(path.read_text("utf-8"))["cells"]
    return "".join(next(c for c in cells if c["cell_type"] == "code")["source"])


def drive_line(path: Path) -> str:
    """The commented line of the setup cell that keeps runs/ on Google Drive."""
    lines = [s.strip() for s in setup_cell(path).splitlines() if "PDD_RUNS" in s]
    assert len(lines) == 1, f"{path.name}: expected one PDD_RUNS line in the setup cell"
    return lines[0]


def test_every_setup_cell_offers_the_same_drive_line_commented_inside_the_colab_block() -> None:
    lines = {drive_line(p) for p in NOTEBOOKS}
    assert len(lines) == 1 and lines.pop().startswith("# from google.colab import drive")
    for path in NOTEBOOKS:
        colab_block = setup_cell(path).split('if "google.colab" in sys.modules:', 1)[1]
        block = colab_block.split("\n\n", 1)[0]  # the indented lines under the `if`
        assert drive_line(path) in block, f"{path.name}: the Drive line is outside the Colab block"


def test_the_drive_line_mounts_drive_and_points_runs_there(monkeypatch, tmp_path: Path) -> None:
    mounted = []
    colab = types.SimpleNamespace(drive=types.SimpleNamespace(mount=mounted.append))

    def colab_import(name, *args, **kwargs):  # Colab's module is not here: only that import
        return colab if name == "google.colab" else __import__(name, *args, **kwargs)

    monkeypatch.delenv("PDD_RUNS", raising=False)
    line = drive_line(NOTEBOOKS[0]).removeprefix("# ")  # as a learner uncomments it
    exec(line, {"os": os, "__builtins__": {**vars(builtins), "__import__": colab_import}})
    runs = Path(os.environ["PDD_RUNS"])
    assert mounted == ["/content/drive"] and runs.is_relative_to("/content/drive/MyDrive")
    assert runs_dir() == runs and course_run_dir(course_config(fast=True)).parent == runs


def test_the_notice_says_the_reference_is_not_yours_and_how_to_bring_yours() -> None:
    copy, out = Path("runs/reference-pd"), Path("/drive/runs/course-fast-cond-abc")
    here = reference_notice(copy, out, 0, 8, colab=False)
    assert here.startswith(f"Exploring the reference model shipped with pddlib ({copy}), not")
    assert f"is not in {out.parent} yet" in here and "run notebook 03 to the end" in here
    assert "Colab" not in here
    half = reference_notice(copy, out, 4, 8, colab=False)
    assert f"is at step 4 of 8 in {out}" in half
    colab = reference_notice(copy, out, 0, 8, colab=True)
    assert colab.startswith(here) and "fresh machine" in colab
    assert "PDD_RUNS line of the setup cell" in colab and "course_model()" in colab


def test_a_course_model_kept_in_pdd_runs_is_the_one_explored(monkeypatch, tmp_path: Path,
                                                             capsys) -> None:
    drive = tmp_path / "MyDrive" / "pd-diffusion" / "runs"
    monkeypatch.setenv("PDD_RUNS", str(drive))
    _, folder = explore_model(fast=True)  # a fresh runtime: nothing on Drive yet
    out = capsys.readouterr().out
    assert "Exploring the reference model" in out and f"is not in {drive} yet" in out
    assert folder.parent == drive  # its working copy, and what it records, go to Drive too
    course_model(fast=True)  # notebook 03, run in an earlier runtime with the same Drive
    capsys.readouterr()
    _, folder = explore_model(fast=True)
    assert "Exploring your course model" in capsys.readouterr().out
    assert folder == course_run_dir(course_config(fast=True)) and folder.parent == drive
