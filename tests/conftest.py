"""pytest configuration: nbval for the notebooks (lax mode) and a quiet, offline environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Tests and notebooks never touch the network and never open windows.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
# numpy's OpenBLAS threads fight torch's for 2 cores: small eigh calls ran 100x slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("TQDM_MININTERVAL", "5")
# nbval's kernel client allows stdin like a person's front end would, so pddlib.viz cannot
# tell it is headless: force static figures instead of ipywidgets sliders.
os.environ.setdefault("PDD_STATIC", "1")


def pytest_configure(config) -> None:
    """Run notebooks under nbval in lax mode in the current environment, FAST by default."""
    opt = config.option
    if hasattr(opt, "nbval_lax"):
        # Lax: a notebook passes when every cell runs without error. Outputs (stderr, tqdm bars,
        # timings, figures) are never compared, so nothing machine-dependent can fail a run.
        opt.nbval_lax = True
        opt.nbval_current_env = True
        opt.nbval_cell_timeout = 1200
        os.environ.setdefault("PDD_FAST", "1")


@pytest.fixture(scope="module")
def data():
    """Eight training images of the embedded set (every fifth of the first 40)."""
    from pddlib.data import load_images

    return load_images("openclipart", split="train").select(range(0, 40, 5))


@pytest.fixture(scope="module")
def model(data, tmp_path_factory) -> Path:
    """A tiny pixel model trained 2 steps on `data`: one per test module that asks for it."""
    from pddlib.recipes import tiny_config
    from pddlib.training import train

    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(tiny_config(max_steps=2, checkpoint_every=2, batch_size=4), data, out)
    return out
