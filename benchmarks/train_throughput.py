"""Training throughput: pddlib's trainer against a plain diffusers loop, same model and batch.

    python benchmarks/train_throughput.py [--preset cpu-tiny] [--steps 30] [--rounds 2]

Measures, in one run on one machine:
- the fp32 matmul peak (best of repeated square matmuls), as the yardstick;
- "plain": the loop as diffusers' examples write it -- `datasets.set_transform` decoding PNGs
  and resizing/flipping with PIL per example, a shuffling DataLoader, fp32, EMA, AdamW;
- "ours": `pddlib.training.train` (data decoded once into memory, per-step random draws, the
  recipe's loss weighting, EMA, AdamW; mixed precision "auto" = bf16 on a GPU);
- images per second (after 3 warm-up steps) and achieved FLOP/s, counting the FLOPs of one
  training image with torch.utils.flop_counter.
The two loops alternate for --rounds rounds and the best round of each counts, which keeps
the comparison fair on a machine shared with other work. Results go to runs/bench/ as JSON.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup
from diffusers.training_utils import EMAModel
from PIL import Image

from pddlib.data import load_images
from pddlib.models import build_unet, training_flops
from pddlib.recipes import recipe
from pddlib.runs import read_loss_log
from pddlib.training import resolve_precision, train

WARMUP = 3


def matmul_peak(device: str, n: int = 2048, repeats: int = 10) -> float:
    """Best fp32 FLOP/s of an n x n matmul on `device`."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def plain_loop(data, config, steps: int, device: str) -> float:
    """Images/s of the usual diffusers training loop (per-step PIL transforms, fp32)."""
    size = config.model_config.sample_size
    names = data.features["label"].names if config.conditional else None

    def transform(batch):
        # What torchvision's Resize + RandomHorizontalFlip + ToTensor + Normalize do, with PIL.
        out = []
        for im in batch["image"]:
            im = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
            if np.random.rand() < 0.5:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            out.append(torch.from_numpy(np.asarray(im)).permute(2, 0, 1).float() / 127.5 - 1)
        return {"pixel_values": out, "label": batch["label"]}

    ds = data.with_format(None)
    ds.set_transform(transform)
    loader = torch.utils.data.DataLoader(ds, batch_size=config.batch_size, shuffle=True,
                                         drop_last=True)
    unet = build_unet(config.model_config, names, seed=0).to(device)
    ema = EMAModel(unet.parameters(), decay=0.9999, use_ema_warmup=True)
    ema.to(device)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    lr_sched = get_cosine_schedule_with_warmup(optimizer, 100, 1000)
    sched = DDPMScheduler(num_train_timesteps=1000)
    done, t_start = 0, None
    while done < steps + WARMUP:
        for batch in loader:
            if done == WARMUP:
                if device == "cuda":
                    torch.cuda.synchronize()
                t_start = time.perf_counter()
            x0 = batch["pixel_values"].to(device)
            noise = torch.randn_like(x0)
            t = torch.randint(0, 1000, (x0.shape[0],), device=device)
            labels = batch["label"].to(device) if names else None
            pred = unet(sched.add_noise(x0, noise, t), t, class_labels=labels).sample
            loss = F.mse_loss(pred, noise)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            lr_sched.step()
            optimizer.zero_grad()
            ema.step(unet.parameters())
            done += 1
            if done == steps + WARMUP:
                break
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * config.batch_size / (time.perf_counter() - t_start)


def our_loop(data, config, steps: int) -> float:
    """Images/s of pddlib.training.train, from its loss log (step times only)."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = config.__class__(**{**config.__dict__, "max_steps": steps + WARMUP,
                                  "checkpoint_every": 10**9, "sample_every": 0, "sample_n": 1,
                                  "sample_steps": 1})
        train(cfg, data, tmp)
        log = read_loss_log(tmp)
    seconds = log[-1]["seconds"] - log[WARMUP - 1]["seconds"]
    return steps * config.batch_size / seconds


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="cpu-tiny")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--data", default="openclipart")
    ap.add_argument("--out", type=Path, default=Path("runs/bench/train_throughput.json"))
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = recipe(args.preset, conditional=True)
    data = load_images(args.data, split="train")
    n_classes = len(data.features["label"].names)
    flops = training_flops(config.model_config, n_classes)
    peak = matmul_peak(device)
    plain, ours = [], []
    for r in range(args.rounds):
        plain.append(plain_loop(data, config, args.steps, device))
        ours.append(our_loop(data, config, args.steps))
        print(f"round {r + 1}: plain {plain[-1]:.1f} img/s, ours {ours[-1]:.1f} img/s", flush=True)
    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu x{torch.get_num_threads()} threads",
        "preset": args.preset, "batch_size": config.batch_size, "steps": args.steps,
        "precision_ours": resolve_precision(config.mixed_precision), "precision_plain": "fp32",
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "train_gflop_per_image": round(flops / 1e9, 3),
        "plain_img_s": round(max(plain), 1), "ours_img_s": round(max(ours), 1),
        "plain_gflops": round(max(plain) * flops / 1e9, 1),
        "ours_gflops": round(max(ours) * flops / 1e9, 1),
        "plain_peak_fraction": round(max(plain) * flops / peak, 3),
        "ours_peak_fraction": round(max(ours) * flops / peak, 3),
        "speedup": round(max(ours) / max(plain), 2),
        "rounds": {"plain": [round(x, 1) for x in plain], "ours": [round(x, 1) for x in ours]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
