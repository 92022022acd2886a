"""The copy descriptor retrained on images the copy guard never measures: known cases before and after.

    python benchmarks/pdcopy_disjoint.py --tag old    # with the descriptor in place now
    python scripts/train_copy_detector.py             # retrain (on pdcorpus less the 16 classes)
    python benchmarks/pdcopy_disjoint.py --tag new

pdcopy used to be trained on the workshop's train split, the very images the guard calibrates
its threshold on (issue 37). This scores both descriptors on the course's known cases, each
against its own training set, with the threshold calibrated on that set's background
(check_copies' default): samples of notebook 06's former 16-image model (copy_guard.py's
recipe, trained if missing: it copies) and held-out images against the same 16; the reference model's samples (it copies) and
the course model's against the train split, beside the held-out control (training images' twins
and mirror images left out; for the latent models' comparison, passed through pd-ae32 as their
samples are). Samples are drawn once and cached in OUT; OUT/pdcopy-TAG.json gets flag rates
with Wilson 95 % intervals and, per pair of cases, the AUC with which the nearest similarity
tells the copier's samples from the new images.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import numpy as np
import torch
from copy_guard import CONFIG  # a sibling script: benchmarks/ is on sys.path

from pddlib.autoencoder import load_autoencoder, roundtrip
from pddlib.data import load_images
from pddlib.data.dedup import duplicates_in
from pddlib.data.transforms import as_uint8
from pddlib.metrics import check_copies, generate_samples
from pddlib.metrics.rates import wilson_interval
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.reference import resolve_model
from pddlib.trained import course_model, course_run_dir
from pddlib.training import train


def sixteen_image_model(sixteen) -> PDDiffusionPipeline:
    """Notebook 06's former 16-image model (benchmarks/copy_guard.py's recipe), trained if missing."""
    run = course_run_dir(CONFIG).with_name("06-n16-" + course_run_dir(CONFIG).name[-8:])
    train(CONFIG, sixteen, run, resume=True)
    return PDDiffusionPipeline.from_run(run)


def samples(name: str, load, out: Path, n: int) -> np.ndarray:
    """n samples of load() (cached in out): Euler ancestral 25, guidance 4 if conditional, seed 0."""
    path = out / f"samples-{name.replace(' ', '-')}.npz"
    if not path.is_file():
        images, _ = generate_samples(load(), n, steps=25, seed=0, progress=False)
        np.savez_compressed(path, images=images)
    return np.load(path)["images"]


def auc(copies: np.ndarray, new: np.ndarray) -> float:
    """P(a copier's sample is more similar to its training set than a new image is)."""
    return float((copies[:, None] > new[None]).mean() + 0.5 * (copies[:, None] == new[None]).mean())


def flagged(check) -> dict:
    """The copy guard's flags as a rate with its Wilson 95 % interval and threshold."""
    k, n = int(check.flagged.sum()), len(check.flagged)
    return {"flagged": k, "n": n, "rate": k / n, "interval": wilson_interval(k, n),
            "threshold": check.threshold}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tag", required=True)
    p.add_argument("--out", type=Path, default=Path("runs/pdcopy-disjoint"))
    args = p.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    split, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    sixteen = split.shuffle(seed=0).select(range(16))  # notebook 06's subset of that run
    held32 = as_uint8(held, size=32)
    held32 = held32[duplicates_in(held32, as_uint8(split, size=32)) < 0]
    held16 = as_uint8(held, size=16)
    reference = partial(PDDiffusionPipeline.from_run, resolve_model("reference"))
    checks = {
        "16-image model's samples vs its 16": check_copies(
            samples("16-image model", partial(sixteen_image_model, sixteen), args.out, 64), sixteen),
        "held-out vs the same 16": check_copies(held16, sixteen),
        "reference's samples vs train": check_copies(
            samples("reference", reference, args.out, 256), split),
        "course model's samples vs train": check_copies(  # notebook 03's, trained if missing
            samples("course model", partial(course_model, True, False), args.out, 256), split),
        "control (held-out through pd-ae32) vs train": check_copies(
            roundtrip(load_autoencoder("pd-ae32"), held32), split)}
    result = {name: flagged(c) for name, c in checks.items()}
    sim = {name: c.similarity for name, c in checks.items()}
    result["auc"] = {
        "16-image model vs held-out": auc(sim["16-image model's samples vs its 16"], sim["held-out vs the same 16"]),
        "reference vs control": auc(sim["reference's samples vs train"], sim["control (held-out through pd-ae32) vs train"]),
        "course model vs control": auc(sim["course model's samples vs train"], sim["control (held-out through pd-ae32) vs train"])}
    (args.out / f"pdcopy-{args.tag}.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
