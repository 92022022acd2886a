"""The model card of a trained model folder: README.md in Hugging Face format, and publishing it.

The card is rendered from what the folder records (pddlib.provenance: the manifest, the compute
record, metrics.json; pddlib.runs: the training config), never by hand: `pddlib train` writes it
after training and `pddlib card` rewrites it after new measurements. Its evaluation table shows
every score an evaluation recorded, so a new score needs no edit here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pddlib import blind, runs
from pddlib.defaults import DEFAULT_GUIDANCE
from pddlib.files import atomic_write
from pddlib.metrics.replication import BACKGROUND_RATE
from pddlib.metrics.scores import formatted, is_spread, label
from pddlib.objectives import describe
from pddlib.provenance import (
    EVAL_CONTEXT,
    Compute,
    compute_used,
    licence_counts,
    read_manifest,
    read_metrics,
    record_metrics,
    source_counts,
    verify_manifest,
    verify_provenance,
)
from pddlib.recipes import RUNTIME_FIELDS

WEIGHTS_LICENSE = "cc0-1.0"  # default licence of the weights: as free as the data they learned
LOOKED_KEY = "looked"  # metrics.json entry: a person's per-class verdict, kept across re-renders
LOAD = 'PDDiffusionPipeline.from_pretrained("<this folder or Hub repo>")'
# Settings the card leaves out: the model shape (shown above the table) and the runtime fields
# (checkpoints, sample grids), which say nothing about the weights; but max_steps does: how long
# the model trained.
SKIPPED_SETTINGS = ("model", *(f for f in RUNTIME_FIELDS if f != "max_steps"))


def card_metadata(config: dict, license: str) -> str:
    """The card's YAML front matter (Hugging Face model card metadata)."""
    from huggingface_hub import ModelCardData

    cond = bool(config.get("conditional", False))
    data = ModelCardData(
        license=license, library_name="diffusers",
        # The Hub has no tag for class-conditional generation: none rather than a wrong one.
        pipeline_tag=None if cond else "unconditional-image-generation",
        # `datasets:` takes Hub dataset identifiers; the training sources (openclipart, commons,
        # ...) are not, so the card names them in its Training data section instead.
        datasets=None,
        tags=["pd-diffusion", "public-domain", "diffusers", "pytorch",
              "class-conditional" if cond else "unconditional", "image-generation"],
    )
    return data.to_yaml()


# ---------------------------------------------------------------- evaluation


def evaluations(metrics: dict) -> dict[str, dict]:
    """The metrics.json entries with a headline "value" (pddlib.provenance.eval_metrics)."""
    return {k: v for k, v in metrics.items() if isinstance(v, dict) and "value" in v}


def score_columns(entries: dict[str, dict]) -> list[str]:
    """Every score the entries hold, first seen first: their numbers bar context and spreads."""
    columns: list[str] = []
    for entry in entries.values():
        columns += [k for k, v in entry.items() if k not in columns and k not in EVAL_CONTEXT
                    and isinstance(v, (int, float)) and not isinstance(v, bool)
                    and not is_spread(k, entry)]
    return columns


def quality_table(entries: dict[str, dict]) -> list[str]:
    """Markdown lines: one row per evaluation, a column per score, then samples and real set."""
    columns = score_columns(entries)
    out = ["| metric | " + " | ".join(label(c) for c in columns) + " | samples | against |",
           "|---" * (len(columns) + 3) + "|"]
    for name, m in entries.items():
        cells = [formatted(c, m[c]) if c in m else "-" for c in columns]
        out.append(f"| {name} | " + " | ".join(cells) + f" | {m.get('n_generated', '?')} "
                   f"({m.get('sampler', '?')}) | {m.get('against', '?')} |")
    out += ["", ("FD-<judge> (e.g. FD-pdshape) is the Frechet distance on the features of "
            "one of the course's small clip-art classifiers: comparable between models of "
            "this course only, never with published FIDs."), ""]
    for name, m in entries.items():
        if m.get("per_class"):
            out += [f"Class agreement per class ({m.get('judge', 'judge')}, {name} run): "
                    + ", ".join(f"{c} {v:.2f}" for c, v in m["per_class"].items()), ""]
    return out


def replication_table(rep: dict) -> list[str]:
    """Markdown lines on the recorded replication scores (pddlib.metrics.measure_replication)."""
    out = ["**Replication** (each sample's nearest among all its training images, mirror images "
           "included):",
           "", ("| space | samples | nearest/second < 1/3 | similarity > threshold | "
           "threshold | training-set background (> threshold) |"), "|---|---|---|---|---|---|"]
    for space, s in rep.items():
        if isinstance(s, dict) and "ratio_fraction" in s:
            out.append(f"| {space} | {s['n']} | {s['ratio_fraction']:.1%} | "
                       f"{s['above_fraction']:.1%} | {s['threshold']:.3g} | "
                       f"{s['background_above_fraction']:.1%} |")
    return out + ["", ("A sample whose nearest training image is three times closer than the "
                  "second nearest is counted as memorised (Gu et al. 2023); the background is how "
                  "often training images come that close to each other. pdcopy is the copy "
                  "guard's space (`check_copies`): copy-detection descriptors, its threshold "
                  "calibrated on the training set so that "
                  f"{BACKGROUND_RATE * 100:g} % of its images exceed it to their nearest other "
                  "one."), ""]


def metrics_section(metrics: dict) -> list[str]:
    """Markdown lines reporting the recorded measurements (or saying there are none)."""
    out = ["## Evaluation", ""]
    entries, verdict = evaluations(metrics), metrics.get(blind.METRICS_KEY)
    if not entries and "replication" not in metrics and not verdict:
        return out + [("Not measured yet. Run `pddlib eval --model <this folder>` (sample quality) "
                      "and `pddlib.metrics.measure_replication(<this folder>)` (copying), then "
                      "`pddlib card --model <this folder>` to add the numbers here."), ""]
    if entries:
        out += quality_table(entries)
    if metrics.get("replication"):
        out += replication_table(metrics["replication"])
    if verdict:  # a person's blind judgement (notebook 05)
        out += blind.card_lines(verdict)
    return out


# ---------------------------------------------------------------- data, training, use


def data_section(rows: list[dict]) -> list[str]:
    """Markdown lines on the training data: the manifest, its verification, the counts."""
    if not rows:
        return ["## Training data", "", ("No provenance manifest: the training data of this "
                "model is undocumented. Do not publish it as public-domain-trained."), ""]
    failures = verify_manifest(rows)
    verdict = ("every row is public domain or CC0 with a recorded reason" if not failures else
               f"**{len(failures)} rows fail the public-domain check**: do not publish "
               "until they are removed and the model is retrained")
    unlabelled = sum(r.get("label") == "" for r in rows)
    count = (f"{len(rows)} images: {len(rows) - unlabelled} with a class and {unlabelled} "
             f"({unlabelled / len(rows):.0%} of the images its batches draw from) without one, trained "
             "with the no-class label that label dropout uses: they shape the model's "
             "unconditional prediction, the one guidance steers away from"
             if 0 < unlabelled < len(rows) else f"{len(rows)} images")
    lines = ["## Training data", "",
             (f"{count}. The full list, one row per image (title, source, URL, "
              "author, licence, licence URL, why the licence was accepted, the source file's "
              "sha1, class (empty for an image without one), and the SHA-1 of the pixels "
              "trained on), is "
              f"[`{runs.MANIFEST}`]({runs.MANIFEST}). Verified with "
              f"`pddlib.provenance.verify_manifest`: {verdict}. "
              "`pddlib.provenance.verify_provenance(folder, data)` also recomputes every "
              "image's hashes from the images and checks the list against the trainer's "
              f"fingerprint of its data ([`{runs.DATASET_RECORD}`]({runs.DATASET_RECORD}))."),
             "",
             "| source | images |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in source_counts(rows).items()]
    lines += ["", "| licence | images |", "|---|---|"]
    lines += [f"| {lic} | {n} |" for lic, n in licence_counts(rows).items()]
    return lines + [""]


def training_section(config: dict, compute: Compute) -> list[str]:
    """Markdown lines on the training configuration and the compute it used."""
    model = config.get("model") or {"preset": config.get("preset")}
    lines = ["## Training configuration", "",
             f"Model: `{json.dumps(model)}`. Full settings in `{runs.CONFIG_FILE}`:", "",
             "| setting | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in config.items() if k not in SKIPPED_SETTINGS]
    return lines + ["", "## Compute", "",
                    f"- Device: {compute.device}",
                    f"- Training time: {compute.hours:.2f} hours ({compute.hours * 60:.1f} minutes)",
                    (f"- Energy (estimate): {compute.kwh * 1000:.1f} Wh at an assumed "
                     f"{compute.watts:.0f} W"),
                    f"- Assumptions: {compute.assumptions}", ""]


def best_class(classes: list[str], metrics: dict) -> str | None:
    """The class with the highest recorded per-class agreement (the first class if none)."""
    per_class = next((v["per_class"] for v in metrics.values()
                      if isinstance(v, dict) and isinstance(v.get("per_class"), dict)), {})
    known = {c: a for c, a in per_class.items() if c in classes}
    return max(known, key=known.get) if known else (classes[0] if classes else None)


def copying_line(metrics: dict) -> str:
    """The Limitations line on copying, from the recorded copy guard (boilerplate when unmeasured)."""
    guard = (metrics.get("replication") or {}).get("pdcopy")
    if not isinstance(guard, dict) or "above_fraction" not in guard:
        return ("- Samples can come close to training images; copying is not measured yet "
                "(`pddlib.metrics.measure_replication`): check with "
                "`pddlib.metrics.check_copies` before presenting a sample as new work.")
    above, background = guard["above_fraction"], guard["background_above_fraction"]
    check = ("still check a sample with `pddlib.metrics.check_copies` before presenting it "
             "as new work")
    verdict = ("more than twice that: it reproduces training images, so treat a sample as "
               "a possible copy until `pddlib.metrics.check_copies` and a look at its nearest "
               "training image say otherwise" if above > 2 * background else
               f"within twice that: about as often as the data set repeats itself; {check}"
               if above > background else
               f"less often than the data set repeats itself; {check}")
    return (f"- Copying, as recorded: the copy guard (pdcopy) flagged {above:.0%} of "
            f"{guard['n']} samples as at least as close to a training image as {background:.0%} "
            f"of the training images come to another one; {verdict}. A copy is still a "
            "public-domain image.")


def usage_section(license: str, example: str | None = None, load: str = LOAD,
                  metrics: dict | None = None) -> list[str]:
    """Markdown lines on how to use the model, what for, its limits, and the licence."""
    return ["## How to use", "", "```python", "import torch",
            "from pddlib.pipeline import PDDiffusionPipeline", "",
            f"pipe = {load}",
            "images = pipe(8, " + (f'class_labels="{example}", '
                                   f'guidance_scale={DEFAULT_GUIDANCE}, ' if example else "") +
            "num_inference_steps=25, generator=torch.Generator().manual_seed(0)).images",
            "```", "",
            ("`model_index.json` names `PDDiffusionPipeline`, which lives in `pddlib` (the "
             "PD-Diffusion course's package, `pip install` it from the course repository): "
             "diffusers' generic `DiffusionPipeline` loader cannot load this folder without "
             "it. pddlib never runs code that comes with a model folder."), "",
            "## Intended use", "",
            ("Learning and teaching how diffusion models work; a small, fully documented "
             "baseline for experiments on sampling, evaluation and memorisation; small "
             "clip-art-like images of the classes it draws well (see Evaluation: per-class "
             "agreement is an upper bound, so look at samples of a class before relying on "
             "it)."), "",
            "## Limitations", "",
            ("- A small model trained from scratch on a few thousand images or fewer: samples "
             "are low-resolution, and only the classes the Evaluation and a person's look "
             "vouch for are drawn recognisably; it is not a general image generator."),
            "- It reflects its training data: the clip art's styles, subjects and gaps.",
            copying_line(metrics or {}),
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


# ---------------------------------------------------------------- the whole card


def autoencoder_origin(model_dir: Path) -> str:
    """' on <its data> by `<its command>`' from the autoencoder's training record, or ''."""
    from pddlib.autoencoder import training_record

    record = training_record(model_dir / runs.VAE)
    if not record.get("data"):
        return ""
    return f" on the {record['data']}, by `{record.get('command', '?')}`"


def model_summary(model_dir: Path, config: dict, unet_cfg: dict, name: str | None) -> list[str]:
    """The card's title and first paragraph: what kind of model, at what size."""
    kind = "class-conditional" if config.get("conditional") else "unconditional"
    side = unet_cfg.get("sample_size", "?")
    what = (f"{side} px, diffusers `UNet2DModel`" if not config.get("autoencoder") else
            f"latent diffusion: a diffusers `UNet2DModel` on the {side} x {side} latents of the "
            f"autoencoder `{Path(config['autoencoder']).name}`, itself trained from scratch"
            f"{autoencoder_origin(model_dir)}")
    objective = describe(config.get("prediction_type", "v_prediction"))
    return [f"# {name or model_dir.resolve().name}", "",
            (f"A {kind} diffusion model ({what}) trained from scratch with the PD-Diffusion "
             "course's `pddlib` on public-domain images only."), "",
            f"Objective: {objective}", ""]


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
    unet = model_dir / runs.UNET / "config.json"
    unet_cfg = json.loads(unet.read_text("utf-8")) if unet.is_file() else {}
    classes = list(unet_cfg.get(CLASS_NAMES_KEY) or [])
    if example is not None and example not in classes:
        raise ValueError(f"example {example!r} is not one of the model's classes: {classes}")
    lines = model_summary(model_dir, config, unet_cfg, model_name)
    if classes:
        lines += [f"Classes: {', '.join(classes)}.", ""]
    lines += data_section(rows) + training_section(config, compute_used(model_dir))
    metrics = read_metrics(model_dir)
    lines += metrics_section(metrics)
    looked = looked or (metrics.get(LOOKED_KEY) or {}).get("text")
    if looked:
        lines += ["## Looked at, class by class", "", looked, ""]
    lines += usage_section(license, example or best_class(classes, metrics), load, metrics)
    if reproduce:
        lines += ["## Reproduce", "", "```bash", reproduce, "```", ""]
    return "---\n" + card_metadata(config, license) + "\n---\n\n" + "\n".join(lines)


def write_card(model_dir: str | Path, **kw) -> Path:
    """Write (or rewrite) the model card in a trained model folder; return its path.

    A `looked` verdict is recorded in metrics.json, so a later re-render without one keeps it.
    """
    if kw.get("looked"):
        record_metrics(model_dir, {LOOKED_KEY: {"text": kw["looked"]}})
    return atomic_write(Path(model_dir) / runs.CARD, build_card(model_dir, **kw))


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

    Refuses to publish a model whose provenance fails verification (verify_provenance). Needs internet and a token
    (`hf auth login` or HF_TOKEN). Returns the repository URL.
    """
    from huggingface_hub import HfApi

    problems = verify_provenance(model_dir)
    if problems:
        raise ValueError(f"Not publishing: {len(problems)} provenance problems, e.g. "
                         f"{problems[0]}. Remove those images and retrain.")
    write_card(model_dir)
    api = HfApi(token=token)
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    api.upload_folder(repo_id=repo_id, folder_path=str(model_dir),
                      ignore_patterns=[f"{runs.CHECKPOINTS}/*", "*.part", f"{runs.SAMPLES}/*"])
    return str(url)


def publish_skip_reason() -> str | None:
    """Why publishing would not work here (offline mode, no token), or None when it could."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set: this session is offline"
    from huggingface_hub import get_token

    if not get_token():
        return "no Hugging Face token: run `hf auth login` or set HF_TOKEN"
    return None
