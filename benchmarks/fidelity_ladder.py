"""Which class-fidelity measure orders a ladder of models as a person's look does?

    python benchmarks/fidelity_ladder.py runs/A runs/B ... [--model reference] [--n 16]
        [--thresholds 0.5 0.8 0.9] [--out runs/ladder]

Each model is sampled once (n a class, the default sampler: Euler ancestral 25 steps, guidance 4,
seed 0); its samples are saved as a grid (8 a class, rows in class order) to look at, and scored
by every judge (pddlib.metrics.judge) as plain class agreement (the judge's top class is the
asked one) and as agreement at each confidence threshold (the judge gives the asked class at
least that probability). Real held-out images and their colour blobs (metrics.anchors) are scored
the same way: the ceiling and the floor. Standard errors are binomial. RESULTS.md records the
result beside the strict look at the grids.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from judge_samples import class_grid

from pddlib.data import load_images
from pddlib.data.transforms import as_uint8
from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS, JUDGE_NAMES
from pddlib.metrics import generate_samples
from pddlib.metrics.anchors import colour_blobs
from pddlib.metrics.features import extract_features
from pddlib.metrics.judge import classify, label_indices
from pddlib.metrics.prdc import knn_radii
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.reference import resolve_model


def class_coverage(real: np.ndarray, real_labels: np.ndarray, fake: np.ndarray,
                   fake_labels: np.ndarray, k: int = 3, *, same_set: bool = False
                   ) -> tuple[float, float]:
    """(class-matched precision, class-matched coverage) of features, Naeem et al.'s balls per class.

    Every real image gets a ball reaching its k-th nearest real neighbour (of any class). A fake
    counts for precision when it lies in the ball of a real image of its own class; a real image
    counts as covered when a fake of its own class lies in its ball (coverage: is the class's
    variety drawn, not just its most typical member?). same_set: fake is real itself, and no
    image counts for itself.
    """
    radii = knn_radii(real, k)
    d = torch.cdist(torch.as_tensor(fake, dtype=torch.float64), torch.as_tensor(real, dtype=torch.float64))
    same = torch.as_tensor(fake_labels)[:, None] == torch.as_tensor(real_labels)[None, :]
    inside = (d <= radii[None, :]) & same
    if same_set:
        inside.fill_diagonal_(False)
    return float(inside.any(1).double().mean()), float(inside.any(0).double().mean())


def scores(images: np.ndarray, labels: np.ndarray, thresholds: list[float],
           real: dict[str, tuple[np.ndarray, np.ndarray]], *, same_set: bool = False) -> dict:
    """{judge: {"agreement": (rate, se), "p>=t": (rate, se), ...}} for uint8 images.

    real: {judge: (held-out features, labels)}, what class precision and coverage compare with.
    """
    out = {}
    for name in JUDGE_NAMES:
        pred, probs = classify(images, judge=name)
        p_asked = probs[np.arange(len(labels)), labels]
        rates = {"agreement": pred == labels, **{f"p>={t:g}": p_asked >= t for t in thresholds}}
        out[name] = {k: (float(v.mean()), float(np.sqrt(v.mean() * (1 - v.mean()) / len(v))))
                     for k, v in rates.items()}
        held, held_labels = real[name]
        precision, coverage = class_coverage(held, held_labels,
                                             extract_features(images, name, progress=False), labels,
                                             same_set=same_set)
        out[name]["class precision"] = (precision, float(np.sqrt(precision * (1 - precision) / len(labels))))
        out[name]["class coverage"] = (coverage, float(np.sqrt(coverage * (1 - coverage) / len(held))))
    return out


def main(argv: list[str] | None = None) -> int:
    """Sample, grid and score each model; then real images and blobs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("models", nargs="*", help="run folders")
    p.add_argument("--model", action="append", default=[], help="a shipped model name")
    p.add_argument("--n", type=int, default=16, help="samples a class")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.5, 0.8, 0.9])
    p.add_argument("--out", type=Path, default=Path("runs/ladder"))
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    held = load_images("openclipart", split="heldout")
    real, y = as_uint8(held, size=32), np.asarray(held["label"])
    held_features = {name: (extract_features(real, name, progress=False), y)
                     for name in JUDGE_NAMES}
    results = {}
    for model in [*args.model, *args.models]:
        folder = resolve_model(model)  # a shipped name resolves to its release's own folder
        name = folder.name
        saved = args.out / f"{name}.npz"
        pipe = PDDiffusionPipeline.from_run(folder).with_scheduler(DEFAULT_SCHEDULER)
        if saved.is_file():  # sampled by an earlier run of this script
            with np.load(saved) as z:
                images, labels = z["images"], z["labels"].tolist()
        else:
            images, labels = generate_samples(pipe, args.n * len(pipe.class_names),
                                              steps=DEFAULT_STEPS, guidance=DEFAULT_GUIDANCE, seed=0)
            np.savez_compressed(saved, images=images, labels=np.asarray(labels))
        class_grid(images, labels, len(pipe.class_names)).save(args.out / f"{name}.png")
        results[name] = scores(images, label_indices([pipe.class_names[i] for i in labels]),
                               args.thresholds, held_features)
        print(name, json.dumps(results[name]), flush=True)
    results["real held-out"] = scores(real, y, args.thresholds, held_features, same_set=True)
    results["colour blobs"] = scores(colour_blobs(real), y, args.thresholds, held_features)
    (args.out / "scores.json").write_text(json.dumps(results, indent=1))
    for judge in JUDGE_NAMES:
        keys = list(next(iter(results.values()))[judge])
        print(f"\n{judge}: " + " | ".join(keys))
        for name, r in results.items():
            print(f"  {name:<44} " + " | ".join(f"{r[judge][k][0]:.3f} ({r[judge][k][1]:.3f})"
                                               for k in keys))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
