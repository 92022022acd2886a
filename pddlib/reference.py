"""Shipping a finished run as reference weights, and turning shipped weights back into a run.

The shipped form is a run folder cut down to what a user needs and may redistribute: the EMA
UNet in fp16 safetensors (half the bytes; it loads back as float32), the scheduler, the
training config, loss log and sample grids, the provenance manifest, the metrics and the model
card. Left out: checkpoints (only training needs them) and the autoencoder, which
ships once, by name, in pddlib/weights (`pddlib.autoencoder.SHIPPED`).

`working_copy` rebuilds a complete run folder from it under runs/, so everything that reads
runs (sampling, `evaluate_model`, the card writer) works on the reference model unchanged and
writes its measurements into the copy, never into the installed package.

Both forms carry the record of their files that every pipeline folder carries (checksums.json,
pddlib.checksums): the shipped one so that an install can prove it got the weights whole (a
working copy is made only from shipped files whose SHA-256 match), the copy like any run.
"""

from __future__ import annotations

import hashlib
import shutil
from importlib import resources
from pathlib import Path

from diffusers import UNet2DModel

from pddlib import runs
from pddlib.autoencoder import SHIPPED, autoencoder_folder
from pddlib.checksums import PIPELINE_PARTS, files_under, write_record
from pddlib.files import atomic_dir
from pddlib.folders import RECOPY, REINSTALL, Checked, check_autoencoder, check_pipeline

NAME = "pd-reference"  # the shipped folder, pddlib/weights/pd-reference
REFERENCE = "reference"  # what --model and from_run accept for it
# What a shipped folder holds besides the fp16 UNet (each copied when the run has it).
KEPT = (runs.PIPELINE_INDEX, runs.SCHEDULER, runs.CONFIG_FILE, runs.LOSS_LOG, runs.SAMPLES,
        runs.PROVENANCE, runs.METRICS, runs.CARD)


def shipped_folder() -> Path:
    """Where this pddlib keeps its reference weights (present only once they are shipped)."""
    return Path(str(resources.files("pddlib").joinpath("weights", NAME)))


def is_shipped(folder: str | Path) -> bool:
    """Whether folder holds shipped weights (its fp16 UNet)."""
    return (Path(folder) / runs.UNET_WEIGHTS).is_file()


def ship(run: str | Path, dest: str | Path) -> Path:
    """Write the shipped form of a finished run into dest (replacing what is there)."""
    run = Path(run)
    check_pipeline(run, full=True)  # only what proves whole is shipped

    with atomic_dir(dest) as tmp:
        for name in KEPT:
            src = run / name
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            elif src.is_file():
                shutil.copy2(src, tmp / name)
        unet = UNet2DModel.from_pretrained(run / runs.UNET, use_safetensors=True)
        unet.half().save_pretrained(tmp / runs.UNET)
        write_record(tmp, files_under(tmp, PIPELINE_PARTS))
    return Path(dest)


def release_tag(shipped: str | Path) -> str:
    """First 8 hex digits of a SHA-1 over every shipped file (path and bytes): names its working copy.

    Every file, not the weights alone: a release that changes only the card, the metrics or the
    provenance gets a fresh working copy instead of an earlier one's stale records.
    """
    shipped, h = Path(shipped), hashlib.sha1()
    for f in sorted(p for p in shipped.rglob("*") if p.is_file()):
        h.update(f.relative_to(shipped).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:8]


def working_copy(shipped: str | Path, runs_root: str | Path) -> Path:
    """The run folder runs_root/<name>-<release tag> rebuilt from shipped weights (made once)."""
    shipped = Path(shipped)
    if not is_shipped(shipped):
        raise FileNotFoundError(f"{shipped} holds no shipped model ({runs.UNET_WEIGHTS} is missing).")
    out = Path(runs_root) / f"{shipped.name}-{release_tag(shipped)}"
    if runs.has_pipeline(out):
        check_pipeline(out, remedy=f"delete {out}, and the next use makes it again")
        return out
    check_shipped(shipped)  # made once: every shipped byte is compared with its record first
    name = runs.read_config(shipped).get("autoencoder")
    with atomic_dir(out) as tmp:
        shutil.copytree(shipped, tmp, dirs_exist_ok=True)
        if name:  # latent diffusion: the named autoencoder, with its training record
            shutil.copytree(autoencoder_folder(name), tmp / runs.VAE)
        write_record(tmp, files_under(tmp, PIPELINE_PARTS))
    return out


def check_shipped(shipped: str | Path, *, full: bool = True) -> Checked:
    """Check shipped weights and the autoencoder they name (SHA-256 against their records)."""
    checked = check_pipeline(shipped, full=full, vae_by_name=True, remedy=REINSTALL)
    name = runs.read_config(shipped).get("autoencoder")
    if name:
        check_autoencoder(autoencoder_folder(name), full=full,
                          remedy=REINSTALL if name in SHIPPED else RECOPY)
    return checked


def resolve_model(model: str | Path) -> Path:
    """A model folder by name: "reference" is the shipped model's working copy, else a path."""
    if str(model) != REFERENCE:
        return Path(model)
    if not is_shipped(shipped_folder()):
        raise FileNotFoundError(f"this pddlib ships no reference model ({shipped_folder()} "
                                "holds none); train one with `pddlib train` instead.")
    return working_copy(shipped_folder(), runs.runs_dir())
