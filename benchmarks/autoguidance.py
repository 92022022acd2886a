"""Autoguidance on the course model: guide it away from an early EMA snapshot of its own run.

    python benchmarks/autoguidance.py --model runs/course-cpu-latent-cond-<hash> [--at 600] \
        [--guidance 2 3] [--n 256]

Karras et al. (2024) guide a model with a weaker version of itself, `weak + w (cond - weak)`,
both conditional, instead of with its unconditional prediction. The weak model here is the
course run itself at step --at: its first --at steps are retrained (same config, data and seed,
so the same weights the run had then), and the EMA weights of the checkpoint at that step are
loaded. The course model is judged with it at each --guidance by judge_samples.judge_pipeline
(runs/judged/autoguidance-<at>-w<w>.*); RESULTS.md records the result.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from diffusers import UNet2DModel
from judge_samples import judge_pipeline
from safetensors.torch import load_file

from pddlib.data import load_images
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import TrainConfig
from pddlib.runs import checkpoint_dir
from pddlib.training import train


class Reached(Exception):
    """Raised by the training callback once the snapshot step is written."""


def early_snapshot(config: TrainConfig, at: int, out: Path) -> UNet2DModel:
    """The EMA weights of `config`'s run at step `at` (retrained up to there once, into out)."""
    ckpt = checkpoint_dir(out, at)
    if not (ckpt / "state.json").exists():
        def stop(info) -> None:
            if info.step >= at:
                raise Reached

        try:
            # checkpoint_every and keep_checkpoints do not change what a step computes.
            train(replace(config, checkpoint_every=at, keep_checkpoints=1),
                  load_images("openclipart", split="train"), out, stop, resume=True)
        except Reached:
            pass
    unet = UNet2DModel.from_pretrained(ckpt / "unet", use_safetensors=True)
    unet.load_state_dict(load_file(ckpt / "ema.safetensors"))
    return unet.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True, help="a finished course-recipe run")
    ap.add_argument("--at", type=int, default=600, help="the weak model's step")
    ap.add_argument("--guidance", type=float, nargs="+", default=[2.0, 3.0])
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args()
    config = TrainConfig.from_dict(json.loads((args.model / "train_config.json").read_text()))
    weak = early_snapshot(config, args.at, Path("runs/autoguidance") / f"early-{args.at}")
    pipe = PDDiffusionPipeline.from_run(args.model)
    for w in args.guidance:
        print(json.dumps(judge_pipeline(pipe, f"autoguidance-{args.at}-w{w:g}", args.n, w,
                                        weak_unet=weak)), flush=True)


if __name__ == "__main__":
    main()
