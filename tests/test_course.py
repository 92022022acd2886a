"""The headless course runner executes notebooks in order and writes copies and a summary."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from pddlib.cli import main
from pddlib.course import run_notebooks


def write_notebook(path: Path, *sources: str) -> None:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                  "language": "python"}}
    nbformat.write(nb, path)


def test_runs_in_order_and_reports_failures(tmp_path: Path) -> None:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "01_a.ipynb", "import os\nprint(os.environ.get('PDD_FAST'))")
    write_notebook(nbs / "02_b.ipynb", "raise ValueError('boom')")
    write_notebook(nbs / "helper.ipynb", "raise SystemExit")  # not numbered: not run
    results = run_notebooks(nbs, tmp_path / "out", fast=True, cell_timeout=60)
    assert [(r.name, r.ok) for r in results] == [("01_a", True), ("02_b", False)]
    assert "ValueError" in results[1].error
    executed = nbformat.read(tmp_path / "out" / "01_a.ipynb", as_version=4)
    assert executed.cells[0].outputs[0]["text"].strip() == "1"
    summary = (tmp_path / "out" / "summary").read_text()
    assert "01_a" in summary and "FAILED" in summary and "total" in summary


def test_cli_course_without_notebooks_is_a_clear_error(tmp_path: Path, capsys) -> None:
    assert main(["course", "--notebooks", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "No numbered notebooks" in capsys.readouterr().err


def test_cli_version(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("pddlib ")


def test_saved_copies_show_a_text_bar_in_its_final_state_and_keep_output_order(
        tmp_path: Path) -> None:
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "01_bar.ipynb", "\n".join([
        "import sys, time",
        "from IPython.display import display",
        "for i in range(4):",
        "    sys.stderr.write(f'\\rbar {i}/3'); sys.stderr.flush(); time.sleep(0.2)",
        "sys.stderr.write('\\n'); sys.stderr.flush()",
        "print('after', flush=True)",
        "display('a figure')",
        "print('last')",
    ]))
    results = run_notebooks(nbs, tmp_path / "out", fast=True, cell_timeout=60)
    assert results[0].ok
    outputs = nbformat.read(tmp_path / "out" / "01_bar.ipynb", as_version=4).cells[0].outputs
    assert [(o["output_type"], o.get("text")) for o in outputs] == [
        ("stream", "bar 3/3\n"), ("stream", "after\n"), ("display_data", None),
        ("stream", "last\n")]
