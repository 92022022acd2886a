"""The headless course runner: every notebook executed in order, copies and a summary of times."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class NotebookResult:
    """Outcome of one executed notebook."""

    name: str
    seconds: float
    ok: bool
    error: str = ""


def run_notebooks(
    notebooks_dir: Path, out_dir: Path, *, fast: bool = False, cell_timeout: int = 3600
) -> list[NotebookResult]:
    """Execute every notebook in `notebooks_dir` in name order; write copies and a summary."""
    paths = sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"No numbered notebooks (01_*.ipynb ...) in {notebooks_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    # Kernels inherit this process's environment: that is how FAST mode reaches the notebooks.
    previous = os.environ.get("PDD_FAST")
    os.environ["PDD_FAST"] = "1" if fast else "0"
    try:
        results = [run_one(path, out_dir, cell_timeout) for path in paths]
    finally:
        if previous is None:
            os.environ.pop("PDD_FAST")
        else:
            os.environ["PDD_FAST"] = previous
    write_summary(results, out_dir / "summary", fast=fast)
    return results


OVERWRITTEN = re.compile(r".*\r(?=[^\n])")  # a line's text that a later '\r' on it redraws


def settle_streams(nb) -> None:
    """Each run of adjacent same-name stream outputs as one, showing only what '\\r' left.

    A text progress bar redraws its line with '\\r' many times; kept as separate outputs the
    saved copy holds every redraw. Merged, a reader sees the bar's final state, as a terminal
    shows it; outputs keep their order (unlike nbclient's coalesce_streams, which also merges
    a cell's streams across figures).
    """
    for cell in nb.cells:
        merged: list = []
        for out in cell.get("outputs", []):
            last = merged[-1] if merged else None
            if (out.get("output_type") == "stream" and last is not None
                    and last.get("output_type") == "stream" and last["name"] == out["name"]):
                last["text"] += out["text"]
            else:
                merged.append(out)
        for out in merged:
            if out.get("output_type") == "stream":
                out["text"] = OVERWRITTEN.sub("", out["text"])
        if "outputs" in cell:
            cell["outputs"] = merged


def run_one(path: Path, out_dir: Path, cell_timeout: int) -> NotebookResult:
    """Execute one notebook with its folder as working directory; save the executed copy."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=cell_timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    print(f"[course] running {path.name} ...", flush=True)
    start = time.perf_counter()
    error = ""
    try:
        client.execute()
    except CellExecutionError as e:
        error = str(e).strip().splitlines()[-1] if str(e).strip() else repr(e)
    seconds = time.perf_counter() - start
    settle_streams(nb)
    nbformat.write(nb, out_dir / path.name)
    status = "ok" if not error else f"FAILED: {error}"
    print(f"[course] {path.name}: {seconds:.0f} s, {status}", flush=True)
    return NotebookResult(path.stem, seconds, not error, error)


def write_summary(results: list[NotebookResult], path: Path, *, fast: bool) -> None:
    """Write a short plain-text table of per-notebook times and status."""
    lines = [f"PD-Diffusion course run ({'FAST' if fast else 'full'} mode)", ""]
    lines += [f"{r.name:<36} {r.seconds:8.1f} s  {'ok' if r.ok else 'FAILED: ' + r.error}"
              for r in results]
    lines += ["", f"{'total':<36} {sum(r.seconds for r in results):8.1f} s"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
