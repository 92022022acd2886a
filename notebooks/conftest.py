"""`pytest notebooks/NN_x.ipynb` gets the settings of `make test`: pytest only loads conftest.py
files beside and above the paths it is given, so without this file tests/conftest.py (offline,
Agg, PDD_STATIC, nbval lax) would not apply when a notebook is tested on its own."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "pdd_tests_conftest", Path(__file__).resolve().parents[1] / "tests" / "conftest.py"
)
_shared = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_shared)  # importing it sets the environment variables
pytest_configure = _shared.pytest_configure
