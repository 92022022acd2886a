"""Latent diffusion through pddlib's own trainer, judged like every other recipe.

    python benchmarks/latent_recipe.py --autoencoder runs/autoencoder32 [--steps 1400] [--name NAME]

Trains a class-conditional UNet on the latents of a saved autoencoder
(scripts/train_autoencoder.py) with `pddlib.training.train` (the course objective: v-prediction,
min-SNR 5, cosine betas, label dropout, EMA; batch 32), then samples and judges it with
`judge_samples.judge_pipeline` (16 per class, Euler ancestral 25 steps, guidance 4, seed 0).
Writes runs/latent/NAME (the run) and runs/judged/NAME.* (scores, per-class grid).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from judge_samples import judge_pipeline

from pddlib.data import load_images
from pddlib.models import ModelConfig
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import recipe
from pddlib.runs import training_seconds
from pddlib.training import train

# The probe's latent UNet (benchmarks/latent_probe.py): two levels on 8 x 8 latents, attention
# at 4 x 4, wide because a latent step is cheap.
LATENT_UNET = ModelConfig(sample_size=8, in_channels=4, block_out_channels=(128, 256),
                          attention=(False, True), layers_per_block=2, norm_num_groups=32,
                          attention_head_dim=32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--autoencoder", required=True)
    ap.add_argument("--steps", type=int, default=1400)
    ap.add_argument("--name", default="latent-recipe")
    args = ap.parse_args()
    config = recipe("cpu-tiny", model=LATENT_UNET, autoencoder=args.autoencoder,
                    max_steps=args.steps, batch_size=32, lr=1e-3, sample_every=0,
                    checkpoint_every=200)
    run = Path("runs/latent") / args.name
    train(config, load_images("openclipart", split="train"), run, resume=True)
    summary = judge_pipeline(PDDiffusionPipeline.from_run(run), args.name)
    summary["train_seconds"] = round(training_seconds(run), 1)
    summary["train_steps"] = args.steps
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
