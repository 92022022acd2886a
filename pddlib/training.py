"""The training loop: a diffusers UNet2DModel on accelerate, with EMA, checkpoints and exact resume.

Read it top to bottom like nanoGPT's train.py. The choices that matter, and why:
- The dataset is decoded and resized ONCE into a tensor in memory (small public-domain sets fit
  easily), so a step costs only the UNet's forward and backward, never PIL.
- All randomness of step s (which images, flips, label dropout, timesteps, noise) comes from a
  generator seeded by (seed, s) and is drawn for the whole global batch; each process takes its
  slice. So a resumed run needs no RNG state beyond the step number, and one process or two see
  the same batches.
- Checkpoints (pddlib.checkpoint) are safetensors plus JSON (step, config, optimizer
  hyper-parameters, EMA counters, LR schedule, RNG scheme): nothing is ever unpickled, and a
  crash never leaves half of one.
- The output folder (layout: pddlib.runs) is a diffusers pipeline folder (EMA weights) that
  `PDDiffusionPipeline.from_run` loads. The trainer writes weights, logs and provenance; the
  model card is rendered afterwards (`pddlib card`, or the end of `pddlib train`), so a card
  bug can never stop a run.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler, UNet2DModel
from diffusers.training_utils import EMAModel

from pddlib import runs
from pddlib.autoencoder import encode, factor, load_autoencoder, training_record
from pddlib.checkpoint import load_checkpoint, read_state, save_checkpoint
from pddlib.data.checks import require_accepted
from pddlib.data.transforms import to_tensor
from pddlib.defaults import DEFAULT_SCHEDULER
from pddlib.flow import TIMESTEPS, flow_loss, logit_normal_times, shift_times
from pddlib.models import build_unet, null_class
from pddlib.noise import immiscible_order
from pddlib.noise import snr as snr_of
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.provenance import write_provenance
from pddlib.recipes import RUNTIME_FIELDS, TrainConfig

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


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


# ---------------------------------------------------------------- data and randomness


def dataset_to_memory(dataset: datasets.Dataset, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode and resize every image once: (x (N, 3, size, size) in [-1, 1], labels (N,))."""
    if not isinstance(dataset, datasets.Dataset) or "image" not in dataset.column_names:
        raise ValueError(
            "train() needs a datasets.Dataset with the common schema (an 'image' and "
            "a 'label' column): get one with pddlib.data.load_images(...).")
    if len(dataset) == 0:
        raise ValueError("The dataset is empty: nothing to train on.")
    x = to_tensor(dataset["image"], size)
    labels = list(dataset["label"]) if "label" in dataset.column_names else [0] * len(dataset)
    return x, torch.tensor(labels, dtype=torch.long)


@dataclass(frozen=True)
class TrainingData:
    """What the loop draws batches from: images (or their latents), their mirror images, labels."""

    x: torch.Tensor  # (N, C, S, S)
    mirrored: torch.Tensor  # (N, C, S, S): what a random flip turns each row into
    labels: torch.Tensor  # (N,)

    def to(self, device) -> TrainingData:
        """The same data on another device."""
        return TrainingData(self.x.to(device), self.mirrored.to(device), self.labels.to(device))


def training_data(dataset: datasets.Dataset, config: TrainConfig,
                  vae: AutoencoderKL | None = None) -> TrainingData:
    """Pixels in [-1, 1], or the autoencoder's latents of them, with mirror images and labels."""
    mcfg = config.model_config
    if vae is None:
        x, y = dataset_to_memory(dataset, mcfg.sample_size)
        return TrainingData(x, x.flip(-1), y)
    f, channels = factor(vae), vae.config.latent_channels
    if mcfg.in_channels != channels:
        raise ValueError(f"The autoencoder in {config.autoencoder} makes {channels}-channel "
                         f"latents, but the model has in_channels={mcfg.in_channels}: set "
                         f"in_channels={channels} in the ModelConfig.")
    x, y = dataset_to_memory(dataset, mcfg.sample_size * f)
    # A mirrored latent is not the latent of the mirrored image: encode both.
    return TrainingData(encode(vae, x), encode(vae, x.flip(-1)), y)


def class_names_of_dataset(dataset: datasets.Dataset) -> list[str]:
    """Class names from the dataset's ClassLabel feature."""
    feature = dataset.features.get("label")
    if not isinstance(feature, datasets.ClassLabel):
        # ValueError, not TypeError: a user error, which the CLI reports in one line.
        raise ValueError(  # noqa: TRY004
            "A conditional model needs a 'label' ClassLabel column (common schema); "
            "use pddlib.data.load_images(...) or train with conditional=False.")
    return list(feature.names)


def dataset_fingerprint(dataset: datasets.Dataset) -> str:
    """Short hash of the dataset's identity (sha1 column, labels), to refuse a wrong resume."""
    h = hashlib.sha1()
    for col in ("sha1", "label"):
        if col in dataset.column_names:
            h.update(json.dumps(list(dataset[col])).encode())
    h.update(str(len(dataset)).encode())
    return h.hexdigest()[:16]


def step_generator(seed: int, step: int, stream: str = "step") -> torch.Generator:
    """A CPU generator that depends only on (seed, step, stream): the RNG state of a step."""
    digest = hashlib.sha256(f"{seed}:{stream}:{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def batch_indices(seed: int, step: int, batch_size: int, n: int) -> torch.Tensor:
    """Rows of step `step`: consecutive slices of per-epoch permutations (no repeats in an epoch)."""
    start = step * batch_size
    out, pos = [], start
    while pos < start + batch_size:
        epoch, offset = divmod(pos, n)
        perm = torch.randperm(n, generator=step_generator(seed, epoch, "epoch"))
        take = min(n - offset, start + batch_size - pos)
        out.append(perm[offset:offset + take])
        pos += take
    return torch.cat(out)


@dataclass(frozen=True)
class Batch:
    """One global batch's random draws (CPU tensors, batch dimension first)."""

    index: torch.Tensor  # (B,) rows of the dataset
    flip: torch.Tensor  # (B,) bool
    drop: torch.Tensor  # (B,) bool: label replaced by the null class
    timesteps: torch.Tensor  # (B,) long; flow matching: float times in (0, 1)
    noise: torch.Tensor  # (B, 3, S, S)

    def part(self, i: int, parts: int) -> Batch:
        """The i-th of `parts` equal slices (one process's micro-batch)."""
        k = len(self.index) // parts
        return Batch(*(getattr(self, f.name)[i * k:(i + 1) * k] for f in fields(self)))


def draw_timesteps(n: int, num_train_timesteps: int, shift: float,
                   generator: torch.Generator) -> torch.Tensor:
    """n training timesteps: uniform for shift 1; shift > 1 favours high noise (SD3's time shift)."""
    if shift == 1.0:  # the plain uniform draw, kept as it was so old runs stay reproducible
        return torch.randint(0, num_train_timesteps, (n,), generator=generator)
    u = torch.rand(n, generator=generator)
    u = shift * u / (1 + (shift - 1) * u)  # maps [0, 1] onto itself, pushing mass towards 1
    return (u * num_train_timesteps).long().clamp(max=num_train_timesteps - 1)


def draw_times(config: TrainConfig, n: int, generator: torch.Generator) -> torch.Tensor:
    """n training timesteps, or for flow matching n shifted logit-normal times in (0, 1)."""
    if config.prediction_type == "flow":
        return shift_times(logit_normal_times(n, generator), config.timestep_shift)
    return draw_timesteps(n, config.num_train_timesteps, config.timestep_shift, generator)


def draw_batch(config: TrainConfig, step: int, n: int) -> Batch:
    """All random draws of one optimizer step, a pure function of (seed, step)."""
    g = step_generator(config.seed, step)
    b, s = config.batch_size, config.model_config.sample_size
    return Batch(
        index=batch_indices(config.seed, step, b, n),
        flip=(torch.rand(b, generator=g) < 0.5) & config.hflip,
        drop=torch.rand(b, generator=g) < config.label_dropout,
        timesteps=draw_times(config, b, g),
        noise=torch.randn(b, config.model_config.in_channels, s, s, generator=g),
    )


# ---------------------------------------------------------------- objective and schedule


PREDICTION_TYPES = ("v_prediction", "epsilon", "flow")
NoiseSchedule = DDPMScheduler | FlowMatchEulerDiscreteScheduler


def check_objective(config: TrainConfig) -> None:
    """Refuse objective settings that do not go together, naming the fix."""
    if config.prediction_type not in PREDICTION_TYPES:
        raise ValueError(f"Unknown prediction_type {config.prediction_type!r}; choose one of "
                         f"{list(PREDICTION_TYPES)}.")
    if config.prediction_type == "flow" and config.snr_gamma is not None:
        raise ValueError("Flow matching weights every time alike: set snr_gamma=None "
                         "(min-SNR weighting is for the DDPM objectives).")
    if config.prediction_type == "flow" and config.num_train_timesteps != TIMESTEPS:
        raise ValueError(f"Flow matching calls the UNet at timestep {TIMESTEPS} t: keep "
                         f"num_train_timesteps={TIMESTEPS}.")


def noise_scheduler(config: TrainConfig) -> NoiseSchedule:
    """The training noise schedule; samplers are built from its config."""
    if config.prediction_type == "flow":
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=TIMESTEPS,
                                               shift=config.timestep_shift)
    # "trailing" only affects sampling (set_timesteps): few-step samplers start at t = T - 1.
    return DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                         beta_schedule=config.beta_schedule,
                         prediction_type=config.prediction_type, timestep_spacing="trailing")


def diffusion_loss(
    unet: torch.nn.Module, scheduler: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor,
    timesteps: torch.Tensor, class_labels: torch.Tensor | None, snr_gamma: float | None,
) -> torch.Tensor:
    """Weighted MSE between the UNet's prediction and its target (noise, v or velocity); a scalar."""
    if isinstance(scheduler, FlowMatchEulerDiscreteScheduler):
        return flow_loss(unet, x0, noise, timesteps, class_labels)
    x_t = scheduler.add_noise(x0, noise, timesteps)
    v = scheduler.config.prediction_type == "v_prediction"
    target = scheduler.get_velocity(x0, noise, timesteps) if v else noise
    pred = unet(x_t, timesteps, class_labels=class_labels).sample
    mse = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if snr_gamma is None:
        return mse.mean()
    # Min-SNR-gamma (Hang et al. 2023): cap the weight of easy, low-noise timesteps so they stop
    # dominating the gradient; expressed for an eps (or v) target.
    snr = snr_of(scheduler.alphas_cumprod.to(x0.device)[timesteps])
    weight = snr.clamp(max=snr_gamma) / (snr + 1 if v else snr)
    return (weight * mse).mean()


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to config.lr, then cosine decay to lr * min_lr_ratio at max_steps."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    low = config.lr * config.min_lr_ratio
    return low + (config.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def resolve_precision(mixed_precision: str) -> str:
    """'auto' -> bf16 (or fp16) on CUDA, 'no' elsewhere; other values pass through."""
    if mixed_precision != "auto":
        return mixed_precision
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


# ---------------------------------------------------------------- resume and output


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
    """Load the newest checkpoint into unet/optimizer/ema when resuming; the step to start at."""
    ckpt = runs.latest_checkpoint(out_dir)
    if ckpt is None:
        return 0
    if not resume:
        raise ValueError(f"{out_dir} already holds a training run ({ckpt.name}). Pass "
                         "resume=True (--resume) to continue it, or choose another output folder.")
    check_resumable(read_state(ckpt), config, fingerprint, ckpt)
    return load_checkpoint(ckpt, unet, optimizer, ema)["step"]


def new_model(config: TrainConfig, class_names: list[str] | None,
              ) -> tuple[UNet2DModel, torch.optim.Optimizer, EMAModel]:
    """A freshly initialised UNet (seeded), its AdamW optimizer and its EMA."""
    unet = build_unet(config.model_config, class_names, seed=config.seed)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    ema = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True,
                   inv_gamma=1.0, power=config.ema_power)
    return unet, optimizer, ema


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
    """Write the EMA weights as a diffusers pipeline folder, plus train_config.json."""
    ema_unet = UNet2DModel.from_config(unet.config)
    ema.copy_to(ema_unet.parameters())
    pipe = PDDiffusionPipeline(ema_unet, noise_scheduler(config), vae)
    pipe.with_scheduler(DEFAULT_SCHEDULER).save_pretrained(out_dir)
    runs.write_config(out_dir, config.to_dict())
    if vae is not None:  # the autoencoder's own provenance travels with it
        record = json.dumps(training_record(config.autoencoder), indent=1) + "\n"
        (out_dir / "vae" / "training.json").write_text(record, encoding="utf-8")


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
    from pddlib.viz import pil_grid

    ema.store(unet.parameters())
    ema.copy_to(unet.parameters())
    unet.eval()
    try:
        pipe = PDDiffusionPipeline(unet, noise_scheduler(config), vae)
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


# ---------------------------------------------------------------- the loop


def train_step(accelerator, model, optimizer, ema: EMAModel, scheduler: NoiseSchedule,
               config: TrainConfig, batch: Batch, data: TrainingData, null: int | None) -> float:
    """One optimizer step over this process's share of `batch`; the loss averaged over processes."""
    world, rank, dev = accelerator.num_processes, accelerator.process_index, accelerator.device
    total = torch.zeros((), device=dev)
    for micro in range(config.grad_accum):
        part = batch.part(micro * world + rank, config.grad_accum * world)
        index = part.index.to(dev)
        x0 = torch.where(part.flip.to(dev)[:, None, None, None], data.mirrored[index],
                         data.x[index])
        labels = None if null is None else torch.where(part.drop.to(dev), null, data.labels[index])
        noise = part.noise.to(dev)
        if config.immiscible:
            noise = noise[immiscible_order(x0, noise)]
        # Only the last micro-batch synchronises gradients across processes.
        sync = micro == config.grad_accum - 1
        with nullcontext() if sync else accelerator.no_sync(model):
            loss = diffusion_loss(model, scheduler, x0, noise, part.timesteps.to(dev), labels,
                                  config.snr_gamma)
            accelerator.backward(loss / config.grad_accum)
        total += loss.detach() / config.grad_accum
    loss_value = accelerator.reduce(total, reduction="mean").item()
    if math.isfinite(loss_value):
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        ema.step(accelerator.unwrap_model(model).parameters())
    optimizer.zero_grad(set_to_none=True)
    return loss_value


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
    from accelerate import Accelerator
    from tqdm.auto import tqdm

    out_dir = Path(out_dir)
    accelerator = Accelerator(mixed_precision=resolve_precision(config.mixed_precision))
    world, main = accelerator.num_processes, accelerator.is_main_process
    if config.batch_size % (world * config.grad_accum):
        raise ValueError(f"batch_size={config.batch_size} must be divisible by processes x "
                         f"grad_accum = {world} x {config.grad_accum}.")
    check_objective(config)
    require_accepted(dataset)  # nothing is trained on without an accepted licence decision
    class_names = class_names_of_dataset(dataset) if config.conditional else None
    fingerprint = dataset_fingerprint(dataset)
    # Data: decoded (and encoded, for latent diffusion) once, in memory, on the training device.
    vae = autoencoder_of(config)
    data = training_data(dataset, config, vae).to(accelerator.device)

    unet, optimizer, ema = new_model(config, class_names)
    start = resume_step(out_dir, resume, config, fingerprint, unet, optimizer, ema)
    if start:
        accelerator.print(f"Resuming from {runs.latest_checkpoint(out_dir)} (step {start}).")
    ema.to(accelerator.device)
    model, optimizer = accelerator.prepare(unet, optimizer)
    scheduler, null = noise_scheduler(config), null_class(unet)
    if main:
        open_run(out_dir, config, dataset, accelerator, start)

    seconds, recent = 0.0, []
    with ExitStack() as stack:
        # Line-buffered, so the log on disk follows the run step by step.
        log = (stack.enter_context(open(out_dir / runs.LOSS_LOG, "a", encoding="utf-8",
                                        buffering=1)) if main else None)
        bar = stack.enter_context(tqdm(total=config.max_steps, initial=start, desc="train",
                                       unit="step", disable=not main))
        model.train()
        for step in range(start, config.max_steps):
            t0 = time.perf_counter()
            lr = learning_rate(config, step)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss = train_step(accelerator, model, optimizer, ema, scheduler, config,
                              draw_batch(config, step, len(data.x)), data, null)
            if not math.isfinite(loss):
                raise TrainingDiverged(
                    f"Training stopped: the loss became {loss} at step {step + 1}. The last good "
                    f"checkpoint is {runs.latest_checkpoint(out_dir) or 'none (no checkpoint yet)'};"
                    f" resume from it with resume=True after lowering lr (now {config.lr}) or "
                    "using mixed_precision='no'.")
            seconds += time.perf_counter() - t0
            done, recent = step + 1, (recent + [loss])[-50:]
            raw = accelerator.unwrap_model(model)
            if log is not None:
                log.write(json.dumps({"step": done, "loss": loss, "lr": lr,
                                      "seconds": round(seconds, 3)}) + "\n")
            bar.update(1)
            if done % 10 == 0:
                bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
            last = done == config.max_steps
            save = done % config.checkpoint_every == 0 or last
            grid = bool(config.sample_every and done % config.sample_every == 0) or last
            if main and save:
                log.flush()
                save_all(out_dir, done, raw, optimizer, ema,
                         checkpoint_state(config, fingerprint, world, done), config, vae)
            if main and grid:
                sample_grid(raw, ema, config, runs.sample_grid_path(out_dir, done), vae)
            if save or grid:  # the other processes wait while the main one writes
                accelerator.wait_for_everyone()
            if callback is not None:
                callback(StepInfo(done, config.max_steps, loss, lr, raw, out_dir))
    if start >= config.max_steps and main:
        # Nothing left to train (a finished run, resumed): make sure the pipeline is on disk.
        save_pipeline(out_dir, accelerator.unwrap_model(model), ema, config, vae)
    steps_done = config.max_steps - start
    return TrainResult(
        out_dir=out_dir, step=max(start, config.max_steps),
        loss=sum(recent) / len(recent) if recent else float("nan"), seconds=seconds,
        images_per_second=steps_done * config.batch_size / seconds if seconds else 0.0,
        resumed_from=start)
