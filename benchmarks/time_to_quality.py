"""Quality per CPU-minute: the course recipe against the plain diffusers-example recipe.

    python benchmarks/time_to_quality.py --ours runs/course-cpu-latent-cond-<hash> \
        [--multiples 1 2 4] [--n 256]

The plain recipe is what a user would write from diffusers' unconditional training example
(examples/unconditional_image_generation/train_unconditional.py, with its README's --use_ema):
epsilon prediction, linear betas, plain MSE, AdamW lr 1e-4 after 500 warm-up steps, batch 16,
EMA up to 0.9999 -- made class-conditional with the same data, the same UNet (on the same
latents of the shipped autoencoder) and the same label dropout, so that guidance can be applied
to both. Its learning rate is held constant after the warm-up (the example's
`constant_with_warmup`), so one run resumed at 1x, 2x, 4x ... gives every snapshot. "1x" is as
many latents as the course recipe sees (its steps x its batch of 64 / 16); batches of 16 use a
CPU a little less well, so both loss logs' seconds are recorded and compared.

Every model is judged by `judge_samples.judge_pipeline` on the same N class-balanced samples
(seed 0) at guidance 4: ours with its Euler ancestral 25 steps; the plain snapshots with DDIM 50
steps (the example's deterministic sampler) and with our sampler too, which separates the
training recipe from the sampler. Writes runs/ttq/summary.json; RESULTS.md records it.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from judge_samples import judge_pipeline

from pddlib.data import load_images
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import recipe
from pddlib.runs import CHECKPOINTS, training_seconds
from pddlib.training import train

OUT = Path("runs/ttq")
PLAIN_BATCH = 16  # the example's --train_batch_size


def plain_recipe(max_steps: int):
    """The diffusers-example recipe on the course's model and data, in the example's batches."""
    return recipe("cpu-latent", prediction_type="epsilon", beta_schedule="linear", snr_gamma=None,
                  lr=1e-4, warmup_steps=500, min_lr_ratio=1.0, adam_betas=(0.9, 0.999),
                  weight_decay=1e-6, ema_decay=0.9999, ema_power=0.75, batch_size=PLAIN_BATCH,
                  max_steps=max_steps, sample_every=0, checkpoint_every=500)


def snapshot(run: Path, dest: Path) -> None:
    """Copy the run's saved (EMA) pipeline, everything but its resumable checkpoints, into dest."""
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(CHECKPOINTS), dirs_exist_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ours", type=Path, required=True, help="a finished course-recipe run")
    ap.add_argument("--multiples", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()
    ours_config = json.loads((args.ours / "train_config.json").read_text())
    ours_steps = ours_config["max_steps"]
    plain_steps = ours_steps * ours_config["batch_size"] // PLAIN_BATCH  # as many latents
    summary = {"ours": {"run": str(args.ours), "steps": ours_steps,
                        "train_seconds": training_seconds(args.ours),
                        "euler-a": judge_pipeline(PDDiffusionPipeline.from_run(args.ours),
                                                  "ttq-ours", args.n)}}
    data = load_images("openclipart", split="train")
    run = OUT / "plain"
    for k in sorted(args.multiples):
        steps = k * plain_steps
        train(plain_recipe(steps), data, run, resume=True)
        snap = OUT / f"plain-{k}x"
        snapshot(run, snap)
        entry = {"steps": steps, "train_seconds": training_seconds(run, steps)}
        for sched, n_steps in (("ddim", 50), ("euler-a", 25)):
            pipe = PDDiffusionPipeline.from_run(snap).with_scheduler(sched)
            entry[sched] = judge_pipeline(pipe, f"ttq-plain-{k}x-{sched}", args.n, steps=n_steps)
        summary[f"plain-{k}x"] = entry
        (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
        print(json.dumps({f"plain-{k}x": entry}), flush=True)


if __name__ == "__main__":
    main()
