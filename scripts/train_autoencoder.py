"""Train the latent-diffusion autoencoder on the embedded set's train split and save it.

    python scripts/train_autoencoder.py [--steps 1200] [--out runs/autoencoder32] [--threads 2]
    python scripts/train_autoencoder.py --threads 2 --fp16 --out pddlib/weights/pd-ae32  # shipped

Only the train split is seen (the held-out images stay unseen for evaluation); no pretrained
weights. Writes a diffusers AutoencoderKL folder (safetensors) with training.json: the config,
the command, the seconds, the data and its licence, and how well it reconstructs the held-out
images (RMS pixel error and FD-pdshape of the reconstructions against the originals).
With --fp16 the weights are stored in half precision (the shipped copy, half the bytes) and
the reconstruction figures are measured on the rounded weights, as a user loads them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pddlib.autoencoder import AutoencoderConfig, save_autoencoder, train_autoencoder
from pddlib.data import load_images, to_tensor
from pddlib.trained import autoencoder_report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=AutoencoderConfig.steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/autoencoder32"))
    ap.add_argument("--fp16", action="store_true", help="store the weights in half precision")
    ap.add_argument("--device", default="cpu",
                    help="where to train (pd-ae32 was trained on the CPU; a GPU gives other weights)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = AutoencoderConfig(steps=args.steps, seed=args.seed)
    train, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    x = to_tensor(train["image"], config.sample_size)
    start = time.perf_counter()
    vae = train_autoencoder(x, config, device=args.device)
    seconds = time.perf_counter() - start
    if args.fp16:
        vae = vae.half().float()
    record = autoencoder_report(vae, held, seconds)
    record["command"] = " ".join(["python scripts/train_autoencoder.py", *sys.argv[1:]])
    record["data"] = (f"openclipart train split, {len(train)} images, public domain "
                      "(pddlib/data/DATASHEET.md); no pretrained weights")
    save_autoencoder(vae.half() if args.fp16 else vae, args.out, config, **record)
    print(f"saved {args.out}: {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
