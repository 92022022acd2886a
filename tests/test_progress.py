"""Progress bars: a widget where a person watches, text whose last state is the final count
elsewhere (a saved notebook), and no diffusers loading bar when a pipeline loads."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pytest
import torch
import tqdm.notebook
import tqdm.std
from diffusers import DDPMScheduler, DiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from pddlib import progress, viz
from pddlib.autoencoder import AutoencoderConfig, train_autoencoder
from pddlib.metrics import extract_features
from pddlib.models import TINY, build_unet
from pddlib.pipeline import PDDiffusionPipeline

PACKAGE = Path(__file__).resolve().parents[1] / "pddlib"
LOADING = "Loading pipeline components"


def last_state(err: str) -> str:
    """What a front end shows of a text bar's output: the part after the last carriage return."""
    return err.rstrip("\n").split("\r")[-1]


@pytest.fixture
def static(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_STATIC", "1")


def test_static_bars_are_text_and_end_on_the_final_count(static, capsys) -> None:
    assert progress.bar_class() is tqdm.std.tqdm
    bar = progress.progress_bar(range(7), desc="count")
    assert type(bar) is tqdm.std.tqdm
    for _ in bar:
        pass
    err = capsys.readouterr().err
    assert "count: 100%" in last_state(err) and "7/7" in last_state(err)
    # Redrawn sparsely: the quick loop leaves its start and its end, nothing between.
    assert not any(f"{i}/7" in err for i in range(1, 7))


def test_a_watched_front_end_gets_the_widget_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PDD_STATIC", "0")
    assert progress.has_widget_frontend() is True
    assert progress.bar_class() is tqdm.notebook.tqdm


def test_viz_answers_with_the_same_frontend_rule() -> None:
    assert viz.has_widget_frontend is progress.has_widget_frontend


def test_text_bars_redraw_quickly_on_a_terminal_and_sparsely_off_one(
        static, monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    with progress.progress_bar(total=1, file=Terminal()) as bar:
        assert bar.mininterval == progress.TERMINAL_MININTERVAL
    with progress.progress_bar(total=1, file=io.StringIO()) as bar:
        assert bar.mininterval == progress.STATIC_MININTERVAL
    monkeypatch.setenv("TQDM_MININTERVAL", "0.25")
    with progress.progress_bar(total=1, file=io.StringIO()) as bar:
        assert bar.mininterval == 0.25


def test_pddlib_loops_draw_their_bars_through_it(static, capsys) -> None:
    images = np.zeros((5, 8, 8, 3), np.uint8)
    extract_features(images, "pixel", progress=True)
    assert "features (pixel): 100%" in last_state(capsys.readouterr().err)
    config = AutoencoderConfig(sample_size=16, latent_channels=4, block_out_channels=(8, 16),
                               norm_num_groups=4, steps=2, batch_size=4)
    train_autoencoder(torch.zeros(4, 3, 16, 16), config, device="cpu")
    err = capsys.readouterr().err
    assert "autoencoder: 100%" in last_state(err) and "2/2" in last_state(err)


def test_only_pddlib_progress_imports_tqdm() -> None:
    importers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "tqdm" for n in names):
                importers.append(path.relative_to(PACKAGE.parent).as_posix())
    assert set(importers) == {"pddlib/progress.py"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = build_unet(TINY, ["circle", "square"])
    out = tmp_path_factory.mktemp("pipe") / "model"
    PDDiffusionPipeline(unet.eval(), DDPMScheduler(num_train_timesteps=1000)).save_pretrained(out)
    return out


@pytest.fixture
def diffusers_bars():
    """diffusers' own bar setting, restored after the test."""
    was_on = diffusers_logging.is_progress_bar_enabled()
    yield
    (diffusers_logging.enable_progress_bar if was_on else diffusers_logging.disable_progress_bar)()


def test_loading_a_pipeline_draws_no_diffusers_bar_and_restores_its_setting(
        folder: Path, diffusers_bars, capfd) -> None:
    diffusers_logging.enable_progress_bar()
    DiffusionPipeline.from_pretrained.__func__(PDDiffusionPipeline, folder)  # diffusers alone
    assert LOADING in capfd.readouterr().err  # ... draws it, so its absence below means something
    PDDiffusionPipeline.from_pretrained(folder)
    assert LOADING not in capfd.readouterr().err
    assert diffusers_logging.is_progress_bar_enabled()
    diffusers_logging.disable_progress_bar()
    PDDiffusionPipeline.from_pretrained(folder)
    assert not diffusers_logging.is_progress_bar_enabled()


def test_a_pipelines_sampling_bar_is_text_when_static(folder: Path, static, capfd) -> None:
    pipe = PDDiffusionPipeline.from_pretrained(folder)
    pipe.set_progress_bar_config(desc="denoise")
    pipe(1, num_inference_steps=3, output_type="np")
    err = capfd.readouterr().err
    assert "denoise: 100%" in last_state(err) and "3/3" in last_state(err)
    pipe.set_progress_bar_config(disable=True)
    pipe.with_scheduler("ddim")(1, num_inference_steps=2, output_type="np")
    assert "2/2" not in capfd.readouterr().err
