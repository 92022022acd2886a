"""`pddlib figures` draws README's figures from the course model (the tiny one in FAST mode)."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from pddlib.cli import main
from pddlib.figures import FIGURES


def test_figures_from_a_fresh_runs_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("PDD_FAST", "1")
    monkeypatch.setenv("PDD_RUNS", str(tmp_path / "runs"))
    assert main(["figures", "--out", str(tmp_path / "images")]) == 0
    assert "Training the tiny FAST-mode model" in capsys.readouterr().out  # no model: trains one
    for name in FIGURES:
        with Image.open(tmp_path / "images" / name) as im:
            assert im.format == "PNG" and min(im.size) >= 100
    # Small files: README figures, not posters.
    assert max((tmp_path / "images" / n).stat().st_size for n in FIGURES) < 400_000


def test_figures_from_a_named_model_folder_train_nothing(tmp_path: Path, monkeypatch,
                                                         capsys) -> None:
    from pddlib.trained import course_config, course_model, course_run_dir

    monkeypatch.setenv("PDD_FAST", "1")
    course_model(fast=True, root=tmp_path / "runs")
    run = course_run_dir(course_config(fast=True), tmp_path / "runs")
    capsys.readouterr()
    assert main(["figures", "--model", str(run), "--out", str(tmp_path / "images")]) == 0
    out = capsys.readouterr().out
    assert "Training" not in out and out.count("wrote") == len(FIGURES)


def test_figures_draw_a_second_model_beside_the_first(tmp_path: Path, monkeypatch,
                                                      capsys) -> None:
    from pddlib.figures import BESIDE
    from pddlib.trained import course_config, course_model, course_run_dir

    monkeypatch.setenv("PDD_FAST", "1")
    monkeypatch.setenv("PDD_RUNS", str(tmp_path / "runs"))
    course_model(fast=True)
    run = course_run_dir(course_config(fast=True))
    capsys.readouterr()
    assert main(["figures", "--model", str(run), "--beside", "course",
                 "--out", str(tmp_path / "images")]) == 0
    out = capsys.readouterr().out
    assert "Training" not in out and out.count("wrote") == len(FIGURES) + 1
    with Image.open(tmp_path / "images" / BESIDE) as im:  # 16 class rows of two groups of 2
        assert im.format == "PNG" and im.size[1] > im.size[0] > 100
