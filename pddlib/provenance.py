"""Provenance of a trained model: the training-data manifest and its verification, the compute
record, the measurements.

Every `pddlib train` output folder holds (names in pddlib.runs)
  provenance/manifest.jsonl   one row per training image: where it came from and under which
                              licence, with the reason that licence was accepted, its sha1 (of
                              the source file), its class and the SHA-1 of its decoded pixels;
  provenance/dataset.json     the trainer's fingerprint of the data it trained on (the one its
                              checkpoints carry), with the class names;
  provenance/compute.jsonl    one row per training session: device, processes, start step;
  metrics.json                measurements written by `pddlib eval` and `measure_replication`;
and the model card built from them (pddlib.card); a latent model's vae/ carries its
autoencoder's manifest too. So the claim "these weights were trained on public-domain images
only" can be checked by anyone with the folder: `verify_manifest(read_manifest(folder))` returns
the rows whose licence decision fails, and `verify_provenance(folder, data)` also recomputes each
image's hashes from the images themselves and the data fingerprint from the manifest.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image

from pddlib import runs
from pddlib.autoencoder import autoencoder_folder
from pddlib.data.checks import row_problems
from pddlib.data.load import load_images
from pddlib.data.schema import TEXT_COLUMNS
from pddlib.data.unlabelled import UNLABELLED, with_unlabelled
from pddlib.files import atomic_write

# Every text column of the common schema, the class name, and the SHA-1 of the decoded pixels
# (`sha1` is the source file's: an embedded set ships thumbnails, not its source files).
MANIFEST_FIELDS = (*TEXT_COLUMNS, "label", "pixels_sha1")

# ---------------------------------------------------------------- the manifest


def pixels_sha1(image: Image.Image) -> str:
    """SHA-1 of an image's decoded RGB pixels and size: the picture, whatever file holds it."""
    rgb = np.asarray(image.convert("RGB"))
    return hashlib.sha1(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()


def fingerprint_of(columns: list[list], n: int) -> str:
    """Short hash of a dataset's identifying columns (sha1s, label indices) and its length."""
    h = hashlib.sha1()
    for values in columns:
        h.update(json.dumps(list(values)).encode())
    h.update(str(n).encode())
    return h.hexdigest()[:16]


def dataset_fingerprint(dataset) -> str:
    """Short hash of the dataset's identity (sha1 column, labels), to refuse a wrong resume."""
    return fingerprint_of([dataset[c] for c in ("sha1", "label") if c in dataset.column_names],
                          len(dataset))


def class_names(dataset) -> list[str]:
    """The dataset's class names (none without a ClassLabel `label` column)."""
    feature = dataset.features.get("label") if hasattr(dataset, "features") else None
    return list(getattr(feature, "names", []) or [])


def manifest_rows(dataset) -> list[dict]:
    """One manifest row per image of a dataset with the common schema (missing columns: "")."""
    text = [c for c in MANIFEST_FIELDS if c not in ("label", "pixels_sha1")]
    cols = {c: list(dataset[c]) if c in dataset.column_names else [""] * len(dataset) for c in text}
    names = class_names(dataset)
    # An unlabelled row (label -1, pddlib.data.unlabelled) has no class: "" (never names[-1]).
    labels = [names[y] if names and y >= 0 else "" for y in dataset["label"]] \
        if "label" in dataset.column_names else [""] * len(dataset)
    pixels = [pixels_sha1(im) for im in dataset["image"]]
    return [{**{c: "" if cols[c][i] is None else str(cols[c][i]) for c in text},
             "label": labels[i], "pixels_sha1": pixels[i]} for i in range(len(dataset))]


def write_dataset_record(out_dir: str | Path, dataset, **extra) -> Path:
    """Write provenance/dataset.json: the data's fingerprint (as checkpoints carry it), its classes."""
    record = {"fingerprint": dataset_fingerprint(dataset), "images": len(dataset),
              "class_names": class_names(dataset), **extra}
    return atomic_write(Path(out_dir) / runs.DATASET_RECORD, json.dumps(record, indent=1) + "\n")


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


# Where a manifest's images are looked up by default: the workshop set, then the corpus that a
# model may also have trained on without a class (pddlib.data.unlabelled).
EMBEDDED_SETS = ("openclipart", "pdcorpus")


def as_sources(data) -> tuple:
    """`data` as a tuple of datasets and source names (one given alone, or a sequence)."""
    return (data,) if isinstance(data, (str, Path, datasets.Dataset)) else tuple(data)


def find_images(sha1s: list[str], data=EMBEDDED_SETS) -> tuple[datasets.Dataset, list[str]]:
    """The images with these sha1s from `data` (a dataset, a source name, or a sequence of them,
    each image from the first that holds it), and the sha1s none holds.

    With several sources, the rows a later one adds follow those of the first, labelled
    UNLABELLED: their classes are another set's.
    """
    parts, missing = [], list(sha1s)
    for d in as_sources(data):
        if parts and not missing:
            break
        ds = load_images(d) if isinstance(d, (str, Path)) else d
        where: dict[str, int] = {}
        for i, s in enumerate(ds["sha1"]):
            where.setdefault(s, i)
        found = [where[s] for s in missing if s in where]
        if found or not parts:
            parts.append(ds.select(found))
        missing = [s for s in missing if s not in where]
    rows = parts[0]
    for extra in parts[1:]:
        rows = with_unlabelled(rows, extra)
    return rows, missing


def training_images(model_dir: str | Path, data=EMBEDDED_SETS):
    """The training images a model folder's manifest lists, from `data` (see find_images)."""
    wanted = [r["sha1"] for r in read_manifest(model_dir)]
    ds, missing = find_images(wanted, data)
    if missing:
        raise ValueError(f"{len(missing)} of the {len(wanted)} training images of {model_dir} are "
                         f"not in {data if isinstance(data, (str, tuple)) else 'the given data'}; "
                         "pass the dataset the model was trained on (data=...).")
    return ds


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


def verify_images(rows: list[dict], data) -> list[ManifestFailure]:
    """Recompute each listed image's hashes from the image itself; return the rows that differ.

    data: the datasets or source names holding the images (see find_images). `pixels_sha1` is recomputed from the
    decoded pixels for every source; `sha1` from the file's bytes where the dataset reads the
    image from a file (a scraped folder, whose sha1 is that file's; an embedded set ships
    thumbnails, so its sha1, of the source SVG, is checked by its builder against the package).
    """
    ds, _ = find_images([r.get("sha1") for r in rows], data)
    where = {s: i for i, s in enumerate(ds["sha1"])}
    files = ds.cast_column("image", datasets.Image(decode=False))["image"]
    out = []
    for i, row in enumerate(rows):
        j, problems = where.get(row.get("sha1")), []
        if j is None:
            problems.append("its sha1 matches no image of the data given")
        elif not row.get("pixels_sha1"):
            problems.append("no pixels_sha1 recorded (a manifest from before pddlib recorded it): "
                            "retrain, or rewrite it with write_manifest(folder, dataset)")
        elif pixels_sha1(ds[j]["image"]) != row["pixels_sha1"]:
            problems.append("its pixels differ from those recorded (pixels_sha1)")
        path = files[j].get("path") if j is not None else None
        if path and Path(path).is_file() and file_sha1(Path(path)) != row["sha1"]:
            problems.append(f"the file {path} does not hash to the recorded sha1")
        if problems:
            out.append(ManifestFailure(i, row.get("title", ""), row.get("sha1", ""), tuple(problems)))
    return out


def file_sha1(path: Path) -> str:
    """SHA-1 of a file's bytes (how a scraper identifies what it downloaded)."""
    return hashlib.sha1(path.read_bytes()).hexdigest()


def verify_fingerprint(model_dir: str | Path) -> list[str]:
    """The manifest against the trainer's records of its data (dataset.json, the last checkpoint)."""
    folder = Path(model_dir)
    rows = read_manifest(folder)
    path = folder / runs.DATASET_RECORD
    if not path.is_file():
        return [f"{path} is missing: the folder has no record of the data it trained on to check "
                "the manifest against (pddlib train writes one); retrain to get one"]
    record = json.loads(path.read_text("utf-8"))
    names = record.get("class_names") or []
    unknown = sorted({r.get("label", "") for r in rows} - {*names, ""}) if names else []
    if unknown:
        return [f"{runs.MANIFEST} lists classes {unknown} that {path.name} does not record"]
    index = {name: i for i, name in enumerate(names)} | {"": UNLABELLED}
    columns = [[r["sha1"] for r in rows]] + ([[index[r["label"]] for r in rows]] if names else [])
    ours = fingerprint_of(columns, len(rows))
    recorded = {runs.DATASET_RECORD: record.get("fingerprint")}
    ckpt = runs.latest_checkpoint(folder)
    if ckpt is not None:
        state = json.loads((ckpt / runs.CHECKPOINT_STATE).read_text("utf-8"))
        recorded[f"{ckpt.relative_to(folder).as_posix()}/{runs.CHECKPOINT_STATE}"] = state.get("dataset")
    return [f"{runs.MANIFEST} fingerprints to {ours}, but {where} records {fp}: the manifest does "
            "not list the images this model was trained on" for where, fp in recorded.items() if fp != ours]


def autoencoder_manifest(model_dir: str | Path) -> Path | None:
    """The manifest of a latent model's autoencoder (its vae/ copy, else the shipped one it names)."""
    folder = Path(model_dir)
    if (folder / runs.VAE).is_dir():
        return folder / runs.VAE / runs.MANIFEST
    name = runs.read_config(folder).get("autoencoder") if (folder / runs.CONFIG_FILE).is_file() else None
    return autoencoder_folder(name) / runs.MANIFEST if name else None


def verify_provenance(model_dir: str | Path, data=None) -> list[str]:
    """Every check of a model folder's provenance, one line per problem (none: the claim holds).

    The licence decision of every row of its manifest and its autoencoder's; the manifest against
    the trainer's fingerprint of its data; with `data` (the datasets or source names holding
    the images, see find_images), every image's hashes recomputed from the image itself.
    """
    folder = Path(model_dir)
    if data is not None:  # loaded once for both manifests
        data = tuple(load_images(d) if isinstance(d, (str, Path)) else d for d in as_sources(data))
    manifests = {runs.MANIFEST: read_manifest(folder)}
    vae = autoencoder_manifest(folder)
    problems = verify_fingerprint(folder)
    if vae is not None and not vae.is_file():
        problems.append(f"{vae} is missing: the autoencoder this latent model decodes with has "
                        "no record of its training images; retrain it with pddlib")
    elif vae is not None:
        manifests[str(vae.relative_to(folder) if vae.is_relative_to(folder) else vae)] = read_manifest(vae)
    for name, rows in manifests.items():
        failures = verify_manifest(rows) + (verify_images(rows, data) if data is not None else [])
        problems += [f"{name} {f}" for f in failures]
    return problems


def passes_per_image(model_dir: str | Path) -> float:
    """How often training saw each image, on average: steps x batch size / training images."""
    config = runs.read_config(model_dir)
    return config["max_steps"] * config["batch_size"] / len(read_manifest(model_dir))


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
    write_dataset_record(out_dir, dataset)
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
