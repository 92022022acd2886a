"""The notebooks' model cache: each model is trained once into runs/ (or `root`), then reused."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from pddlib import runs
from pddlib.runs import latest_checkpoint, runs_dir, trained_steps


def course_config(conditional: bool = True, fast: bool = False):
    """The TrainConfig of the course model: the cpu-latent recipe, or a tiny latent model (FAST)."""
    from pddlib.recipes import recipe, tiny_latent_config

    if fast:
        return tiny_latent_config(conditional=conditional, max_steps=8, checkpoint_every=8,
                                  sample_every=4)
    return recipe("cpu-latent", conditional=conditional)


def config_tag(fields: dict) -> str:
    """Eight hex digits that change whenever any field of a config changes."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:8]


def course_run_dir(config, root: Path | None = None, name: str = "course") -> Path:
    """The run folder of a config: runs/<name>-<kind>-<cond>-<hash of the config>."""
    tag = config_tag(config.to_dict())
    kind = "fast" if config.model is not None else config.preset
    cond = "cond" if config.conditional else "uncond"
    return (root or runs_dir()) / f"{name}-{kind}-{cond}-{tag}"


def trained_run(config, data="openclipart", *, name: str = "course", root: Path | None = None,
                what: str | None = None) -> Path:
    """The run folder of `config`, trained now (or resumed) unless runs/ holds it finished.

    The folder's name carries a hash of the config, so only a compatible, finished run is
    reused. `data` is a source for load_images (its train split) or a datasets.Dataset;
    `what` names the model in the messages.
    """
    from pddlib.card import write_card
    from pddlib.training import train

    out, what = course_run_dir(config, root, name), what or f"the {name} model"
    ckpt = latest_checkpoint(out)
    if trained_steps(out) >= config.max_steps:
        print(f"Loaded {what} from {out} ({config.max_steps} steps, trained earlier).")
        return out
    verb = f"Resuming {what} in {out} from {ckpt.name}" if ckpt else f"Training {what} into {out}"
    print(f"{verb}: {config.max_steps} steps (no finished model there yet).")
    if isinstance(data, (str, Path)):
        from pddlib.data import load_images

        data = load_images(data, split="train")
    train(config, data, out, resume=True)
    write_card(out)
    return out


def explore_model(fast: bool | None = None, *, root: Path | None = None,
                  reference: Path | None = None):
    """(pipeline, its run folder) for notebooks 04-07: your model, else the reference; says which.

    Your finished class-conditional course model when runs/ has one; otherwise the reference
    model shipped with pddlib (`reference`, default pddlib.reference.shipped_folder()), as a
    working copy in runs/ that measurements and cards are written into; when this pddlib ships
    none, the course model is trained now (`course_model`).
    """
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.reference import is_shipped, shipped_folder, working_copy

    fast = os.environ.get("PDD_FAST") == "1" if fast is None else fast
    config = course_config(True, fast)
    out = course_run_dir(config, root)
    done = trained_steps(out)
    reference = shipped_folder() if reference is None else Path(reference)
    if done >= config.max_steps or not is_shipped(reference):
        pipe = course_model(True, fast, root=root)
        print(f"Exploring your course model ({out}), the one notebook 03 trains.")
        return pipe, out
    copy = working_copy(reference, root or runs_dir())
    print(reference_notice(copy, out, done, config.max_steps, colab=in_colab()))
    return PDDiffusionPipeline.from_run(copy), copy


def in_colab() -> bool:
    """Whether this runs in Google Colab (each of its notebooks gets a fresh machine)."""
    return "google.colab" in sys.modules


def reference_notice(copy: Path, out: Path, done: int, max_steps: int, *, colab: bool) -> str:
    """What a notebook says when it explores the shipped reference model: not yours, and why."""
    mine = (f"is at step {done} of {max_steps} in {out}" if done
            else f"is not in {out.parent} yet")
    text = (f"Exploring the reference model shipped with pddlib ({copy}), not your own: your "
            f"course model {mine}. To explore your own, run notebook 03 to the end on this "
            "machine (it trains into that folder), then run this notebook again.")
    if colab:
        text += (" In Colab each notebook runs on a fresh machine whose runs/ starts empty: "
                 "uncomment the PDD_RUNS line of the setup cell, in notebook 03 and here, to "
                 "keep runs/ on your Google Drive; or train it in this runtime first with "
                 "`pddlib.trained.course_model()` (notebook 03's training).")
    return text


def course_model(conditional: bool = True, fast: bool | None = None, *, data="openclipart",
                 root: Path | None = None):
    """A trained PDDiffusionPipeline for notebooks 03-07: loaded from runs/ or trained now.

    A half-finished run is resumed (`trained_run`). FAST mode (PDD_FAST=1) trains the tiny
    model for a few steps.
    """
    from pddlib.pipeline import PDDiffusionPipeline

    fast = os.environ.get("PDD_FAST") == "1" if fast is None else fast
    config = course_config(conditional, fast)
    what = "the tiny FAST-mode model" if fast else f"the {config.preset} course model"
    return PDDiffusionPipeline.from_run(trained_run(config, data, root=root, what=what))


def autoencoder_report(vae, held, seconds: float) -> dict:
    """Training time and how well `vae` reconstructs the held-out images (RMS error, FD)."""
    import torch

    from pddlib.autoencoder import decode, encode
    from pddlib.data import to_tensor, to_uint8
    from pddlib.metrics import fd

    xh = to_tensor(held["image"], vae.config.sample_size)
    recon = decode(vae, encode(vae, xh)).clamp(-1, 1).cpu()  # the autoencoder's device -> xh's
    rms = float(((recon - xh) / 2).pow(2).mean().sqrt())
    return {"seconds": round(seconds, 1), "device": vae.device.type,
            "threads": torch.get_num_threads(), "heldout_rms_pixel_error": round(rms, 4),
            "heldout_fd_pdshape_of_reconstructions": round(
                fd(held, to_uint8(recon), progress=False), 2)}


def trained_autoencoder(config, data: str = "openclipart", *, name: str = "autoencoder",
                        root: Path | None = None) -> Path:
    """The folder of an autoencoder trained on `data`'s train split: runs/<name>-<config hash>.

    Trained now unless runs/ holds it finished. It is written to a hidden folder and renamed
    when complete, so an interrupted training leaves nothing that looks finished (and starts
    again). Beside the weights: training.json (config, seconds, held-out reconstruction
    figures, data) and provenance/manifest.jsonl, the images it learned from.
    """
    from dataclasses import asdict

    from pddlib.autoencoder import save_autoencoder, train_autoencoder
    from pddlib.data import load_images, to_tensor
    from pddlib.files import atomic_dir
    from pddlib.provenance import write_manifest

    out = (root or runs_dir()) / f"{name}-{config_tag(asdict(config))}"
    if (out / runs.TRAINING_RECORD).is_file():
        print(f"Loaded the autoencoder from {out} ({config.steps} steps, trained earlier).")
        return out
    print(f"Training an autoencoder into {out}: {config.steps} steps.")
    train = load_images(data, split="train")
    start = time.perf_counter()
    vae = train_autoencoder(to_tensor(train["image"], config.sample_size), config)
    record = autoencoder_report(vae, load_images(data, split="heldout"),
                                time.perf_counter() - start)
    record["command"] = f"pddlib.trained.trained_autoencoder({config})"
    record["data"] = (f"{data} train split, {len(train)} images, each with an accepted "
                      f"public-domain licence ({runs.MANIFEST}); no pretrained weights")
    with atomic_dir(out) as tmp:
        save_autoencoder(vae, tmp, config, **record)
        write_manifest(tmp, train)
    return out
