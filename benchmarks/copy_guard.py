"""Can a similarity threshold tell a memorising model's samples from new real images?

    python benchmarks/copy_guard.py [--n 64]
    python benchmarks/copy_guard.py --judged reference-9000   # samples judge_samples.py kept

Trains (or reuses, in runs/) notebook 06's two small unconditional 16 px models: one on 16
training images (it memorises), one on the whole train split (it does not). For N samples of
each, and for the real held-out images against the train split, it prints the nearest-training
similarity (mirror images included) in four spaces, and the fraction above each threshold:
  pixel  1 - RMS difference on [0, 1] values;
  pdcopy cosine of the copy-detection descriptors (pddlib.metrics.copydetect; check_copies'
         default space);
  pdcls  cosine of the pdcls judge's centred features;
  ink    cosine of the "ink" (1 - value) vectors: blind to how faint a copy is drawn.
The background is the same measure for each training image against the rest of the train split:
the data set's own near-duplicate rate. The 16-image model's control is the held-out images
against the same 16 images. --judged NAME scores instead the samples that
benchmarks/judge_samples.py kept in runs/judged/NAME.npz (e.g. the reference model, which
copies), at their own resolution. Results are recorded in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from pddlib.data import load_images
from pddlib.data.transforms import as_uint8
from pddlib.metrics import generate_samples, replication
from pddlib.models import ModelConfig
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import TrainConfig
from pddlib.trained import course_run_dir
from pddlib.training import train

# Notebook 06's model and recipe (unconditional, 16 px, 400 steps of 16 images).
SMALL = ModelConfig(sample_size=16, block_out_channels=(32, 64, 64), attention=(False,) * 3,
                    layers_per_block=1, norm_num_groups=8)
CONFIG = TrainConfig(preset="cpu-tiny", autoencoder=None, model=SMALL, conditional=False,
                     max_steps=400, batch_size=16, lr=2e-3, warmup_steps=50,
                     checkpoint_every=10_000, sample_every=0, seed=0)
THRESHOLDS = {"pixel": (0.90, 0.95), "pdcopy": (0.6, 0.7, 0.8, 0.9), "pdcls": (0.95, 0.99),
              "ink": (0.90, 0.95, 0.97)}


def ink_vectors(images: np.ndarray) -> np.ndarray:
    """Unit-length (1 - value) vectors of uint8 images (N, H, W, 3)."""
    v = 1 - images.reshape(len(images), -1).astype(np.float64) / 255
    return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-8)


def ink_similarity(queries: np.ndarray, train: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Nearest-training ink cosine of each query (a training image or its mirror)."""
    q, t = ink_vectors(queries), ink_vectors(train)
    s = np.maximum(q @ t.T, q @ ink_vectors(np.ascontiguousarray(train[:, :, ::-1])).T)
    if exclude_self:
        np.fill_diagonal(s, -1.0)
    return s.max(axis=1)


def similarities(queries: np.ndarray, train, background: bool = False) -> dict[str, np.ndarray]:
    """{space: nearest-training similarity (N,)}; background: train against itself."""
    spaces = ("pixel", "pdcopy", "pdcls")
    rep = replication(queries, train, spaces=spaces, background=background, progress=False)
    part = "background" if background else "neighbours"
    out = {s: getattr(rep[s], part).similarity for s in spaces}
    t = as_uint8(train, size=queries.shape[1])
    out["ink"] = ink_similarity(t if background else queries, t, exclude_self=background)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--judged", help="score runs/judged/NAME.npz instead of notebook 06's models")
    args = ap.parse_args()
    split = load_images("openclipart", split="train")
    rows, cases = {}, {}  # cases: name -> (queries, their training set) for the calibrated guard
    if args.judged:
        images = np.load(f"runs/judged/{args.judged}.npz")["images"]
        rows[f"samples of {args.judged}"] = similarities(images, split)
        cases[f"samples of {args.judged}"] = (images, split)
    held = as_uint8(load_images("openclipart", split="heldout"),
                    size=images.shape[1] if args.judged else 16)
    for n in () if args.judged else (16, len(split)):
        data = split.shuffle(seed=0).select(range(n))
        run = course_run_dir(CONFIG).with_name(f"06-n{n}-" + course_run_dir(CONFIG).name[-8:])
        train(CONFIG, data, run, resume=True)
        images, _ = generate_samples(PDDiffusionPipeline.from_run(run), args.n, steps=25,
                                     seed=0, progress=False)
        rows[f"samples of the {n}-image model"] = similarities(images, data)
        cases[f"samples of the {n}-image model"] = (images, data)
        if n == 16:
            rows["held-out real images vs those 16"] = similarities(held, data)
            cases["held-out real images vs those 16"] = (held, data)
    rows["held-out real images"] = similarities(held, split)
    cases["held-out real images"] = (held, split)
    rows["background (train vs rest of train)"] = similarities(held, split, background=True)
    for space, thresholds in THRESHOLDS.items():
        print(f"\n{space}: median similarity, and fraction above " + ", ".join(map(str, thresholds)))
        for name, sims in rows.items():
            s = sims[space]
            print(f"  {name:<38} n={len(s):5d} median {np.median(s):.3f}  "
                  + "  ".join(f">{t}: {np.mean(s > t):.2f}" for t in thresholds))
    print("\ncheck_copies (pdcopy, threshold calibrated on each training set's own background):")
    for name, (queries, data) in cases.items():
        r = replication(queries, data, spaces=("pdcopy",))["pdcopy"]
        print(f"  {name:<38} vs {len(data):4d}: threshold {r.threshold:.3f}  flagged "
              f"{r.above_fraction:.2f}  background {r.background_above_fraction:.2f}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
