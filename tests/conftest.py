"""pytest configuration: nbval for the notebooks (lax mode) and a quiet, offline environment."""

from __future__ import annotations

import os
from pathlib import Path

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
