"""Judge a trained model's samples: FD and per-class agreement on both judges, and the grid.

    python benchmarks/judge_samples.py --model runs/DIR --n 256 [--guidance 4]
        [--interval 0.17 0.885] [--scheduler ddim --steps 50] [--name NAME]

Class-balanced samples (the model's sampler, Euler ancestral unless --scheduler; 25 steps; seed 0), scored against the held-out split
by pdshape (the default judge) and pdcls; writes runs/judged/NAME.json and NAME.png, whose
rows are classes (8 samples each, the first 8 seeds of each class) for the per-class look.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from pddlib.data import load_images
from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_STEPS
from pddlib.metrics import class_agreement, fd, generate_samples, per_class_agreement
from pddlib.pipeline import PDDiffusionPipeline


def class_grid(images: np.ndarray, labels: list[int], n_classes: int, per_row: int = 8) -> Image.Image:
    """One row per class: its first per_row samples, 3x enlarged."""
    rows = [np.concatenate([images[i] for i in np.flatnonzero(np.asarray(labels) == c)[:per_row]], 1)
            for c in range(n_classes)]
    grid = Image.fromarray(np.concatenate(rows, 0))
    return grid.resize((grid.width * 3, grid.height * 3), Image.Resampling.NEAREST)


def judge_pipeline(pipe, name: str, n: int = 256, guidance: float = DEFAULT_GUIDANCE,
                   interval: tuple[float, float] = (0.0, 1.0), steps: int = DEFAULT_STEPS,
                   weak_unet=None) -> dict:
    """Sample `pipe`, score the samples on both judges, write runs/judged/NAME.{json,png,npz}.

    weak_unet: autoguidance, guiding away from this weaker model instead of the null class.
    """
    images, labels = generate_samples(pipe, n, guidance=guidance, steps=steps,
                                      guidance_interval=interval, weak_unet=weak_unet)
    requested = [pipe.class_names[i] for i in labels]
    heldout = load_images("openclipart", split="heldout")
    summary = {"model": name, "n": n, "guidance": guidance, "interval": list(interval),
               "scheduler": type(pipe.scheduler).__name__, "steps": steps,
               "autoguidance": weak_unet is not None}
    for judge in ("pdshape", "pdcls"):
        summary[judge] = {"fd": round(fd(heldout, images, judge, progress=False), 2),
                          "agreement": round(class_agreement(images, requested, judge=judge), 3),
                          "per_class": {k: round(v, 3) for k, v in per_class_agreement(
                              images, requested, judge=judge).items()}}
    out = Path("runs/judged") / name
    out.parent.mkdir(parents=True, exist_ok=True)
    class_grid(images, labels, len(pipe.class_names)).save(out.with_suffix(".png"))
    np.savez_compressed(out.with_suffix(".npz"), images=images, labels=np.asarray(labels))
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--guidance", type=float, default=DEFAULT_GUIDANCE)
    ap.add_argument("--interval", type=float, nargs=2, default=(0.0, 1.0))
    ap.add_argument("--scheduler", default=None, help="a sampler name; default: the model's own")
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--name", default=None)
    args = ap.parse_args()
    pipe = PDDiffusionPipeline.from_run(args.model)
    if args.scheduler:
        pipe = pipe.with_scheduler(args.scheduler)
    print(json.dumps(judge_pipeline(pipe, args.name or args.model.name, args.n, args.guidance,
                                    tuple(args.interval), args.steps)))


if __name__ == "__main__":
    main()
