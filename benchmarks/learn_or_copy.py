"""Learn or copy? Two models trained on disjoint halves, sampled from the same noise (issue 37).

    python benchmarks/learn_or_copy.py [--sizes 16 128 256 512 1024 1861] [--steps 1200]
        [--n 64] [--data pdcorpus] [--split-seed 0] [--seeds 0 1] [--out runs/halves] [--install]

Kadkhodaie, Guth, Simoncelli and Mallat (ICLR 2024): train two models on disjoint training sets
of N images each and sample both from the same noise with a deterministic sampler. A model that
copies returns its own training images, so the two samples differ and each lies near a training
image of its own half; a model that has learnt the distribution returns nearly the same image
from both, far from every training image.

Here: the data set (default the multi-source corpus, de-duplicated with mirrors) is split once
into two disjoint halves A and B, stratified by class and seeded (--split-seed); for each N the
first N images of each half train one unconditional model each: the course recipe (cpu-latent,
pd-ae32 latents) with max_steps fixed for every N (equal training per model), seeds --seeds
(A's, B's); another split and other seeds replicate the whole experiment. Both are
sampled with DDIM 50 from the same n noises; pddlib.learn_or_copy measures (between, unpaired,
own, other, in pixels and pdcopy; medians with bootstrap 95 % intervals). OUT gets
learn_or_copy.json, learn_or_copy.npz (8 pairs of each N, what notebook 06 shows) and
pairs-N.png (16 pairs: A's sample, B's sample, A's nearest own image, B's nearest own image);
--install copies the first two into pddlib/data. Runs resume: a finished model is loaded, an
interrupted one continues from its checkpoint.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from pddlib import learn_or_copy as loc
from pddlib.data import load_images
from pddlib.data.transforms import as_uint8
from pddlib.experiments import initial_noise, seeded
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import recipe
from pddlib.runs import trained_steps
from pddlib.training import train

INSTALL = Path(__file__).resolve().parents[1] / "pddlib" / "data"


def trained(config, dataset, out: Path) -> PDDiffusionPipeline:
    """The pipeline of `config` trained on `dataset` into `out` (loaded when finished)."""
    if trained_steps(out) < config.max_steps:
        train(config, dataset, out, resume=True)
    return PDDiffusionPipeline.from_run(out)


def pairs_figure(p: loc.Pairs, path: Path, k: int = 16) -> None:
    """Columns: noises; rows: A's sample, B's sample, A's nearest own image, B's nearest own image."""
    grid = np.concatenate([np.concatenate(list(x[:k]), 1) for x in (p.a, p.b, p.near_a, p.near_b)])
    Image.fromarray(grid).resize((grid.shape[1] * 3, grid.shape[0] * 3),
                                 Image.Resampling.NEAREST).save(path)


def main(argv: list[str] | None = None) -> int:
    """Train the pairs of models, measure each N, write the results and the pair figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 128, 256, 512, 1024, 1861])
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--n", type=int, default=64, help="noises sampled by both models")
    p.add_argument("--data", default="pdcorpus")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the split into halves")
    p.add_argument("--seeds", type=int, nargs=2, default=[0, 1], help="the two models' seeds")
    p.add_argument("--out", type=Path, default=Path("runs/halves"))
    p.add_argument("--install", action="store_true", help="copy the results into pddlib/data")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    data = load_images(args.data)
    rows = dict(zip("AB", loc.halves(data["label"], data["sha1"], seed=args.split_seed), strict=True))
    if max(args.sizes) > min(len(r) for r in rows.values()):
        raise SystemExit(f"--sizes: each half holds {min(len(r) for r in rows.values())} images")
    config = replace(recipe("cpu-latent", conditional=False), max_steps=args.steps,
                     sample_every=0, checkpoint_every=200)
    command = " ".join(["python benchmarks/learn_or_copy.py", *(sys.argv[1:] if argv is None else argv)])
    result = {"data": args.data, "steps": args.steps, "n": args.n, "recipe": "cpu-latent",
              "sampler": "ddim 50", "split_seed": args.split_seed, "seeds": args.seeds,
              "command": command, "results": []}
    pairs = {}
    for size in args.sizes:
        t0 = time.perf_counter()
        subsets = {k: data.select(r[:size]) for k, r in rows.items()}
        models = [trained(replace(config, seed=seed), subsets[k], args.out / f"N{size}-{k}")
                  for seed, k in zip(args.seeds, "AB", strict=True)]
        a, b = loc.sample_same_noise(models, initial_noise(models[0], args.n, seeded(0)))
        numbers, pairs[size] = loc.measure(a, b, *(as_uint8(subsets[k], size=a.shape[1])
                                                   for k in "AB"))
        result["results"].append({"N": size, **numbers,
                                  "seconds": round(time.perf_counter() - t0)})
        print(result["results"][-1], flush=True)
        pairs_figure(pairs[size], args.out / f"pairs-{size}.png")
        loc.save(args.out, result, pairs)
    if args.install:
        for name in loc.RECORDED:
            shutil.copyfile(args.out / name, INSTALL / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
