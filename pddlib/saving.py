"""What a training run writes and reads back: its pipeline folder, checkpoints, sample grids, resume.

- Checkpoints (pddlib.checkpoint) are safetensors plus JSON (step, config, optimizer
  hyper-parameters, EMA counters, LR schedule, RNG scheme): nothing is ever unpickled, and a
  crash never leaves half of one.
- The output folder (layout: pddlib.runs) is a diffusers pipeline folder (EMA weights) that
  `PDDiffusionPipeline.from_run` loads. The trainer writes weights, logs and provenance; the
  model card is rendered afterwards (`pddlib card`, or the end of `pddlib train`), so a card
  bug can never stop a run.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import datasets
import torch
from diffusers import AutoencoderKL, UNet2DModel
from diffusers.training_utils import EMAModel

from pddlib import runs
from pddlib.autoencoder import autoencoder_folder, load_autoencoder, training_record
from pddlib.checkpoint import (
    checkpoint_folders,
    load_checkpoint,
    newest_intact,
    read_state,
    save_checkpoint,
)
from pddlib.checksums import PIPELINE_PARTS, files_under, write_record
from pddlib.data.transforms import pil_grid
from pddlib.defaults import DEFAULT_SCHEDULER
from pddlib.objectives import objective_for
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.provenance import write_provenance
from pddlib.recipes import RUNTIME_FIELDS, TrainConfig, learning_rate


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def check_resumable(state: dict, config: TrainConfig, fingerprint: str, ckpt: Path) -> None:
    """Refuse to resume a checkpoint written for another config or dataset, naming the fix."""
    # A field added since the checkpoint was written holds its default there.
    old, new = TrainConfig.from_dict(state["config"]).to_dict(), config.to_dict()
    diff = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new
            if k not in RUNTIME_FIELDS and old.get(k) != new[k]]
    if diff:
        raise ValueError(f"Cannot resume from {ckpt}: it was trained with another config "
                         f"({'; '.join(diff)}). Resume with the same settings, or train into a "
                         "new output folder.")
    if state.get("dataset") != fingerprint:
        raise ValueError(f"Cannot resume from {ckpt}: it was trained on another dataset. "
                         "Resume with the same data, or train into a new output folder.")


def resume_step(out_dir: Path, resume: bool, config: TrainConfig, fingerprint: str,
                unet: UNet2DModel, optimizer: torch.optim.Optimizer, ema: EMAModel) -> int:
    """Load the newest intact checkpoint into unet/optimizer/ema when resuming; the step to start at.

    Damaged newer checkpoints are passed over with a DamagedCheckpointWarning naming them.
    """
    ckpt = runs.latest_checkpoint(out_dir)
    if not resume and ckpt is not None:
        raise ValueError(f"{out_dir} already holds a training run ({ckpt.name}). Pass "
                         "resume=True (--resume) to continue it, or choose another output folder.")
    if not resume or not checkpoint_folders(out_dir):
        return 0
    ckpt = newest_intact(out_dir)
    check_resumable(read_state(ckpt), config, fingerprint, ckpt)
    return load_checkpoint(ckpt, unet, optimizer, ema)["step"]


def open_run(out_dir: Path, config: TrainConfig, dataset: datasets.Dataset, accelerator,
             start: int) -> None:
    """What the main process writes before the first step: config, provenance, trimmed log."""
    runs.write_config(out_dir, config.to_dict())
    # Provenance: exactly which images (and licences) this model learns from, and on what.
    write_provenance(out_dir, dataset, device=accelerator.device,
                     processes=accelerator.num_processes, start_step=start,
                     mixed_precision=accelerator.mixed_precision)
    runs.trim_loss_log(out_dir, start)  # lines past the checkpoint will be recomputed


def checkpoint_state(config: TrainConfig, fingerprint: str, world: int, step: int) -> dict:
    """The JSON part of a checkpoint (beside the tensors pddlib.checkpoint saves)."""
    return {"config": config.to_dict(), "dataset": fingerprint, "world_size": world,
            "lr_schedule": {"kind": "warmup-cosine", "step": step,
                            "lr": learning_rate(config, max(step - 1, 0))},
            # The random stream of step s is step_generator(seed, s): nothing else to save.
            "rng": {"scheme": "sha256(seed:stream:step) per step", "seed": config.seed,
                    "next_step": step}}


def autoencoder_of(config: TrainConfig) -> AutoencoderKL | None:
    """The run's autoencoder (None for pixel diffusion), loaded once per training call."""
    return None if config.autoencoder is None else load_autoencoder(config.autoencoder)


def save_pipeline(out_dir: Path, unet: UNet2DModel, ema: EMAModel, config: TrainConfig,
                  vae: AutoencoderKL | None) -> None:
    """Write the EMA weights as a diffusers pipeline folder, train_config.json and their record."""
    # Until the new record is written, none: a crash mid-save leaves a folder that claims nothing.
    (out_dir / runs.CHECKSUMS).unlink(missing_ok=True)
    ema_unet = UNet2DModel.from_config(unet.config)
    ema.copy_to(ema_unet.parameters())
    pipe = PDDiffusionPipeline(ema_unet, objective_for(config).noise_scheduler(), vae)
    pipe.with_scheduler(DEFAULT_SCHEDULER).save_pretrained(out_dir)
    runs.write_config(out_dir, config.to_dict())
    if vae is not None:  # the autoencoder's own provenance travels with it
        record = json.dumps(training_record(config.autoencoder), indent=1) + "\n"
        (out_dir / runs.VAE / runs.TRAINING_RECORD).write_text(record, encoding="utf-8")
        manifest = autoencoder_folder(config.autoencoder) / runs.MANIFEST
        if manifest.is_file():
            (out_dir / runs.VAE / runs.PROVENANCE).mkdir(exist_ok=True)
            shutil.copyfile(manifest, out_dir / runs.VAE / runs.MANIFEST)
    write_record(out_dir, files_under(out_dir, PIPELINE_PARTS))


def save_all(out_dir: Path, step: int, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
             ema: EMAModel, state: dict, config: TrainConfig, vae: AutoencoderKL | None) -> None:
    """A checkpoint and the EMA pipeline of `step`, refusing weights that are no longer finite."""
    if not all(torch.isfinite(p).all() for p in unet.parameters()):
        raise TrainingDiverged(f"Weights became NaN/inf before step {step}'s checkpoint; "
                               "the last good checkpoint was kept. Lower the learning rate.")
    save_checkpoint(out_dir, step, unet, optimizer, ema, state, config.keep_checkpoints)
    save_pipeline(out_dir, unet, ema, config, vae)


@torch.no_grad()
def sample_grid(unet: UNet2DModel, ema: EMAModel, config: TrainConfig, path: Path,
                vae: AutoencoderKL | None) -> None:
    """Sample config.sample_n images (classes in turn) with the EMA weights; save one PNG grid."""
    ema.store(unet.parameters())
    ema.copy_to(unet.parameters())
    unet.eval()
    try:
        pipe = PDDiffusionPipeline(unet, objective_for(config).noise_scheduler(), vae)
        pipe = pipe.with_scheduler(config.sample_scheduler)
        images = pipe(config.sample_n, class_labels=pipe.classes_in_turn(config.sample_n),
                      num_inference_steps=config.sample_steps,
                      guidance_scale=config.sample_guidance,
                      generator=torch.Generator().manual_seed(config.seed)).images
    finally:
        ema.restore(unet.parameters())
        unet.train()
    path.parent.mkdir(parents=True, exist_ok=True)
    pil_grid(images, nrow=math.ceil(math.sqrt(config.sample_n))).save(path)
