"""The training loop: a diffusers UNet2DModel on accelerate, with EMA, checkpoints and exact resume.

Read it top to bottom like nanoGPT's train.py. The choices that matter, and why:
- The dataset is decoded and resized ONCE into a tensor in memory (small public-domain sets fit
  easily), so a step costs only the UNet's forward and backward, never PIL.
- All randomness of step s (which images, flips, label dropout, timesteps, noise) comes from a
  generator seeded by (seed, s) and is drawn for the whole global batch; each process takes its
  slice. So a resumed run needs no RNG state beyond the step number, and one process or two see
  the same batches.
- Checkpoints are safetensors (weights, EMA, optimizer tensors) plus JSON (step, config,
  optimizer hyper-parameters, EMA counters, LR schedule, RNG scheme): nothing is ever unpickled.
  They are written to a temporary folder and renamed, so a crash never leaves half a checkpoint.
- The output folder is a diffusers pipeline folder (EMA weights) that `from_pretrained` loads.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import datasets
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from pddlib.data.transforms import to_tensor
from pddlib.defaults import DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.models import ModelConfig, build_unet, get_preset, null_class, predict
from pddlib.pipeline import PDDiffusionPipeline, set_scheduler
from pddlib.provenance import write_card, write_provenance

CHECKPOINTS = "checkpoints"
CONFIG_FILE = "train_config.json"
LOSS_LOG = "loss.jsonl"
# Fields that may change when resuming: they do not change what a training step computes.
RUNTIME_FIELDS = ("max_steps", "checkpoint_every", "keep_checkpoints", "sample_every",
                  "sample_n", "sample_steps", "sample_scheduler", "sample_guidance")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved as train_config.json beside the model."""

    preset: str = "cpu-tiny"  # model preset (pddlib.models.PRESETS)
    model: ModelConfig | None = None  # a custom model shape instead of the preset
    conditional: bool = True  # class-conditional (needs labels) or unconditional
    # cpu-tiny: at equal time, steps of 16 images beat half as many of 32 (FD-pdcls 9.5 vs 11.0),
    # and 2600 steps beat 1900 (class agreement 77 % vs 61 %; benchmarks/RESULTS.md). 2600 steps
    # take 12 minutes at 0.28 s (2 idle cores), 19 at the 0.44 s of a slower 2-core machine.
    max_steps: int = 2600  # optimizer steps
    batch_size: int = 16  # images per optimizer step, over all processes and accumulation
    grad_accum: int = 1  # micro-batches per optimizer step (same result, less memory)
    lr: float = 2e-3  # peak learning rate (AdamW)
    warmup_steps: int = 50  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.05  # the cosine decays to lr * min_lr_ratio at max_steps
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max global gradient norm
    prediction_type: str = "v_prediction"  # what the UNet predicts: "v_prediction" or "epsilon"
    snr_gamma: float | None = 5.0  # min-SNR-gamma loss weighting; None for plain MSE
    beta_schedule: str = "squaredcos_cap_v2"  # diffusers beta schedule of the training noise
    num_train_timesteps: int = 1000
    timestep_shift: float = 1.0  # > 1 draws high-noise timesteps more often (draw_timesteps)
    ema_decay: float = 0.999  # upper bound of the EMA decay
    ema_power: float = 0.75  # EMA warm-up: decay = 1 - (1 + step) ** -power, capped above
    label_dropout: float = 0.1  # fraction of labels replaced by the null class (for guidance)
    hflip: bool = True  # random horizontal flips
    mixed_precision: str = "auto"  # "no", "fp16", "bf16"; "auto" = bf16/fp16 on CUDA, else no
    checkpoint_every: int = 200  # steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # how many recent checkpoints to keep
    sample_every: int = 650  # steps between sample grids (0 = only at the end)
    sample_n: int = 16  # images per sample grid
    sample_steps: int = DEFAULT_STEPS  # denoising steps of the sample grids
    sample_scheduler: str = DEFAULT_SCHEDULER  # scheduler of the sample grids
    sample_guidance: float = 2.0  # guidance scale of the sample grids (conditional models)
    seed: int = 0

    @property
    def model_config(self) -> ModelConfig:
        """The model shape: `model` when given, else the preset."""
        return self.model if self.model is not None else get_preset(self.preset)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Inverse of to_dict."""
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        if d.get("model") is not None:
            d["model"] = ModelConfig(**{k: tuple(v) if isinstance(v, list) else v
                                        for k, v in d["model"].items()})
        if "adam_betas" in d:
            d["adam_betas"] = tuple(d["adam_betas"])
        return cls(**d)


# Per-preset training defaults; TrainConfig's own defaults are the cpu-tiny recipe.
RECIPES: dict[str, TrainConfig] = {
    "cpu-tiny": TrainConfig(preset="cpu-tiny"),
    "colab-t4": TrainConfig(preset="colab-t4", batch_size=64, lr=3e-4, warmup_steps=500,
                            max_steps=20_000, ema_decay=0.9999, checkpoint_every=1000,
                            sample_every=1000),
    "gpu-base": TrainConfig(preset="gpu-base", batch_size=64, lr=1e-4, warmup_steps=500,
                            max_steps=50_000, ema_decay=0.9999, checkpoint_every=2000,
                            sample_every=2000),
}


def recipe(preset: str, **overrides) -> TrainConfig:
    """The training config for a model preset, with fields overridden."""
    if preset not in RECIPES:
        get_preset(preset)  # raises the "unknown preset" message
    return replace(RECIPES[preset], **overrides)


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
    timesteps: torch.Tensor  # (B,) long
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


def draw_batch(config: TrainConfig, step: int, n: int) -> Batch:
    """All random draws of one optimizer step, a pure function of (seed, step)."""
    g = step_generator(config.seed, step)
    b, s = config.batch_size, config.model_config.sample_size
    return Batch(
        index=batch_indices(config.seed, step, b, n),
        flip=(torch.rand(b, generator=g) < 0.5) & config.hflip,
        drop=torch.rand(b, generator=g) < config.label_dropout,
        timesteps=draw_timesteps(b, config.num_train_timesteps, config.timestep_shift, g),
        noise=torch.randn(b, 3, s, s, generator=g),
    )


# ---------------------------------------------------------------- objective and schedule


def noise_scheduler(config: TrainConfig) -> DDPMScheduler:
    """The training noise schedule; samplers are built from its config."""
    # "trailing" only affects sampling (set_timesteps): few-step samplers start at t = T - 1.
    return DDPMScheduler(num_train_timesteps=config.num_train_timesteps,
                         beta_schedule=config.beta_schedule,
                         prediction_type=config.prediction_type, timestep_spacing="trailing")


def diffusion_loss(
    unet: torch.nn.Module, scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor,
    timesteps: torch.Tensor, class_labels: torch.Tensor | None, snr_gamma: float | None,
    patch_size: int = 1,
) -> torch.Tensor:
    """Weighted MSE between the UNet's prediction and its target (noise or v); a scalar."""
    x_t = scheduler.add_noise(x0, noise, timesteps)
    v = scheduler.config.prediction_type == "v_prediction"
    target = scheduler.get_velocity(x0, noise, timesteps) if v else noise
    # patch_size is passed, not read from the config: under DDP `unet` is a wrapper without one.
    pred = predict(unet, x_t, timesteps, class_labels, patch_size)
    mse = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
    if snr_gamma is None:
        return mse.mean()
    # Min-SNR-gamma (Hang et al. 2023): cap the weight of easy, low-noise timesteps so they stop
    # dominating the gradient; expressed for an eps (or v) target.
    alphas = scheduler.alphas_cumprod.to(x0.device)[timesteps]
    snr = alphas / (1 - alphas)
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


# ---------------------------------------------------------------- checkpoints


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete checkpoint folder in out_dir, or None."""
    done = sorted((out_dir / CHECKPOINTS).glob("step-*/state.json"))
    return done[-1].parent if done else None


def save_checkpoint(out_dir: Path, step: int, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
                    ema: EMAModel, state: dict, keep: int) -> Path:
    """Write checkpoints/step-NNNNNN atomically (temp folder, then rename); prune old ones."""
    params = dict(unet.named_parameters())
    if not all(torch.isfinite(p).all() for p in params.values()):
        raise TrainingDiverged(f"Weights became NaN/inf before step {step}'s checkpoint; "
                               "the last good checkpoint was kept. Lower the learning rate.")
    root = out_dir / CHECKPOINTS
    final, tmp = root / f"step-{step:06d}", root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    unet.save_pretrained(tmp / "unet")  # raw weights, safetensors
    save_file({name: s.detach().cpu().contiguous() for name, s in zip(params, ema.shadow_params)},
              tmp / "ema.safetensors")
    opt = optimizer.state_dict()
    save_file({f"{i}.{k}": v.detach().cpu().contiguous() for i, st in opt["state"].items()
               for k, v in st.items()}, tmp / "optimizer.safetensors")
    ema_meta = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
    state = {**state, "step": step, "ema": ema_meta,
             "optimizer": {"param_groups": opt["param_groups"]}}
    (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(ckpt: Path, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
                    ema: EMAModel) -> dict:
    """Restore weights, optimizer and EMA from a checkpoint folder; return its state.json."""
    state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
    unet.load_state_dict(load_file(ckpt / "unet" / "diffusion_pytorch_model.safetensors"))
    shadow = load_file(ckpt / "ema.safetensors")
    names = [name for name, _ in unet.named_parameters()]
    ema.load_state_dict({**state["ema"], "shadow_params": [shadow[n] for n in names]})
    tensors = load_file(ckpt / "optimizer.safetensors")
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        opt_state.setdefault(int(i), {})[name] = value
    groups = state["optimizer"]["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    return state


def check_resumable(state: dict, config: TrainConfig, fingerprint: str, ckpt: Path) -> None:
    """Refuse to resume a checkpoint written for another config or dataset, naming the fix."""
    old, new = state["config"], config.to_dict()
    diff = [f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in new
            if k not in RUNTIME_FIELDS and old.get(k) != new[k]]
    if diff:
        raise ValueError(f"Cannot resume from {ckpt}: it was trained with another config "
                         f"({'; '.join(diff)}). Resume with the same settings, or train into a "
                         "new output folder.")
    if state.get("dataset") != fingerprint:
        raise ValueError(f"Cannot resume from {ckpt}: it was trained on another dataset. "
                         "Resume with the same data, or train into a new output folder.")


# ---------------------------------------------------------------- samples and output


def save_pipeline(out_dir: Path, unet: UNet2DModel, ema: EMAModel, config: TrainConfig) -> None:
    """Write the EMA weights as a diffusers pipeline folder, plus train_config.json."""
    ema_unet = UNet2DModel.from_config(unet.config)
    ema.copy_to(ema_unet.parameters())
    pipe = PDDiffusionPipeline(ema_unet, noise_scheduler(config))
    set_scheduler(pipe, DEFAULT_SCHEDULER).save_pretrained(out_dir)
    (out_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=1), encoding="utf-8")
    write_card(out_dir)  # the model card follows the weights (steps, hours, metrics so far)


def sample_grid(unet: UNet2DModel, config: TrainConfig, path: Path) -> None:
    """Sample config.sample_n images (classes in turn) with fixed noise; save one PNG grid."""
    from pddlib.viz import pil_grid

    pipe = set_scheduler(PDDiffusionPipeline(unet, noise_scheduler(config)),
                         config.sample_scheduler)
    pipe.set_progress_bar_config(disable=True)
    n = config.sample_n
    n_classes = null_class(unet)
    labels = [i % n_classes for i in range(n)] if n_classes else None
    images = pipe(n, class_labels=labels, num_inference_steps=config.sample_steps,
                  guidance_scale=config.sample_guidance if labels else 1.0,
                  generator=torch.Generator().manual_seed(config.seed)).images
    path.parent.mkdir(parents=True, exist_ok=True)
    pil_grid(images, nrow=math.ceil(math.sqrt(n))).save(path)


def load_pipeline(out_dir: str | Path, weights: str = "ema") -> PDDiffusionPipeline:
    """Load a trained run: weights="ema" (the saved pipeline) or "raw" (last checkpoint's UNet)."""
    out_dir = Path(out_dir)
    if not (out_dir / "model_index.json").is_file():
        raise FileNotFoundError(f"{out_dir} holds no trained pipeline; train one with "
                                f"`pddlib train --out {out_dir}` first.")
    pipe = PDDiffusionPipeline.from_pretrained(out_dir)
    if weights == "raw":
        ckpt = latest_checkpoint(out_dir)
        if ckpt is None:
            raise FileNotFoundError(f"{out_dir} has no checkpoint with raw weights.")
        pipe = PDDiffusionPipeline(UNet2DModel.from_pretrained(ckpt / "unet"), pipe.scheduler)
    elif weights != "ema":
        raise ValueError(f"weights must be 'ema' or 'raw', got {weights!r}")
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------- the loop


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
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % (world * config.grad_accum):
        raise ValueError(f"batch_size={config.batch_size} must be divisible by processes x "
                         f"grad_accum = {world} x {config.grad_accum}.")
    mcfg = config.model_config
    class_names = class_names_of_dataset(dataset) if config.conditional else None
    fingerprint = dataset_fingerprint(dataset)

    # Data: decoded once, in memory, on the training device.
    x_all, y_all = dataset_to_memory(dataset, mcfg.sample_size)
    x_all, y_all = x_all.to(accelerator.device), y_all.to(accelerator.device)

    unet = build_unet(mcfg, class_names, seed=config.seed)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, betas=config.adam_betas,
                                  weight_decay=config.weight_decay)
    ema = EMAModel(unet.parameters(), decay=config.ema_decay, use_ema_warmup=True,
                   inv_gamma=1.0, power=config.ema_power)
    scheduler = noise_scheduler(config)

    start = 0
    ckpt = latest_checkpoint(out_dir)
    if ckpt is not None and not resume:
        raise ValueError(f"{out_dir} already holds a training run ({ckpt.name}). Pass "
                         "resume=True (--resume) to continue it, or choose another output folder.")
    if ckpt is not None:
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        check_resumable(state, config, fingerprint, ckpt)
        start = load_checkpoint(ckpt, unet, optimizer, ema)["step"]
        accelerator.print(f"Resuming from {ckpt} (step {start}).")
    ema.to(accelerator.device)
    model, optimizer = accelerator.prepare(unet, optimizer)
    null = null_class(unet)

    log_path = out_dir / LOSS_LOG
    if accelerator.is_main_process:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CONFIG_FILE).write_text(json.dumps(config.to_dict(), indent=1), "utf-8")
        # Provenance: exactly which images (and licences) this model learns from, and on what.
        write_provenance(out_dir, dataset, device=accelerator.device, processes=world,
                         start_step=start, mixed_precision=accelerator.mixed_precision)
        # Drop log lines past the checkpoint we resume from: they will be recomputed.
        old = log_path.read_text("utf-8").splitlines() if log_path.exists() else []
        kept = [ln for ln in old if ln.strip() and json.loads(ln)["step"] <= start]
        log_path.write_text("".join(ln + "\n" for ln in kept), "utf-8")
    # Kept open for the whole loop (closed below); only the main process writes the log.
    # Line-buffered, so the log on disk follows the run step by step (resume trims it anyway).
    log = (open(log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115
           if accelerator.is_main_process else None)

    def checkpoint(step: int) -> None:
        if accelerator.is_main_process:
            log.flush()
            state = {"config": config.to_dict(), "dataset": fingerprint, "world_size": world,
                     "lr_schedule": {"kind": "warmup-cosine", "step": step,
                                     "lr": learning_rate(config, max(step - 1, 0))},
                     # The random stream of step s is step_generator(seed, s): nothing else to save.
                     "rng": {"scheme": "sha256(seed:stream:step) per step", "seed": config.seed,
                             "next_step": step}}
            save_checkpoint(out_dir, step, accelerator.unwrap_model(model), optimizer, ema,
                            state, config.keep_checkpoints)
            save_pipeline(out_dir, accelerator.unwrap_model(model), ema, config)
        accelerator.wait_for_everyone()

    def samples(step: int) -> None:
        if accelerator.is_main_process:
            raw = accelerator.unwrap_model(model)
            ema.store(raw.parameters())
            ema.copy_to(raw.parameters())
            raw.eval()
            sample_grid(raw, config, out_dir / "samples" / f"step-{step:06d}.png")
            ema.restore(raw.parameters())
            raw.train()
        accelerator.wait_for_everyone()

    bar = tqdm(total=config.max_steps, initial=start, desc="train", unit="step",
               disable=not accelerator.is_main_process)
    model.train()
    train_seconds, recent, loss_value = 0.0, [], float("nan")
    for step in range(start, config.max_steps):
        t0 = time.perf_counter()
        lr = learning_rate(config, step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = draw_batch(config, step, len(x_all))
        total = torch.zeros((), device=accelerator.device)
        for micro in range(config.grad_accum):
            part = batch.part(micro * world + rank, config.grad_accum * world)
            x0 = x_all[part.index.to(accelerator.device)]
            x0 = torch.where(part.flip.to(x0.device)[:, None, None, None], x0.flip(-1), x0)
            labels = None
            if null is not None:
                labels = torch.where(part.drop.to(x0.device), null,
                                     y_all[part.index.to(x0.device)])
            # Only the last micro-batch synchronises gradients across processes.
            sync = micro == config.grad_accum - 1
            with nullcontext() if sync else accelerator.no_sync(model):
                loss = diffusion_loss(model, scheduler, x0, part.noise.to(x0.device),
                                      part.timesteps.to(x0.device), labels, config.snr_gamma,
                                      mcfg.patch_size)
                accelerator.backward(loss / config.grad_accum)
            total += loss.detach() / config.grad_accum
        loss_value = accelerator.reduce(total, reduction="mean").item()
        if not math.isfinite(loss_value):
            last = latest_checkpoint(out_dir)
            raise TrainingDiverged(
                f"Training stopped: the loss became {loss_value} at step {step + 1}. The last "
                f"good checkpoint is {last or 'none (no checkpoint yet)'}; resume from it with "
                f"resume=True after lowering lr (now {config.lr}) or using mixed_precision='no'.")
        accelerator.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        ema.step(accelerator.unwrap_model(model).parameters())
        train_seconds += time.perf_counter() - t0
        done = step + 1

        recent = (recent + [loss_value])[-50:]
        if log is not None:
            log.write(json.dumps({"step": done, "loss": loss_value, "lr": lr,
                                  "seconds": round(train_seconds, 3)}) + "\n")
        bar.update(1)
        if done % 10 == 0:
            bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")
        if done % config.checkpoint_every == 0 or done == config.max_steps:
            checkpoint(done)
        if (config.sample_every and done % config.sample_every == 0) or done == config.max_steps:
            samples(done)
        if callback is not None:
            callback(StepInfo(done, config.max_steps, loss_value, lr,
                              accelerator.unwrap_model(model), out_dir))
    bar.close()
    if log is not None:
        log.close()
    if start >= config.max_steps and accelerator.is_main_process:
        # Nothing left to train (a finished run, resumed): make sure the pipeline is on disk.
        save_pipeline(out_dir, accelerator.unwrap_model(model), ema, config)
    steps_done = config.max_steps - start
    return TrainResult(
        out_dir=out_dir, step=max(start, config.max_steps),
        loss=sum(recent) / len(recent) if recent else float("nan"), seconds=train_seconds,
        images_per_second=steps_done * config.batch_size / train_seconds if train_seconds else 0.0,
        resumed_from=start)


def read_loss_log(out_dir: str | Path) -> list[dict]:
    """The loss log of a run: [{"step", "loss", "lr", "seconds"}, ...]."""
    path = Path(out_dir) / LOSS_LOG
    return [json.loads(ln) for ln in path.read_text("utf-8").splitlines() if ln.strip()]


def tiny_config(**overrides) -> TrainConfig:
    """A config that trains the TINY model in seconds (tests, FAST notebooks)."""
    from pddlib.models import TINY

    base = TrainConfig(model=TINY, max_steps=4, batch_size=8, lr=1e-3, warmup_steps=2,
                       checkpoint_every=2, sample_every=0, sample_n=4, sample_steps=2)
    return replace(base, **overrides)
