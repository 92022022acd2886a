"""Provenance of a trained model: the training-data manifest, its verification, the model card.

Every `pddlib train` output folder holds
  provenance/manifest.jsonl   one row per training image: where it came from and under which
                              licence, with the reason that licence was accepted, and its sha1;
  provenance/compute.jsonl    one row per training session: device, processes, start step;
  metrics.json                measurements written by `pddlib eval` and `measure_replication`;
  README.md                   the model card (Hugging Face format), rebuilt by `pddlib card`.
So the claim "these weights were trained on public-domain images only" can be checked by anyone
with the folder: `verify_manifest(read_manifest(folder))` returns the rows that fail.
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
from pddlib.defaults import DEFAULT_GUIDANCE
from pddlib.files import atomic_write

PROVENANCE = "provenance"
MANIFEST = "manifest.jsonl"
COMPUTE = "compute.jsonl"
METRICS = "metrics.json"
CARD = "README.md"
MANIFEST_FIELDS = TEXT_COLUMNS  # every text column of the common schema
WEIGHTS_LICENSE = "cc0-1.0"  # default licence of the weights: as free as the data they learned

# ---------------------------------------------------------------- the manifest


def manifest_rows(dataset) -> list[dict]:
    """One manifest row per image of a dataset with the common schema (missing columns: "")."""
    cols = {c: list(dataset[c]) if c in dataset.column_names else [""] * len(dataset)
            for c in MANIFEST_FIELDS}
    return [{c: "" if cols[c][i] is None else str(cols[c][i]) for c in MANIFEST_FIELDS}
            for i in range(len(dataset))]


def write_manifest(out_dir: str | Path, dataset) -> Path:
    """Write provenance/manifest.jsonl for the images a model is trained on; return its path."""
    return atomic_write(Path(out_dir) / PROVENANCE / MANIFEST, "".join(
        json.dumps(row, ensure_ascii=False) + "\n" for row in manifest_rows(dataset)))


def read_manifest(model_dir: str | Path) -> list[dict]:
    """The manifest rows of a model folder (or of a manifest.jsonl path)."""
    path = Path(model_dir)
    path = path if path.suffix == ".jsonl" else path / PROVENANCE / MANIFEST
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
    path = Path(out_dir) / PROVENANCE / COMPUTE
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
    path = Path(model_dir) / METRICS
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def record_metrics(model_dir: str | Path, updates: dict) -> dict:
    """Merge {name: values} into the model folder's metrics.json (with the time); return it all."""
    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    metrics = read_metrics(model_dir)
    for name, values in updates.items():
        metrics[name] = {**values, "measured": now} if isinstance(values, dict) else values
    atomic_write(Path(model_dir) / METRICS, json.dumps(metrics, indent=1) + "\n")
    return metrics


def eval_metrics(result) -> dict:
    """metrics.json entries of a pddlib.metrics.EvalResult (what `pddlib eval` records)."""
    r, c = result.report, result.config
    entry = {"value": r.fd, "kid": r.kid_mean, "kid_std": r.kid_std, "precision": r.precision,
             "recall": r.recall, "n_generated": r.n_fake, "n_real": r.n_real,
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
    path = Path(model_dir) / PROVENANCE / COMPUTE
    sessions = [json.loads(ln) for ln in path.read_text("utf-8").splitlines()
                if ln.strip()] if path.is_file() else []
    hours = runs.training_seconds(model_dir) / 3600
    if not sessions:
        return Compute("unknown (no provenance/compute.jsonl)", hours, float("nan"), float("nan"))
    s = sessions[-1]
    what = f"{s['device']} ({s.get('device_name') or 'unknown'})"
    what += (f", {s.get('threads')} threads" if s["device"] == "cpu" else "")
    what += f", {s.get('processes', 1)} process(es)"
    watts = device_watts(s)
    return Compute(what, hours, watts, hours * watts / 1000)


# ---------------------------------------------------------------- the model card


def card_metadata(model_dir: Path, rows: list[dict], config: dict, license: str) -> str:
    """The card's YAML front matter (Hugging Face model card metadata)."""
    from huggingface_hub import ModelCardData

    cond = bool(config.get("conditional", False))
    data = ModelCardData(
        license=license, library_name="diffusers",
        # The Hub has no tag for class-conditional generation: none rather than a wrong one.
        pipeline_tag=None if cond else "unconditional-image-generation",
        datasets=sorted(source_counts(rows)) or None,
        tags=["pd-diffusion", "public-domain", "diffusers", "pytorch",
              "class-conditional" if cond else "unconditional", "image-generation"],
    )
    return data.to_yaml()


def metrics_section(metrics: dict) -> list[str]:
    """Markdown lines reporting the recorded measurements (or saying there are none)."""
    out = ["## Evaluation", ""]
    quality = {k: v for k, v in metrics.items() if k.startswith("FD-") or k == "FID"}
    if not quality and "replication" not in metrics:
        return out + [("Not measured yet. Run `pddlib eval --model <this folder>` (sample quality) "
                      "and `pddlib.metrics.measure_replication(<this folder>)` (copying), then "
                      "`pddlib card --model <this folder>` to add the numbers here."), ""]
    if quality:
        out += ["| metric | value | KID | precision | recall | class agreement | samples | against |",
                "|---|---|---|---|---|---|---|---|"]
        for name, m in quality.items():
            agree = f"{m['class_agreement']:.3f}" if "class_agreement" in m else "-"
            out.append(f"| {name} | {m['value']:.3f} | {m.get('kid', float('nan')):.4f} | "
                       f"{m.get('precision', float('nan')):.3f} | {m.get('recall', float('nan')):.3f}"
                       f" | {agree} | {m.get('n_generated', '?')} ({m.get('sampler', '?')}) | "
                       f"{m.get('against', '?')} |")
        out += ["", ("FD-<judge> (e.g. FD-pdshape) is the Frechet distance on the features of "
                "one of the course's small clip-art classifiers: comparable between models of "
                "this course only, never with published FIDs."), ""]
        for name, m in quality.items():
            if m.get("per_class"):
                out += [f"Class agreement per class ({m.get('judge', 'judge')}, {name} run): "
                        + ", ".join(f"{c} {v:.2f}" for c, v in m["per_class"].items()), ""]
    rep = metrics.get("replication")
    if rep:
        out += ["**Replication** (nearest training image of each sample, mirror images included):",
                "", ("| space | samples | nearest/second < 1/3 | similarity > threshold | "
                "threshold | training-set background (> threshold) |"), "|---|---|---|---|---|---|"]
        for space, s in rep.items():
            if isinstance(s, dict) and "ratio_fraction" in s:
                out.append(f"| {space} | {s['n']} | {s['ratio_fraction']:.1%} | "
                           f"{s['above_fraction']:.1%} | {s['threshold']:.3g} | "
                           f"{s['background_above_fraction']:.1%} |")
        out += ["", ("A sample whose nearest training image is three times closer than the second "
                "nearest is counted as memorised (Gu et al. 2023); the background is how often "
                "training images come that close to each other. pdcopy is the copy guard's space "
                "(`check_copies`): copy-detection descriptors, its threshold calibrated on the "
                "training set so that 10 % of its images exceed it to their nearest other one."),
                ""]
    return out


def data_section(rows: list[dict]) -> list[str]:
    """Markdown lines on the training data: the manifest, its verification, the counts."""
    if not rows:
        return ["## Training data", "", ("No provenance manifest: the training data of this "
                "model is undocumented. Do not publish it as public-domain-trained."), ""]
    failures = verify_manifest(rows)
    verdict = ("every row is public domain or CC0 with a recorded reason" if not failures else
               f"**{len(failures)} rows fail the public-domain check**: do not publish "
               "until they are removed and the model is retrained")
    lines = ["## Training data", "",
             (f"{len(rows)} images. The full list, one row per image (title, source, URL, "
              "author, licence, licence URL, why the licence was accepted, sha1), is "
              f"[`{PROVENANCE}/{MANIFEST}`]({PROVENANCE}/{MANIFEST}). Verified with "
              f"`pddlib.provenance.verify_manifest`: {verdict}."), "",
             "| source | images |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in source_counts(rows).items()]
    lines += ["", "| licence | images |", "|---|---|"]
    lines += [f"| {lic} | {n} |" for lic, n in licence_counts(rows).items()]
    return lines + [""]


def training_section(config: dict, compute: Compute) -> list[str]:
    """Markdown lines on the training configuration and the compute it used."""
    skip = ("model", "sample_every", "sample_n", "sample_steps", "sample_scheduler",
            "sample_guidance", "checkpoint_every", "keep_checkpoints")
    model = config.get("model") or {"preset": config.get("preset")}
    lines = ["## Training configuration", "",
             f"Model: `{json.dumps(model)}`. Full settings in `{runs.CONFIG_FILE}`:", "",
             "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in config.items() if k not in skip]
    return lines + ["", "## Compute", "",
                    f"- Device: {compute.device}",
                    f"- Training time: {compute.hours:.2f} hours ({compute.hours * 60:.1f} minutes)",
                    (f"- Energy (estimate): {compute.kwh * 1000:.1f} Wh at an assumed "
                     f"{compute.watts:.0f} W"),
                    f"- Assumptions: {compute.assumptions}", ""]


def best_class(classes: list[str], metrics: dict) -> str | None:
    """The class with the highest recorded per-class agreement (the first class if none)."""
    per_class = next((v["per_class"] for v in metrics.values()
                      if isinstance(v, dict) and v.get("per_class")), {})
    known = {c: a for c, a in per_class.items() if c in classes}
    return max(known, key=known.get) if known else (classes[0] if classes else None)


LOAD = 'PDDiffusionPipeline.from_pretrained("<this folder or Hub repo>")'


def usage_section(classes: list[str], license: str, example: str | None = None,
                  load: str = LOAD) -> list[str]:
    """Markdown lines on how to use the model, what for, its limits, and the licence."""
    return ["## How to use", "", "```python", "import torch",
            "from pddlib.pipeline import PDDiffusionPipeline", "",
            f"pipe = {load}",
            "images = pipe(8, " + (f'class_labels="{example}", '
                                   f'guidance_scale={DEFAULT_GUIDANCE}, ' if example else "") +
            "num_inference_steps=25, generator=torch.Generator().manual_seed(0)).images",
            "```", "",
            "## Intended use", "",
            ("Learning and teaching how diffusion models work; a small, fully documented "
             "baseline for experiments on sampling, evaluation and memorisation; small "
             "clip-art-like images of the classes it draws well (see Evaluation: per-class "
             "agreement is an upper bound, so look at samples of a class before relying on "
             "it)."), "",
            "## Limitations", "",
            ("- A small model trained briefly on a few thousand images or fewer: samples are "
             "low-resolution and often not recognisable; it is not a general image generator."),
            "- It reflects its training data: the clip art's styles, subjects and gaps.",
            ("- Samples can come close to training images (see Evaluation, replication); a "
             "closer copy is still a public-domain image, but check with "
             "`pddlib.metrics.check_copies` before presenting a sample as new work."),
            "- Metrics computed with the course's classifiers (FD-pdshape, FD-pdcls) are not FID.",
            "", "## What you may do with the weights and the outputs", "",
            f"The weights are released under `{license}`"
            + (" (CC0 1.0: no rights reserved)" if license == "cc0-1.0" else "")
            + ". Every training image is public domain or CC0 with no attribution "
            "requirement (see the manifest), so no third-party copyright or attribution "
            "obligation attaches to the weights through the training data. You may use, "
            "modify, share and sell the weights and the images they generate, for any purpose, "
            "without asking. Outputs that closely reproduce a training image are themselves "
            "public domain. Not legal advice: laws differ between countries, and trademarks or "
            "personality rights can still apply to what an image depicts.", ""]


def autoencoder_origin(model_dir: Path) -> str:
    """' on <its data> by `<its command>`' from vae/training.json, or '' when it has none."""
    from pddlib.autoencoder import training_record

    record = training_record(model_dir / "vae")
    if not record.get("data"):
        return ""
    return f" on the {record['data']}, by `{record.get('command', '?')}`"


def build_card(model_dir: str | Path, *, license: str = WEIGHTS_LICENSE,
               model_name: str | None = None, example: str | None = None,
               reproduce: str | None = None, looked: str | None = None,
               load: str = LOAD) -> str:
    """The model card text (YAML front matter + Markdown) of a trained model folder.

    example: the class the usage snippet asks for (a class a person found the model draws);
    default: the one with the highest recorded per-class agreement. reproduce: the shell
    commands that remake the model, shown in their own section. looked: a person's per-class
    verdict on a sample grid, its own section beside the measurements. load: the Python
    expression the usage snippet loads the model with.
    """
    from pddlib.models import CLASS_NAMES_KEY

    model_dir = Path(model_dir)
    config = runs.read_config(model_dir)
    try:
        rows = read_manifest(model_dir)
    except FileNotFoundError:
        rows = []
    unet = model_dir / "unet" / "config.json"
    unet_cfg = json.loads(unet.read_text("utf-8")) if unet.is_file() else {}
    classes = list(unet_cfg.get(CLASS_NAMES_KEY) or [])
    kind = "class-conditional" if config.get("conditional") else "unconditional"
    side = unet_cfg.get("sample_size", "?")
    what = (f"{side} px, diffusers `UNet2DModel`" if not config.get("autoencoder") else
            f"latent diffusion: a diffusers `UNet2DModel` on the {side} x {side} latents of the "
            f"autoencoder `{Path(config['autoencoder']).name}`, itself trained from scratch"
            f"{autoencoder_origin(model_dir)}")
    lines = [f"# {model_name or model_dir.resolve().name}", "",
             (f"A {kind} diffusion model ({what}) trained from scratch with the PD-Diffusion "
              "course's `pddlib` on public-domain images only."), ""]
    if classes:
        lines += [f"Classes: {', '.join(classes)}.", ""]
    lines += data_section(rows) + training_section(config, compute_used(model_dir))
    metrics = read_metrics(model_dir)
    if example is not None and example not in classes:
        raise ValueError(f"example {example!r} is not one of the model's classes: {classes}")
    lines += metrics_section(metrics)
    if looked:
        lines += ["## Looked at, class by class", "", looked, ""]
    lines += usage_section(classes, license, example or best_class(classes, metrics), load)
    if reproduce:
        lines += ["## Reproduce", "", "```bash", reproduce, "```", ""]
    return "---\n" + card_metadata(model_dir, rows, config, license) + "\n---\n\n" + "\n".join(lines)


def write_card(model_dir: str | Path, **kw) -> Path:
    """Write (or rewrite) the model card README.md in a trained model folder; return its path."""
    return atomic_write(Path(model_dir) / CARD, build_card(model_dir, **kw))


def read_card_metadata(path: str | Path) -> dict:
    """The YAML front matter of a model card (README.md) as a dict."""
    import yaml

    text = Path(path).read_text("utf-8")
    if not text.startswith("---\n"):
        raise ValueError(f"{path} has no YAML front matter (it should start with '---').")
    return yaml.safe_load(text[4:text.index("\n---", 4)]) or {}


# ---------------------------------------------------------------- publishing


def publish(model_dir: str | Path, repo_id: str, *, token: str | None = None,
            private: bool = False) -> str:
    """Upload a model folder (weights, card, manifest, metrics; no checkpoints) to the HF Hub.

    Refuses to publish a model whose manifest fails verification. Needs internet and a token
    (`hf auth login` or HF_TOKEN). Returns the repository URL.
    """
    from huggingface_hub import HfApi

    failures = verify_manifest(read_manifest(model_dir))
    if failures:
        raise ValueError(f"Not publishing: {len(failures)} manifest rows fail the public-domain "
                         f"check, e.g. {failures[0]}. Remove those images and retrain.")
    write_card(model_dir)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(model_dir),
                      ignore_patterns=["checkpoints/*", "*.part", "samples/*"])
    return str(url)


def publish_skip_reason() -> str | None:
    """Why publishing would not work here (offline mode, no token), or None when it could."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set: this session is offline"
    from huggingface_hub import get_token

    if not get_token():
        return "no Hugging Face token: run `hf auth login` or set HF_TOKEN"
    return None
