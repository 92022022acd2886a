"""Training recipes: `TrainConfig` (everything that defines a run) and the named presets' configs.

A recipe is data: the loop (pddlib.training) reads it, the CLI and the notebooks pick one by
name (`recipe("cpu-latent")`), and a run folder saves it as JSON (pddlib.runs.CONFIG_FILE).
Measurements behind the choices live in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace

from pddlib.defaults import DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.models import TINY, TINY_LATENT, ModelConfig, get_preset

# Fields that may change when resuming: they do not change what a training step computes.
RUNTIME_FIELDS = ("max_steps", "checkpoint_every", "keep_checkpoints", "sample_every",
                  "sample_n", "sample_steps", "sample_scheduler", "sample_guidance")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run; saved beside the model (pddlib.runs.CONFIG_FILE).

    The defaults are the course recipe, `pddlib train`'s default preset (cpu-latent).
    """

    preset: str = "cpu-latent"  # model preset (pddlib.models.PRESETS)
    model: ModelConfig | None = None  # a custom model shape instead of the preset
    # Latent diffusion: the folder of a saved autoencoder (pddlib.autoencoder); the UNet then
    # denoises its latents, so `model` must have in_channels = its latent channels and
    # sample_size = image size / its factor. None: pixels.
    autoencoder: str | None = "pd-ae32"
    conditional: bool = True  # class-conditional (needs labels) or unconditional
    # Sized so the workshop's model trains in about a quarter of an hour on two CPU cores
    # (benchmarks/RESULTS.md records the recipe experiments behind these numbers).
    max_steps: int = 2400  # optimizer steps
    batch_size: int = 64  # images per optimizer step, over all processes and accumulation
    grad_accum: int = 1  # micro-batches per optimizer step (same result, less memory)
    lr: float = 1e-3  # peak learning rate (AdamW)
    warmup_steps: int = 200  # linear warm-up from 0 to lr
    min_lr_ratio: float = 0.05  # the cosine decays to lr * min_lr_ratio at max_steps
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max global gradient norm
    # The objective (a name in pddlib.objectives.OBJECTIVES): what the UNet predicts.
    prediction_type: str = "v_prediction"
    snr_gamma: float | None = 5.0  # min-SNR-gamma loss weighting; None for plain MSE
    beta_schedule: str = "squaredcos_cap_v2"  # diffusers beta schedule of the training noise
    num_train_timesteps: int = 1000
    # > 1 draws high-noise times more often (the objective's draw_times); for flow matching it
    # shifts the sampler's noise levels alike.
    timestep_shift: float = 1.0
    # Pair each image with the nearest noise sample of its batch (pddlib.noise.immiscible_order).
    immiscible: bool = False
    ema_decay: float = 0.999  # upper bound of the EMA decay
    ema_power: float = 0.75  # EMA warm-up: decay = 1 - (1 + step) ** -power, capped above
    label_dropout: float = 0.1  # fraction of labels replaced by the null class (for guidance)
    hflip: bool = True  # random horizontal flips
    mixed_precision: str = "auto"  # "no", "fp16", "bf16"; "auto" = bf16/fp16 on CUDA, else no
    checkpoint_every: int = 200  # steps between checkpoints (and one at the end)
    keep_checkpoints: int = 2  # how many recent checkpoints to keep
    sample_every: int = 800  # steps between sample grids (0 = only at the end)
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


# Per-preset training recipes.
RECIPES: dict[str, TrainConfig] = {
    # Pixels, no autoencoder: the earlier course recipe (benchmarks/RESULTS.md).
    "cpu-tiny": TrainConfig(preset="cpu-tiny", autoencoder=None, max_steps=2600, batch_size=16,
                            lr=2e-3, warmup_steps=50, sample_every=650),
    # The course recipe: latent diffusion on the shipped autoencoder, sized for the workshop.
    # At about equal time it drew more classes than cpu-tiny's pixel recipe and than a twice as
    # wide latent UNet (benchmarks/RESULTS.md).
    "cpu-latent": TrainConfig(),
    # The reference model shipped in pddlib/weights: the course recipe trained 3.75 times as
    # long, with a slower EMA.
    "cpu-reference": TrainConfig(preset="cpu-reference", max_steps=9_000, ema_decay=0.9995,
                                 checkpoint_every=1000, sample_every=6000),
    "colab-t4": TrainConfig(preset="colab-t4", autoencoder=None, batch_size=64, lr=3e-4,
                            warmup_steps=500, max_steps=20_000, ema_decay=0.9999,
                            checkpoint_every=1000, sample_every=1000),
    "gpu-base": TrainConfig(preset="gpu-base", autoencoder=None, batch_size=64, lr=1e-4,
                            warmup_steps=500, max_steps=50_000, ema_decay=0.9999,
                            checkpoint_every=2000, sample_every=2000),
}


def recipe(preset: str, **overrides) -> TrainConfig:
    """The training config for a model preset, with fields overridden."""
    if preset not in RECIPES:
        get_preset(preset)  # raises the "unknown preset" message
    return replace(RECIPES[preset], **overrides)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to config.lr, then cosine decay to lr * min_lr_ratio at max_steps."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    low = config.lr * config.min_lr_ratio
    return low + (config.lr - low) * 0.5 * (1 + math.cos(math.pi * progress))


def tiny_config(**overrides) -> TrainConfig:
    """A config that trains the TINY pixel model in seconds (tests, FAST notebooks)."""
    base = TrainConfig(preset="cpu-tiny", model=TINY, autoencoder=None, max_steps=4, batch_size=8,
                       lr=1e-3, warmup_steps=2, checkpoint_every=2, sample_every=0, sample_n=4,
                       sample_steps=2)
    return replace(base, **overrides)


def tiny_latent_config(**overrides) -> TrainConfig:
    """tiny_config's latent twin on the shipped autoencoder (FAST course runs)."""
    return tiny_config(model=TINY_LATENT, autoencoder="pd-ae32", **overrides)
