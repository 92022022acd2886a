"""Provenance of a trained model: the training-data manifest and its verification, the compute
record, the measurements.

Every `pddlib train` output folder holds (names in pddlib.runs)
  provenance/manifest.jsonl   one row per training image: where it came from and under which
                              licence, with the reason that licence was accepted, and its sha1;
  provenance/compute.jsonl    one row per training session: device, processes, start step;
  metrics.json                measurements written by `pddlib eval` and `measure_replication`;
and the model card built from them (pddlib.card). So the claim "these weights were trained on
public-domain images only" can be checked by anyone with the folder:
`verify_manifest(read_manifest(folder))` returns the rows that fail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from pddlib import runs
from pddlib.data.checks import row_problems
from pddlib.data.schema import TEXT_COLUMNS
from pddlib.files import atomic_write

MANIFEST_FIELDS = TEXT_COLUMNS  # every text column of the common schema

# ---------------------------------------------------------------- the manifest


def manifest_rows(dataset) -> list[dict]:
    """One manifest row per image of a dataset with the common schema (missing columns: "")."""
    cols = {c: list(dataset[c]) if c in dataset.column_names else [""] * len(dataset)
            for c in MANIFEST_FIELDS}
    return [{c: "" if cols[c][i] is None else str(cols[c][i]) for c in MANIFEST_FIELDS}
            for i in range(len(dataset))]


def write_manifest(out_dir: str | Path, dataset) -> Path:
    """Write provenance/manifest.jsonl for the images a model is trained on; return its path."""
    return atomic_write(Path(out_dir) / runs.MANIFEST, "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in manifest_rows(dataset)))


def read_manifest(model_dir: str | Path) -> list[dict]:
    """The manifest rows of a model folder (or of a manifest.jsonl path)."""
    path = Path(model_dir)
    path = path if path.suffix == ".jsonl" else path / runs.MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"No provenance manifest at {path}: models trained with "
                                "`pddlib train` (pddlib.training.train) get one; retrain, or "
                                "write one with pddlib.provenance.write_manifest(folder, dataset).")
    return [json.loads(ln) for ln in path.read_text("utf-8").splitlines() if ln.strip()]


def training_images(model_dir: str | Path, data="openclipart"):
    """The training images a model folder's manifest lists, from `data` (a source or dataset)."""
    from pddlib.data import load_images

    wanted = [r["sha1"] for r in read_manifest(model_dir)]
    ds = load_images(data) if isinstance(data, (str, Path)) else data
    where = {s: i for i, s in enumerate(ds["sha1"])}
    missing = [s for s in wanted if s not in where]
    if missing:
        raise ValueError(f"{len(missing)} of the {len(wanted)} training images of {model_dir} are "
                         f"not in {data if isinstance(data, str) else 'the given data'}; pass the "
                         "dataset the model was trained on (data=...).")
    return ds.select([where[s] for s in wanted])


# ---------------------------------------------------------------- verification

@dataclass(frozen=True)
class ManifestFailure:
    """A manifest row that does not show a public-domain / CC0 image with a recorded reason."""

    row: int
    title: str
    sha1: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"row {self.row} ({self.title or self.sha1 or 'untitled'}): {'; '.join(self.problems)}"


def verify_manifest(rows: list[dict]) -> list[ManifestFailure]:
    """Check every row is public domain / CC0 with a recorded reason; return the failures."""
    out = []
    for i, row in enumerate(rows):
        problems = row_problems(row)
        if problems:
            out.append(ManifestFailure(i, row.get("title", ""), row.get("sha1", ""),
                                       tuple(problems)))
    seen = Counter(r.get("sha1") for r in rows)
    dups = {s for s, c in seen.items() if s and c > 1}
    if dups:  # not a licence problem, but a manifest that lists an image twice is not exact
        out += [ManifestFailure(i, r.get("title", ""), r["sha1"], ("duplicate sha1",))
                for i, r in enumerate(rows) if r.get("sha1") in dups]
    return out


def licence_counts(rows: list[dict]) -> dict[str, int]:
    """{licence: number of training images}, most common first."""
    return dict(Counter(r.get("license") or "(none)" for r in rows).most_common())


def source_counts(rows: list[dict]) -> dict[str, int]:
    """{source: number of training images}, most common first."""
    return dict(Counter(r.get("source") or "(none)" for r in rows).most_common())


# ---------------------------------------------------------------- compute and metrics


def record_compute(out_dir: str | Path, *, device, processes: int = 1, start_step: int = 0,
                   mixed_precision: str = "no") -> None:
    """Append this training session's hardware to provenance/compute.jsonl."""
    import torch

    device = torch.device(device)
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else platform.processor() or platform.machine())
    row = {"started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "device": device.type, "device_name": name, "processes": processes,
           "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
           "mixed_precision": mixed_precision, "start_step": start_step,
           "torch": torch.__version__}
    path = Path(out_dir) / runs.COMPUTE
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def write_provenance(out_dir: str | Path, dataset, *, device="cpu", processes: int = 1,
                     start_step: int = 0, mixed_precision: str = "no") -> None:
    """What the trainer calls when it opens an output folder: the manifest and the compute row."""
    write_manifest(out_dir, dataset)
    record_compute(out_dir, device=device, processes=processes, start_step=start_step,
                   mixed_precision=mixed_precision)


def read_metrics(model_dir: str | Path) -> dict:
    """The measurements recorded in a model folder's metrics.json ({} when none)."""
    path = Path(model_dir) / runs.METRICS
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def record_metrics(model_dir: str | Path, updates: dict) -> dict:
    """Merge {name: values} into the model folder's metrics.json (with the time); return it all."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    metrics = read_metrics(model_dir)
    for name, values in updates.items():
        metrics[name] = {**values, "measured": now} if isinstance(values, dict) else values
    atomic_write(Path(model_dir) / runs.METRICS, json.dumps(metrics, indent=1) + "\n")
    return metrics


# What an evaluation entry of metrics.json records besides its scores: how the samples were
# drawn and judged, and when. The model card shows every other number of an entry as a score.
EVAL_CONTEXT = ("n_generated", "n_real", "against", "sampler", "guidance", "seed", "judge",
                "per_class", "measured")


def eval_metrics(result) -> dict:
    """metrics.json entries of a pddlib.metrics.EvalResult (what `pddlib eval` records).

    One entry, under the FD's name ("FD-pdshape", "FID"): "value" is the FD, then every other
    score of the result under its own name, then the EVAL_CONTEXT of the measurement.
    """
    r, c = result.report, result.config
    scores = dict(r.scores)
    entry = {"value": scores.pop("fd"), **scores, "n_generated": r.n_fake, "n_real": r.n_real,
             "against": f"{c.data} held-out split", "sampler": f"{c.scheduler} {c.steps} steps",
             "guidance": c.guidance, "seed": c.seed}
    if result.class_agreement is not None:
        entry["class_agreement"] = result.class_agreement
        entry["judge"] = c.judge
        entry["per_class"] = result.per_class
    return {r.fd_name: entry}


# ---------------------------------------------------------------- compute estimate

# Assumed power draw while training, in watts: the device's rated power the whole time, so the
# energy is an upper-end estimate. CPUs: per thread torch used (a laptop/desktop core at load).
WATTS_PER_CPU_THREAD = 7.5
GPU_WATTS = {"T4": 70, "L4": 72, "A10": 150, "V100": 300, "A100": 400, "H100": 700, "H200": 700,
             "4090": 450, "3090": 350}
GPU_WATTS_DEFAULT = 300
HOST_WATTS_WITH_GPU = 50  # the CPU and memory feeding the GPU


def device_watts(session: dict) -> float:
    """Assumed power draw (W) of one training session's hardware."""
    if session.get("device") == "cuda":
        name = session.get("device_name", "")
        gpu = next((w for k, w in GPU_WATTS.items() if k in name), GPU_WATTS_DEFAULT)
        return session.get("processes", 1) * gpu + HOST_WATTS_WITH_GPU
    return WATTS_PER_CPU_THREAD * session.get("threads", os.cpu_count() or 1) * session.get(
        "processes", 1)


@dataclass(frozen=True)
class Compute:
    """Training compute of a model folder: hardware, hours, energy estimate."""

    device: str  # e.g. "cpu (x86_64), 2 threads"
    hours: float
    watts: float  # assumed draw
    kwh: float

    @property
    def assumptions(self) -> str:
        """How the energy was estimated, in one sentence."""
        return (f"hours count training steps only (from loss.jsonl; not data loading, checkpoints "
                f"or sample grids); power is assumed to be the device's rated draw the whole time "
                f"({WATTS_PER_CPU_THREAD} W per CPU thread; for GPUs the board power by model, "
                f"default {GPU_WATTS_DEFAULT} W, plus {HOST_WATTS_WITH_GPU} W for the host), so "
                f"the energy is an upper-end estimate.")


def compute_used(model_dir: str | Path) -> Compute:
    """Hardware (last session), hours and energy estimate of a model folder's training."""
    path = Path(model_dir) / runs.COMPUTE
    sessions = [json.loads(ln) for ln in path.read_text("utf-8").splitlines()
                if ln.strip()] if path.is_file() else []
    hours = runs.training_seconds(model_dir) / 3600
    if not sessions:
        return Compute(f"unknown (no {runs.COMPUTE})", hours, float("nan"), float("nan"))
    s = sessions[-1]
    what = f"{s['device']} ({s.get('device_name') or 'unknown'})"
    what += (f", {s.get('threads')} threads" if s["device"] == "cpu" else "")
    what += f", {s.get('processes', 1)} process(es)"
    watts = device_watts(s)
    return Compute(what, hours, watts, hours * watts / 1000)
