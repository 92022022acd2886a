"""UNet presets: frozen configs for a 2-core CPU, a Colab T4 and bigger GPUs, built on diffusers.

Every model is a stock diffusers `UNet2DModel`, so it saves, loads and swaps schedulers like any
diffusers model. A class-conditional model gets `num_class_embeds = n_classes + 1`: the extra
last index is the "null" class used for classifier-free guidance (training drops labels to it,
sampling evaluates it beside the requested class). The class names travel in the model's saved
config under the hidden key `_class_names`, so a folder on disk knows its own labels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from diffusers import UNet2DModel

CLASS_NAMES_KEY = "_class_names"


@dataclass(frozen=True)
class ModelConfig:
    """Shape of a UNet2DModel: one entry of `block_out_channels` / `attention` per resolution."""

    sample_size: int = 32  # side the model is trained and sampled at (pixels, or latents)
    block_out_channels: tuple[int, ...] = (32, 64, 128)  # channels per resolution level
    attention: tuple[bool, ...] = (False, False, True)  # self-attention at that level?
    layers_per_block: int = 1  # ResNet blocks per level (the decoder gets one more)
    norm_num_groups: int = 8  # GroupNorm groups; must divide every channel count
    attention_head_dim: int = 32  # channels per attention head
    dropout: float = 0.0  # dropout inside ResNet blocks
    in_channels: int = 3  # 3 for pixels; the autoencoder's latent channels for latent diffusion

    def __post_init__(self) -> None:
        """Reject shapes UNet2DModel would fail on later with a less helpful message."""
        if len(self.attention) != len(self.block_out_channels):
            raise ValueError("attention needs one flag per entry of block_out_channels")
        if any(c % self.norm_num_groups for c in self.block_out_channels):
            raise ValueError(f"norm_num_groups={self.norm_num_groups} must divide every channel "
                             f"count in {self.block_out_channels}")
        factor = 2 ** (len(self.block_out_channels) - 1)
        if self.sample_size % factor:
            raise ValueError(f"sample_size {self.sample_size} must be divisible by {factor} "
                             f"({len(self.block_out_channels)} levels halve it "
                             f"{len(self.block_out_channels) - 1} times)")


LATENT = ModelConfig(sample_size=8, in_channels=4, block_out_channels=(64, 128),
                     attention=(False, True), layers_per_block=2, norm_num_groups=32,
                     attention_head_dim=32)

PRESETS: dict[str, ModelConfig] = {
    # The pixel-space model a 2-core CPU trains within a workshop session. Four levels
    # (32-16-8-4 px) give the global view recognisable shapes need; attention only at 4 px,
    # where it is cheap. The early levels are slim because their full-resolution convolutions
    # cost most of a step: fewer channels there buy more steps in the same time, which scored
    # at least as well (benchmarks/RESULTS.md keeps the FLOPs, step times and scores).
    "cpu-tiny": ModelConfig(sample_size=32, block_out_channels=(24, 48, 96, 128),
                            attention=(False, False, False, True), layers_per_block=1),
    # The course recipe: latent diffusion on the 4 x 8 x 8 latents that the shipped autoencoder
    # pd-ae32 makes of 32 px images (pddlib.autoencoder). Two levels, attention at 4 x 4 latents.
    # Narrow on purpose: at equal training time, seeing more latents a second (a narrow UNet,
    # bigger batches) drew more classes than a wider UNet (benchmarks/RESULTS.md).
    "cpu-latent": LATENT,
    # The shipped reference model (pddlib/weights): the same UNet, trained several times longer.
    "cpu-reference": LATENT,
    # A Colab T4 (16 GB, ~8 TFLOP/s fp32, fp16 tensor cores): 64 px, attention at 16 and 8 px.
    "colab-t4": ModelConfig(sample_size=64, block_out_channels=(64, 128, 256, 256),
                            attention=(False, False, True, True), layers_per_block=2,
                            norm_num_groups=32),
    # Comparable to diffusers' examples/unconditional_image_generation UNet (~110 M parameters
    # at 128 px there); works at 64 or 128 px: `dataclasses.replace(PRESETS["gpu-base"], ...)`.
    "gpu-base": ModelConfig(sample_size=128, block_out_channels=(128, 128, 256, 256, 512, 512),
                            attention=(False, False, False, False, True, False),
                            layers_per_block=2, norm_num_groups=32, attention_head_dim=64),
}

# A model for tests and FAST notebook runs: trains a step in milliseconds, learns nothing useful.
TINY = ModelConfig(sample_size=16, block_out_channels=(16, 32), attention=(False, False),
                   layers_per_block=1, norm_num_groups=8, attention_head_dim=16)
# Its latent twin, on the shipped autoencoder's 8 x 8 latents (FAST course runs).
TINY_LATENT = replace(TINY, sample_size=8, in_channels=4)


def get_preset(name: str, **overrides) -> ModelConfig:
    """Return the preset called `name` (a key of PRESETS), fields overridden."""
    if name not in PRESETS:
        raise ValueError(f"Unknown model preset {name!r}; choose one of {sorted(PRESETS)}.")
    return replace(PRESETS[name], **overrides)


def build_unet(config: ModelConfig, class_names: list[str] | None = None,
               seed: int | None = None) -> UNet2DModel:
    """Build a fresh UNet2DModel (C -> C channels); class-conditional when class_names is given.

    With `seed`, the initial weights depend only on it (the caller's global RNG is untouched).
    """
    if seed is not None:
        # diffusers initialises from the global RNG: fork it so the caller's stream is unchanged.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return build_unet(config, class_names)
    down = tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in config.attention)
    up = tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(config.attention))
    unet = UNet2DModel(
        sample_size=config.sample_size,
        in_channels=config.in_channels,
        out_channels=config.in_channels,
        block_out_channels=config.block_out_channels,
        down_block_types=down,
        up_block_types=up,
        layers_per_block=config.layers_per_block,
        norm_num_groups=config.norm_num_groups,
        attention_head_dim=config.attention_head_dim,
        dropout=config.dropout,
        # One embedding row per class plus the null class for classifier-free guidance.
        num_class_embeds=len(class_names) + 1 if class_names else None,
    )
    if class_names:
        unet.register_to_config(**{CLASS_NAMES_KEY: list(class_names)})
    return unet


def image_shape(unet: UNet2DModel) -> tuple[int, int, int]:
    """(channels, height, width) of the images a model denoises."""
    cfg = unet.config
    return cfg.in_channels, cfg.sample_size, cfg.sample_size


def class_names_of(unet: UNet2DModel) -> list[str]:
    """Class names a conditional model was trained on ([] for an unconditional model)."""
    names = unet.config.get(CLASS_NAMES_KEY)
    if names:
        return list(names)
    n = unet.config.num_class_embeds
    return [str(i) for i in range(n - 1)] if n else []


def null_class(unet: UNet2DModel) -> int | None:
    """Index of the null (unconditional) class, or None for an unconditional model."""
    n = unet.config.num_class_embeds
    return n - 1 if n else None


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def training_flops(config: ModelConfig, n_classes: int = 0) -> int:
    """FLOPs of one training image (forward + backward), counted on the meta device (no compute)."""
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        unet = build_unet(config, [str(i) for i in range(n_classes)] or None)
        x = torch.randn(1, config.in_channels, config.sample_size, config.sample_size)
        labels = torch.zeros(1, dtype=torch.long) if n_classes else None
        with FlopCounterMode(display=False) as counter:
            unet(x, torch.tensor([10]), class_labels=labels).sample.sum().backward()
    return counter.get_total_flops()
