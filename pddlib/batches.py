"""What a training step draws from: the data set in memory, and every random draw of a step.

- The dataset is decoded and resized ONCE into a tensor in memory (small public-domain sets fit
  easily; latent models also encode it once), so a step costs only the UNet's forward and
  backward, never PIL.
- All randomness of step s (which images, flips, label dropout, times, noise) comes from a
  generator seeded by (seed, s) and is drawn for the whole global batch; each process takes its
  slice. So a resumed run needs no RNG state beyond the step number, and one process or two see
  the same batches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import datasets
import torch
from diffusers import AutoencoderKL

from pddlib.autoencoder import encode, factor
from pddlib.data.transforms import to_tensor
from pddlib.objectives import Objective, objective_for
from pddlib.recipes import TrainConfig


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
    times: torch.Tensor  # (B,) in the objective's units: DDPM timesteps, flow times in (0, 1)
    noise: torch.Tensor  # (B, C, S, S): C is 3 for pixels, the latent channels for latents

    def part(self, i: int, parts: int) -> Batch:
        """The i-th of `parts` equal slices (one process's micro-batch)."""
        k = len(self.index) // parts
        return Batch(*(getattr(self, f.name)[i * k:(i + 1) * k] for f in fields(self)))


def draw_batch(config: TrainConfig, step: int, n: int,
               objective: Objective | None = None) -> Batch:
    """All random draws of one optimizer step, a pure function of (seed, step)."""
    objective = objective or objective_for(config)
    g = step_generator(config.seed, step)
    b, s = config.batch_size, config.model_config.sample_size
    return Batch(
        index=batch_indices(config.seed, step, b, n),
        flip=(torch.rand(b, generator=g) < 0.5) & config.hflip,
        drop=torch.rand(b, generator=g) < config.label_dropout,
        times=objective.draw_times(b, g),
        noise=torch.randn(b, config.model_config.in_channels, s, s, generator=g),
    )
