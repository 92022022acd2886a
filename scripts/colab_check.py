"""Run the notebooks' Colab setup line on a copy of Colab's package stack, then every notebook.

    python scripts/colab_check.py [--venv runs/colab-venv]     # or: make colab-check

Builds a fresh virtual environment holding the versions Colab's runtime ships of the packages
the course touches (COLAB, copied from googlecolab/backend-info's pip-freeze.txt, see SOURCE),
runs exactly the notebooks' `%pip install` line with this checkout in place of the repository
URL, checks that it left Colab's own packages alone (replacing torch, numpy, pillow or the
widget libraries would break the runtime or its widget display), then runs every notebook
under nbval in FAST mode. Update: copy the versions below from a newer pip-freeze.txt and
change SOURCE and PYTHON. What differs from Colab: torch is PyPI's Linux build of Colab's
release, a CUDA build (about 4.7 GB, downloaded) that runs on the CPU like Colab's +cpu one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ("googlecolab/backend-info pip-freeze.txt at a72407924822ea377410b69f0a290150bcb5c9c2 "
          "(2026-08-19; Python 3.13.15, torch 2.11.0+cpu)")
PYTHON = "3.13"  # Colab's Python, major.minor
# Colab's versions of what pddlib, its notebooks and the setup line touch.
COLAB = {
    "torch": "2.11.0",
    "numpy": "2.1.3", "pillow": "11.3.0", "ipykernel": "6.17.1", "ipywidgets": "7.7.1",
    "matplotlib": "3.10.0", "pandas": "2.2.3", "scipy": "1.16.3", "requests": "2.32.4",
    "safetensors": "0.8.0", "tqdm": "4.67.3", "nbformat": "5.11.1", "nbclient": "0.10.4",
    "PyYAML": "6.0.3", "pytest": "8.4.2",
}
# Colab's runtime owns these: the setup line must not replace them.
KEPT = ("torch", "numpy", "pillow", "ipykernel", "ipywidgets")


def pip_line(notebook: Path) -> str:
    """The `%pip` line of a notebook's setup cell, continuation lines joined."""
    cell = next(c for c in json.loads(notebook.read_text("utf-8"))["cells"]
                if c["cell_type"] == "code")
    source = "".join(cell["source"]).replace("\\\n", " ")
    lines = [s.strip() for s in source.splitlines() if s.strip().startswith("%pip")]
    if len(lines) != 1:
        raise ValueError(f"{notebook.name}: expected one %pip line in the setup cell")
    return lines[0]


def pip_args(notebook: Path) -> list[str]:
    """The arguments after `%pip install`, as pip receives them (quotes removed)."""
    line = pip_line(notebook).removeprefix("%pip")
    args = [a.strip('"') for a in re.findall(r'"[^"]*"|\S+', line)]
    return args[1:] if args[:1] == ["install"] else args


def setup_line(notebook: Path) -> list[str]:
    """pip_args with this checkout in place of the repository URL."""
    return [f"pddlib @ {ROOT.as_uri()}" if a.startswith("pddlib @ ") else a
            for a in pip_args(notebook)]


def versions(python: Path, names) -> dict[str, str]:
    """Installed versions of `names` in the environment of `python`."""
    code = ("import importlib.metadata as m, json, sys; "
            "print(json.dumps({n: m.version(n) for n in sys.argv[1:]}))")
    out = subprocess.run([str(python), "-c", code, *names], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def colab_python(version: str = PYTHON) -> str:
    """A working `pythonX.Y` of Colab's version (PATH, then pyenv's), or exit with what to do."""
    pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
    for found in [shutil.which(f"python{version}"), *pyenv]:
        # A pyenv shim is on PATH even where that version is not selected, and then fails.
        if found and not subprocess.run([found, "-c", ""], capture_output=True, check=False).returncode:
            return str(found)
    sys.exit(f"colab_check: python{version} (Colab's Python) was not found; install it "
             f"(e.g. `pyenv install {version}`) or pass --python PATH")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--venv", type=Path, default=ROOT / "runs" / "colab-venv")
    ap.add_argument("--python", help=f"the interpreter to build it with (default: python{PYTHON})")
    args = ap.parse_args(argv)
    base = args.python or colab_python()
    subprocess.run([base, "-m", "venv", "--clear", str(args.venv)], check=True)
    python = args.venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install"]
    print(f"Colab's stack ({SOURCE}) in a virtual environment of {base}", flush=True)
    subprocess.run([*pip, *(f"{k}=={v}" for k, v in COLAB.items())], check=True)
    before = versions(python, KEPT)
    line = setup_line(ROOT / "notebooks" / "01_collect_public_domain_images.ipynb")
    print("setup line:", " ".join(line), flush=True)
    subprocess.run([*pip, *line], check=True)
    after = versions(python, KEPT)
    changed = {k: f"{before[k]} -> {after[k]}" for k in KEPT if before[k] != after[k]}
    if changed:
        print(f"FAIL: the setup line replaced Colab's own packages: {changed}")
        return 1
    subprocess.run([*pip, "nbval"], check=True)  # the test harness only, not part of Colab
    env = {**os.environ, "PDD_FAST": "1"}  # notebooks/conftest.py sets the rest, as make test
    return subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "notebooks"], cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
