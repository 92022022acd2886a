"""The training loop: a diffusers UNet2DModel on accelerate, with EMA, checkpoints and exact resume.

Read it top to bottom like nanoGPT's train.py. A step draws its batch (pddlib.batches: a pure
function of seed and step), asks the objective (pddlib.objectives) for the loss, steps AdamW and
the EMA; every so often the run is saved (pddlib.saving). The recipe is a TrainConfig
(pddlib.recipes).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import torch
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel

from pddlib import runs
from pddlib.batches import (
    Batch,
    TrainingData,
    class_names_of_dataset,
    draw_batch,
    training_data,
)
from pddlib.data.checks import require_accepted
from pddlib.models import build_unet, null_class
from pddlib.noise import immiscible_order
from pddlib.objectives import Objective, objective_for
from pddlib.precision import choose_precision, current_hardware, precision_message
from pddlib.progress import progress_bar
from pddlib.provenance import dataset_fingerprint
from pddlib.recipes import TrainConfig, learning_rate
from pddlib.saving import (
    TrainingDiverged,
    autoencoder_of,
    checkpoint_state,
    open_run,
    resume_step,
    sample_grid,
    save_all,
    save_pipeline,
)


@dataclass(frozen=True)
class StepInfo:
    """What the per-step callback sees (after the step, its checkpoint and its samples)."""

    step: int
    max_steps: int
    loss: float
    lr: float
    unet: UNet2DModel = field(repr=False)  # the raw (non-EMA) model being trained
    out_dir: Path


@dataclass(frozen=True)
class TrainResult:
    """Summary of a finished `train` call."""

    out_dir: Path
    step: int
    loss: float  # mean loss over the last 50 steps of this call
    seconds: float  # wall time of the training steps of this call
    images_per_second: float
    resumed_from: int  # 0 for a fresh run


def resolve_precision(mixed_precision: str) -> str:
    """The precision this machine trains in (pddlib.precision's rule), printed with its reason."""
    hardware = current_hardware()
    chosen = choose_precision(mixed_precision, hardware.device_type, hardware.capability)
    print(precision_message(hardware, mixed_precision, chosen))
    return chosen


def new_model(config: TrainConfig, class_names: list[str] | None,
              ) -> tuple[UNet2DModel, torch.optim.Optimizer, EMAModel]:
    """A freshly initialised UNet (seeded), its AdamW optimizer and its EMA."""
    unet = build_unet(config.model_config, class_names, seed=config.seed)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    ema = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True,
                   inv_gamma=1.0, power=config.ema_power)
    return unet, optimizer, ema


def train_step(accelerator, model, optimizer, ema: EMAModel, objective: Objective,
               config: TrainConfig, batch: Batch, data: TrainingData, null: int | None) -> float:
    """One optimizer step over this process's share of `batch`; the loss averaged over processes."""
    world, rank, dev = accelerator.num_processes, accelerator.process_index, accelerator.device
    total = torch.zeros((), device=dev)
    for micro in range(config.grad_accum):
        part = batch.part(micro * world + rank, config.grad_accum * world)
        index = part.index.to(dev)
        x0 = torch.where(part.flip.to(dev)[:, None, None, None], data.mirrored[index],
                         data.x[index])
        labels = None
        if null is not None:  # dropped labels and unlabelled rows (label -1) train the null class
            labels = data.labels[index]
            labels = torch.where(part.drop.to(dev) | (labels < 0), null, labels)
        noise = part.noise.to(dev)
        if config.immiscible:
            noise = noise[immiscible_order(x0, noise)]
        # Only the last micro-batch synchronises gradients across processes.
        sync = micro == config.grad_accum - 1
        with nullcontext() if sync else accelerator.no_sync(model):
            loss = objective(model, x0, noise, part.times.to(dev), labels)
            accelerator.backward(loss / config.grad_accum)
        total += loss.detach() / config.grad_accum
    loss_value = accelerator.reduce(total, reduction="mean").item()
    if math.isfinite(loss_value):
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        ema.step(accelerator.unwrap_model(model).parameters())
    optimizer.zero_grad(set_to_none=True)
    return loss_value


def diverged(loss: float, step: int, out_dir: Path, config: TrainConfig) -> TrainingDiverged:
    """The error a non-finite loss stops the run with, naming the checkpoint to resume from."""
    return TrainingDiverged(
        f"Training stopped: the loss became {loss} at step {step + 1}. The last good "
        f"checkpoint is {runs.latest_checkpoint(out_dir) or 'none (no checkpoint yet)'}; resume "
        f"from it with resume=True after lowering lr (now {config.lr}) or using "
        "mixed_precision='no'.")


@dataclass
class Session:
    """What one `train` call works with, prepared before the first step."""

    accelerator: object
    objective: Objective
    data: TrainingData
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    ema: EMAModel
    start: int
    fingerprint: str
    vae: object
    null: int | None


def prepare(config: TrainConfig, dataset: datasets.Dataset, out_dir: Path, resume: bool) -> Session:
    """Check the inputs, load the data to the device, build or resume the model; open the run."""
    from accelerate import Accelerator

    accelerator = Accelerator(mixed_precision=resolve_precision(config.mixed_precision))
    world = accelerator.num_processes
    if config.batch_size % (world * config.grad_accum):
        raise ValueError(f"batch_size={config.batch_size} must be divisible by processes x "
                         f"grad_accum = {world} x {config.grad_accum}.")
    objective = objective_for(config)  # refuses settings that do not go together
    require_accepted(dataset)  # nothing is trained on without an accepted licence decision
    class_names = class_names_of_dataset(dataset) if config.conditional else None
    fingerprint = dataset_fingerprint(dataset)
    # Data: decoded (and encoded, for latent diffusion) once, in memory, on the training device.
    vae = autoencoder_of(config)
    data = training_data(dataset, config, vae).to(accelerator.device)
    unet, optimizer, ema = new_model(config, class_names)
    start = resume_step(out_dir, resume, config, fingerprint, unet, optimizer, ema)
    if start:
        accelerator.print(f"Resuming from {runs.checkpoint_dir(out_dir, start)} (step {start}).")
    ema.to(accelerator.device)
    model, optimizer = accelerator.prepare(unet, optimizer)
    if accelerator.is_main_process:
        open_run(out_dir, config, dataset, accelerator, start)
    return Session(accelerator, objective, data, model, optimizer, ema, start, fingerprint, vae,
                   null_class(unet))


def save_due(s: Session, config: TrainConfig, out_dir: Path, done: int) -> None:
    """Write step `done`'s checkpoint and sample grid when they are due (the main process)."""
    last = done == config.max_steps
    save = done % config.checkpoint_every == 0 or last
    grid = bool(config.sample_every and done % config.sample_every == 0) or last
    raw = s.accelerator.unwrap_model(s.model)
    if s.accelerator.is_main_process and save:
        state = checkpoint_state(config, s.fingerprint, s.accelerator.num_processes, done)
        save_all(out_dir, done, raw, s.optimizer, s.ema, state, config, s.vae)
    if s.accelerator.is_main_process and grid:
        sample_grid(raw, s.ema, config, runs.sample_grid_path(out_dir, done), s.vae)
    if save or grid:  # the other processes wait while the main one writes
        s.accelerator.wait_for_everyone()


def train(
    config: TrainConfig,
    dataset: datasets.Dataset,
    out_dir: str | Path,
    callback: Callable[[StepInfo], None] | None = None,
    *,
    resume: bool = False,
) -> TrainResult:
    """Train a UNet on `dataset` (common schema) into `out_dir`; resume=True continues a run.

    Run it as is (one process: CPU, CUDA or MPS), or data-parallel under `accelerate launch
    --num_processes N` (GPUs) or `torchrun --nproc_per_node N` (CPU); the results match the
    one-process run up to floating-point reduction order (benchmarks/ddp_cpu_check.py).
    """
    out_dir = Path(out_dir)
    s = prepare(config, dataset, out_dir, resume)
    main = s.accelerator.is_main_process
    seconds, recent = 0.0, []
    with ExitStack() as stack:
        # Line-buffered, so the log on disk follows the run step by step.
        log = (stack.enter_context(open(out_dir / runs.LOSS_LOG, "a", encoding="utf-8",
                                        buffering=1)) if main else None)
        bar = stack.enter_context(progress_bar(total=config.max_steps, initial=s.start,
                                               desc="train", unit="step", disable=not main))
        s.model.train()
        for step in range(s.start, config.max_steps):
            t0 = time.perf_counter()
            lr = learning_rate(config, step)
            for group in s.optimizer.param_groups:
                group["lr"] = lr
            batch = draw_batch(config, step, len(s.data.x), s.objective)
            loss = train_step(s.accelerator, s.model, s.optimizer, s.ema, s.objective, config,
                              batch, s.data, s.null)
            if not math.isfinite(loss):
                raise diverged(loss, step, out_dir, config)
            seconds += time.perf_counter() - t0
            done, recent = step + 1, (recent + [loss])[-50:]
            if log is not None:
                log.write(json.dumps({"step": done, "loss": loss, "lr": lr,
                                      "seconds": round(seconds, 3)}) + "\n")
            bar.update(1)
            if done % 10 == 0:
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}", refresh=False)
            save_due(s, config, out_dir, done)
            if callback is not None:
                callback(StepInfo(done, config.max_steps, loss, lr,
                                  s.accelerator.unwrap_model(s.model), out_dir))
    if s.start >= config.max_steps and main:
        # Nothing left to train (a finished run, resumed): make sure the pipeline is on disk.
        save_pipeline(out_dir, s.accelerator.unwrap_model(s.model), s.ema, config, s.vae)
    steps_done = config.max_steps - s.start
    return TrainResult(
        out_dir=out_dir, step=max(s.start, config.max_steps),
        loss=sum(recent) / len(recent) if recent else float("nan"), seconds=seconds,
        images_per_second=steps_done * config.batch_size / seconds if seconds else 0.0,
        resumed_from=s.start)
