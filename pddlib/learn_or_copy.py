"""Learn or copy? Two models on disjoint training sets, sampled from the same noise.

Kadkhodaie, Guth, Simoncelli and Mallat (ICLR 2024): a model that copies returns its own
training images, so two models trained on disjoint sets draw different images from the same
noise, each near one of its own; models that have learnt the distribution return nearly the same
image from both, no nearer their own training images than the other's. Measured in pixels (RMS)
and in the copy descriptor's space (pdcopy, 1 - cosine), a mirror image counting as the same
image, as medians over the noises with bootstrap 95 % intervals:
  between   A's and B's samples from the same noise
  unpaired  A's sample against B's sample from another noise (what unrelated samples give)
  own       each sample to the nearest image of its own training set
  other     the same to the other model's set, which it never saw
`benchmarks/learn_or_copy.py` runs it at many N; its recorded result ships as RECORDED.

A second view that needs no sampling (`denoising_error`): a model that has stored its training
images denoises them better than new images of the same kind; one that has learnt the
distribution denoises both about equally well (the train / held-out loss gap).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pddlib.autoencoder import encode
from pddlib.data.load import stratified_split
from pddlib.experiments import sample, seeded
from pddlib.metrics.neighbours import DISTANCE_FNS, neighbours_in, space_vectors
from pddlib.metrics.spaces import get_space
from pddlib.objectives import objective_of
from pddlib.pipeline import Label, PDDiffusionPipeline
from pddlib.pixels import to_model, to_uint8

SPACES = ("pixel", "pdcopy")
MEASURES = ("between", "unpaired", "own", "other")
RECORDED = ("learn_or_copy.json", "learn_or_copy.npz")  # in pddlib/data: numbers, image pairs


@dataclass(frozen=True)
class Pairs:
    """Both models' samples from the same noises and each sample's nearest own training image."""

    a: np.ndarray  # uint8 (n, S, S, 3)
    b: np.ndarray
    near_a: np.ndarray
    near_b: np.ndarray


def halves(labels: list[int], keys: list[str], seed: int = 0) -> tuple[list[int], list[int]]:
    """Two disjoint halves of the rows, stratified by class, each in a seeded random order."""
    a, b = stratified_split(labels, keys, heldout_fraction=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    return [a[i] for i in rng.permutation(len(a))], [b[i] for i in rng.permutation(len(b))]


def pair_distance(space: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between a[i] and b[i] (uint8 images) in a space, the closer of b[i] and its mirror."""
    distance = DISTANCE_FNS[get_space(space).distance]
    va, vb = (space_vectors(space, x, cache=False, progress=False) for x in (a, b))
    vf = space_vectors(space, np.ascontiguousarray(b[:, :, ::-1]), cache=False, progress=False)
    return torch.minimum(distance(va, vb).diagonal(), distance(va, vf).diagonal()).float().numpy()


def median_ci(x: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> list[float]:
    """[median, low, high]: the median with a bootstrap 95 % interval."""
    boots = np.median(rng.choice(x, (n_boot, len(x))), axis=1)
    return [float(np.median(x)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]


def nearest(space: str, queries: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, row) of each query's nearest training image in a space, mirrors counted."""
    nb, _ = neighbours_in(space, queries, train, flips=True, k=1, background_rows=None,
                          progress=False)
    return nb.distance[:, 0], nb.index[:, 0]


def measure(a: np.ndarray, b: np.ndarray, train_a: np.ndarray, train_b: np.ndarray,
            seed: int = 0) -> tuple[dict, Pairs]:
    """The four distances in each space, {space: {measure: [median, low, high]}}, and the pairs.

    a, b: the two models' samples from the same noises (row i from noise i), uint8; train_a,
    train_b: their training images at the samples' size. "own" and "other" pool both models.
    """
    rng = np.random.default_rng(seed)
    result, near = {}, {}
    for space in SPACES:
        own_a, row_a = nearest(space, a, train_a)
        own_b, row_b = nearest(space, b, train_b)
        other = np.concatenate([nearest(space, a, train_b)[0], nearest(space, b, train_a)[0]])
        result[space] = {
            "between": median_ci(pair_distance(space, a, b), rng),
            "unpaired": median_ci(pair_distance(space, a, np.roll(b, 1, axis=0)), rng),
            "own": median_ci(np.concatenate([own_a, own_b]), rng),
            "other": median_ci(other, rng)}
        if space == "pixel":
            near = {"a": train_a[row_a], "b": train_b[row_b]}
    return result, Pairs(a, b, near["a"], near["b"])


def table(results: list[dict]) -> pd.DataFrame:
    """One row per N and space: each measure as 'median (low-high)'."""
    rows = [{"N": r["N"], "space": space,
             **{m: "{:.3f} ({:.3f}-{:.3f})".format(*r[space][m]) for m in MEASURES}}
            for r in results for space in SPACES]
    return pd.DataFrame(rows)


def sample_same_noise(pipes: tuple[PDDiffusionPipeline, PDDiffusionPipeline], noise: torch.Tensor,
                      steps: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Both pipelines' samples (uint8) from the same start noise, with deterministic DDIM."""
    a, b = (to_uint8(sample(p, scheduler="ddim", steps=steps, latents=noise.clone()))
            for p in pipes)
    return a, b


@torch.no_grad()
def denoising_error(pipe: PDDiffusionPipeline, images: np.ndarray, labels: list[Label] | None = None,
                    *, levels: int = 5, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """Each image's clean-image error: the MSE of the model's x0 estimate (in the UNet's space),
    averaged over `levels` noise levels spread along the sampling path, seeded noise per image.

    images: uint8 (N, S, S, 3) at the model's size; labels: their classes (conditional models).
    """
    objective = objective_of(pipe.scheduler)
    times = objective.sampling_levels(levels + 1)[0][1:-1]  # neither pure noise nor clean
    x0 = to_model(images)
    if pipe.vae is not None:
        x0 = encode(pipe.vae, x0)
    noise = torch.randn(x0.shape, generator=seeded(seed))
    ids = pipe.label_ids(labels, len(images)) if labels is not None else None
    errors = torch.zeros(len(images))
    for t in times:
        for rows in torch.arange(len(images)).split(batch_size):
            clean = x0[rows].to(pipe.device, pipe.unet.dtype)
            tt = t.repeat(len(rows)).to(pipe.device)
            x_t = objective.noised(clean, noise[rows].to(clean), tt)
            out = pipe.unet(x_t, objective.unet_timestep(tt),
                            class_labels=None if ids is None else ids[rows].to(pipe.device)).sample
            err = (objective.to_x0(x_t, out, tt) - clean).float().pow(2).mean(dim=(1, 2, 3))
            errors[rows] += err.cpu() / len(times)
    return errors.numpy()


def recorded(folder: Path | None = None) -> tuple[dict, dict[int, Pairs]]:
    """The recorded run: its results.json and {N: Pairs} (default: the copy shipped in pddlib)."""
    root = folder or Path(str(resources.files("pddlib.data")))
    numbers, pictures = (root / name for name in RECORDED)
    if not numbers.is_file() or not pictures.is_file():
        raise FileNotFoundError(f"No recorded learn-or-copy run in {root}: run "
                                "`python benchmarks/learn_or_copy.py --install`.")
    result = json.loads(numbers.read_text())
    with np.load(pictures, allow_pickle=False) as npz:
        pairs = {r["N"]: Pairs(*(npz[f"{k}_{r['N']}"] for k in ("a", "b", "near_a", "near_b")))
                 for r in result["results"]}
    return result, pairs


def save(folder: Path, result: dict, pairs: dict[int, Pairs], keep: int = 8) -> None:
    """Write `results.json` and the first `keep` pairs of each N as plain uint8 arrays."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RECORDED[0]).write_text(json.dumps(result, indent=1) + "\n")
    arrays = {f"{k}_{n}": getattr(p, k)[:keep] for n, p in pairs.items()
              for k in ("a", "b", "near_a", "near_b")}
    np.savez_compressed(folder / RECORDED[1], **arrays)
