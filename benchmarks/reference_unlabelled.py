"""A reference that trains on the corpus too: does it still draw its classes, and does it copy less?

    OMP_NUM_THREADS=2 pddlib train --preset cpu-reference --unlabelled pdcorpus --out runs/reference-mix
    git archive d10deb4 pddlib/weights/pd-reference | tar -x -C /tmp/old   # the reference before
    python benchmarks/reference_unlabelled.py --run runs/reference-mix --steps 3000 6000 9000 \
        --old /tmp/old/pddlib/weights/pd-reference

The reference shipped before this run (the same recipe on the 1067 workshop images alone) saw
each of them about 540 times and reproduced them.
This run adds the corpus's images that are not, nor twins of, any workshop image (2784) as
images without a class (pddlib.data.unlabelled): each workshop image is then seen about as often
as the course model sees it (150 times in 9000 steps), while the model trains on 3.6 times the
drawings. For the run's EMA weights at each of --steps (its checkpoints: the same run stopped
early, at a higher learning rate than a shorter schedule would end on) and for the old reference
(--old: its shipped folder), it measures:
  - samples: benchmarks/judge_samples.py's (256 class-balanced, Euler ancestral 25, guidance 4,
    seed 0; FD and agreement on both judges; runs/judged/NAME.png, 8 a class, for the look);
  - copying: the copy guard's flag rate (pdcopy and pixels, each threshold calibrated on the
    images compared against) on the samples and on the held-out control (twins and mirror
    images of workshop images left out, passed through pd-ae32 as samples are), with Wilson 95 %
    intervals, against the workshop's train split and against every image the model trained on
    (pdcopy was trained on the corpus images this run adds: against those, the pixel rate is
    the independent one);
  - the denoising gap: mean clean-image error on held-out over training workshop images.
Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from judge_samples import judge_pipeline  # sibling scripts: benchmarks/ is on sys.path
from pdcopy_disjoint import flagged
from safetensors.torch import load_file

from pddlib import learn_or_copy, runs
from pddlib.autoencoder import load_autoencoder, roundtrip
from pddlib.data import load_images
from pddlib.data.dedup import duplicates_in
from pddlib.data.transforms import as_uint8
from pddlib.metrics import check_copies
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.provenance import training_images
from pddlib.reference import is_shipped, working_copy


def at_step(run: Path, step: int) -> PDDiffusionPipeline:
    """The run's pipeline with the EMA weights of its checkpoint at `step`."""
    pipe = PDDiffusionPipeline.from_run(run)
    shadow = load_file(run / runs.CHECKPOINTS / f"step-{step:06d}" / runs.EMA_WEIGHTS)
    pipe.unet.load_state_dict({**pipe.unet.state_dict(), **shadow})
    return pipe


def measure(name: str, pipe: PDDiffusionPipeline, trained_on, n: int) -> dict:
    """Samples judged and kept, copy rates against the control, the denoising gap."""
    summary = judge_pipeline(pipe, name, n)
    samples = np.load(Path("runs/judged") / f"{name}.npz")["images"]
    split, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    size = samples.shape[1]
    held = held.select(np.flatnonzero(duplicates_in(as_uint8(held, size=size),
                                                    as_uint8(split, size=size)) < 0))
    control = roundtrip(load_autoencoder("pd-ae32"), as_uint8(held, size=size))
    copies = {}
    for against, images in (("workshop train split", split), ("every training image", trained_on)):
        train_px = as_uint8(images, size=size)
        copies[against] = {"images": len(images)} | {
            f"{who} ({space})": flagged(check_copies(x, train_px, space=space))
            for space in ("pdcopy", "pixel") for who, x in (("samples", samples), ("control", control))}
    names = split.features["label"].names
    err = {side: float(learn_or_copy.denoising_error(
        pipe, as_uint8(d, size=size), [names[y] for y in d["label"]]).mean())
        for side, d in (("training", split), ("held-out", held))}
    gap = {side: round(e, 4) for side, e in err.items()} | {
        "ratio": round(err["held-out"] / err["training"], 2)}
    return {**summary, "copies": copies, "denoising_error": gap}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=Path("runs/reference-mix"))
    ap.add_argument("--steps", type=int, nargs="+", default=[3000, 6000, 9000])
    ap.add_argument("--old", type=Path, help="the old reference's shipped folder (or a run)")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("runs/reference-mix-measured"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    models = []
    if args.old is not None:
        old = working_copy(args.old, args.out) if is_shipped(args.old) else args.old
        models.append(("reference-9000", lambda: PDDiffusionPipeline.from_run(old), old, 9000))
    models += [(f"reference-mix-{s}", lambda s=s: at_step(args.run, s), args.run, s)
               for s in args.steps]
    for name, load, folder, step in models:
        if name in results:
            continue
        trained_on = training_images(folder)
        batch = runs.read_config(folder)["batch_size"]
        results[name] = {"step": step, "passes over each image": round(step * batch / len(trained_on)),
                         **measure(name, load(), trained_on, args.n)}
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(name, json.dumps(results[name]["copies"]), results[name]["denoising_error"],
              results[name]["pdshape"]["agreement"], flush=True)


if __name__ == "__main__":
    main()
