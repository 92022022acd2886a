"""Learn or copy? Two models trained on disjoint halves, sampled from the same noise (issue 37).

    python benchmarks/learn_or_copy.py [--sizes 16 128 512 1861] [--steps 1200] [--n 64]
        [--data pdcorpus] [--out runs/halves]

Kadkhodaie, Guth, Simoncelli and Mallat (ICLR 2024): train two models on disjoint training sets
of N images each and sample both from the same noise with a deterministic sampler. A model that
copies returns its own training images, so the two samples differ and each lies near a training
image of its own half; a model that has learnt the distribution returns nearly the same image
from both, far from every training image.

Here: the data set (default the multi-source corpus, de-duplicated with mirrors) is split once
into two disjoint halves A and B, stratified by class and seeded; for each N the first N images
of each half train one unconditional model each: the course recipe (cpu-latent, pd-ae32
latents) with max_steps fixed for every N (equal training per model), seeds 0 and 1. Both are
sampled with DDIM 50 from the same n noises. Measured, in pixels (RMS at 32 px) and in the copy
descriptor's space (pdcopy, 1 - cosine), mirrors counted as the same image:
  between  the distance between model A's and model B's samples from the same noise;
  unpaired the same between samples from different noises (what unrelated samples give);
  own      each sample's distance to the nearest image of its own training set;
  other    the same to the other model's training set (images it never saw).
Medians with bootstrap 95 % intervals (1000 resamples of the n noises) go to OUT/results.json,
and OUT/pairs-N.png shows, per noise, A's sample, B's sample and each one's nearest own image.
Runs resume: a finished model is loaded, an interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pddlib.data import load_images
from pddlib.data.load import stratified_split
from pddlib.data.transforms import as_uint8
from pddlib.experiments import initial_noise, sample, seeded
from pddlib.metrics.neighbours import DISTANCE_FNS, neighbours_in, space_vectors
from pddlib.metrics.spaces import get_space
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.pixels import to_uint8
from pddlib.recipes import recipe
from pddlib.runs import trained_steps
from pddlib.training import train

SPACES = ("pixel", "pdcopy")


def halves(labels: list[int], keys: list[str], seed: int = 0) -> tuple[list[int], list[int]]:
    """Two disjoint halves of the rows, stratified by class, each in a seeded random order."""
    a, b = stratified_split(labels, keys, heldout_fraction=0.5, seed=seed)
    rng = np.random.default_rng(seed)
    return [a[i] for i in rng.permutation(len(a))], [b[i] for i in rng.permutation(len(b))]


def trained(config, dataset, out: Path):
    """The pipeline of `config` trained on `dataset` into `out` (loaded when finished)."""
    if trained_steps(out) < config.max_steps:
        train(config, dataset, out, resume=True)
    return PDDiffusionPipeline.from_run(out)


def pair_distance(space: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance between a[i] and b[i] (uint8 images) in a space, the closer of b[i] and its mirror."""
    distance = DISTANCE_FNS[get_space(space).distance]
    va, vb = (space_vectors(space, x, cache=False, progress=False) for x in (a, b))
    vf = space_vectors(space, np.ascontiguousarray(b[:, :, ::-1]), cache=False, progress=False)
    return torch.minimum(distance(va, vb).diagonal(), distance(va, vf).diagonal()).float().numpy()


def median_ci(x: np.ndarray, rng: np.random.Generator, n_boot: int = 1000) -> list[float]:
    """[median, low, high]: a bootstrap 95 % interval of the median."""
    boots = np.median(rng.choice(x, (n_boot, len(x))), axis=1)
    return [float(np.median(x)), float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]


def pairs_figure(a, b, near_a, near_b, path: Path, k: int = 16) -> None:
    """Columns: noises; rows: A's sample, B's sample, A's nearest own image, B's nearest own image."""
    rows = [np.concatenate(list(x[:k]), 1) for x in (a, b, near_a, near_b)]
    grid = np.concatenate(rows, 0)
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3), Image.Resampling.NEAREST).save(path)


def measure(size: int, models: dict, train_sets: dict, noise: torch.Tensor, out: Path,
            rng: np.random.Generator) -> dict:
    """Sample both models from the same noise; between/own/other distances in each space."""
    samples = {k: to_uint8(sample(p, scheduler="ddim", steps=50, latents=noise.clone()))
               for k, p in models.items()}
    result: dict = {"N": size}
    near = {}
    for space in SPACES:
        r = {"between": median_ci(pair_distance(space, samples["A"], samples["B"]), rng),
             "unpaired": median_ci(pair_distance(space, samples["A"],
                                                 np.roll(samples["B"], 1, axis=0)), rng)}
        for k, other in (("A", "B"), ("B", "A")):
            own, _ = neighbours_in(space, samples[k], train_sets[k], flips=True, k=1,
                                   background_rows=None, progress=False)
            far, _ = neighbours_in(space, samples[k], train_sets[other], flips=True, k=1,
                                   background_rows=None, progress=False)
            r[f"own {k}"], r[f"other {k}"] = (median_ci(own.distance[:, 0], rng),
                                              median_ci(far.distance[:, 0], rng))
            if space == "pixel":
                near[k] = train_sets[k][own.index[:, 0]]
        result[space] = r
    pairs_figure(samples["A"], samples["B"], near["A"], near["B"], out / f"pairs-{size}.png")
    return result


def main(argv: list[str] | None = None) -> int:
    """Train the pairs of models, measure each N, write results.json and the pair figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 128, 512, 1861])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--n", type=int, default=64, help="noises sampled by both models")
    p.add_argument("--data", default="pdcorpus")
    p.add_argument("--out", type=Path, default=Path("runs/halves"))
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    data = load_images(args.data)
    rows = dict(zip("AB", halves(data["label"], data["sha1"]), strict=True))
    if max(args.sizes) > min(len(r) for r in rows.values()):
        raise SystemExit(f"--sizes: each half holds {min(len(r) for r in rows.values())} images")
    config = replace(recipe("cpu-latent", conditional=False), max_steps=args.steps,
                     sample_every=0, checkpoint_every=200)
    results = []
    for size in args.sizes:
        t0 = time.perf_counter()
        subsets = {k: data.select(r[:size]) for k, r in rows.items()}
        models = {k: trained(replace(config, seed=seed), subsets[k], args.out / f"N{size}-{k}")
                  for seed, k in enumerate("AB")}
        noise = initial_noise(models["A"], args.n, seeded(0))
        train_sets = {k: as_uint8(s, size=32) for k, s in subsets.items()}
        results.append({**measure(size, models, train_sets, noise, args.out,
                                  np.random.default_rng(0)),
                        "seconds": round(time.perf_counter() - t0)})
        print(json.dumps(results[-1]), flush=True)
        (args.out / "results.json").write_text(json.dumps(
            {"data": args.data, "steps": args.steps, "n": args.n, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
