"""Train the latent-diffusion autoencoder on the embedded set's train split and save it.

    python scripts/train_autoencoder.py [--steps 1200] [--out runs/autoencoder32] [--threads 2]

Only the train split is seen (the held-out images stay unseen for evaluation); no pretrained
weights. Writes a diffusers AutoencoderKL folder (safetensors) with training.json: the config,
the command, the seconds, the data and its licence, and how well it reconstructs the held-out
images (RMS pixel error and FD-pdshape of the reconstructions against the originals).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pddlib.autoencoder import (
    AutoencoderConfig,
    decode,
    encode,
    save_autoencoder,
    train_autoencoder,
)
from pddlib.data import load_images, to_tensor, to_uint8
from pddlib.metrics import fd


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=AutoencoderConfig.steps)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/autoencoder32"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = AutoencoderConfig(steps=args.steps, seed=args.seed)
    train, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    x = to_tensor(train["image"], config.sample_size)
    start = time.perf_counter()
    vae = train_autoencoder(x, config)
    seconds = time.perf_counter() - start
    xh = to_tensor(held["image"], config.sample_size)
    recon = decode(vae, encode(vae, xh)).clamp(-1, 1)
    rms = float(((recon - xh) / 2).pow(2).mean().sqrt())
    record = {"command": " ".join(["python scripts/train_autoencoder.py", *sys.argv[1:]]),
              "seconds": round(seconds, 1), "threads": torch.get_num_threads(),
              "data": f"openclipart train split, {len(train)} images, public domain "
                      "(pddlib/data/DATASHEET.md); no pretrained weights",
              "heldout_rms_pixel_error": round(rms, 4),
              "heldout_fd_pdshape_of_reconstructions": round(
                  fd(held, to_uint8(recon), progress=False), 2)}
    save_autoencoder(vae, args.out, config, **record)
    print(f"saved {args.out}: {record}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
