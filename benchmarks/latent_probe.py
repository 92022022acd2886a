"""Latent-diffusion probe: an autoencoder and a class-conditional UNet on its latents, timed.

    python benchmarks/latent_probe.py --ae-seconds 180 --unet-seconds 540 [--threads 2]

Trains, on the embedded set's train split only, a diffusers AutoencoderKL (f = 4: 32 px images
-> 4 x 8 x 8 latents), then a UNet2DModel on its latents with the course recipe's objective
(v-prediction, min-SNR 5, cosine betas, label dropout for guidance, EMA), each for a fixed
wall-clock budget; samples 16 per class (Euler ancestral 25 steps, guidance 4, seed 0), decodes
them and judges them like benchmarks/judge_samples.py. Writes runs/judged/NAME.* (default
latent-probe).
A measurement for benchmarks/RESULTS.md, not (yet) the course recipe.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DModel

from pddlib.data import load_images, to_tensor, to_uint8
from pddlib.defaults import DEFAULT_GUIDANCE
from pddlib.metrics import class_agreement, fd, per_class_agreement
from pddlib.models import CLASS_NAMES_KEY
from pddlib.objectives import objective_for
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import TrainConfig


def train_autoencoder(x: torch.Tensor, seconds: float, g: torch.Generator) -> AutoencoderKL:
    """AutoencoderKL trained on x (N, 3, 32, 32) in [-1, 1]: MSE + 1e-6 KL, for `seconds`."""
    ae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, sample_size=32,
                       down_block_types=("DownEncoderBlock2D",) * 3,
                       up_block_types=("UpDecoderBlock2D",) * 3,
                       block_out_channels=(32, 64, 128), layers_per_block=1)
    opt = torch.optim.AdamW(ae.parameters(), lr=1e-3)
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        idx = torch.randint(0, len(x), (32,), generator=g)
        xb = torch.where(torch.rand(32, 1, 1, 1, generator=g) < 0.5, x[idx].flip(3), x[idx])
        post = ae.encode(xb).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=g)
        loss = F.mse_loss(ae.decode(z).sample, xb) + 1e-6 * post.kl().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
    print(f"autoencoder: {step} steps in {seconds:.0f} s, last loss {loss.item():.4f}")
    return ae.eval().requires_grad_(False)


def train_latent_unet(z: torch.Tensor, y: torch.Tensor, names: list[str], seconds: float,
                      g: torch.Generator) -> tuple[UNet2DModel, int]:
    """Class-conditional UNet on latents z (N, 4, 8, 8), the course objective, for `seconds`."""
    unet = UNet2DModel(sample_size=8, in_channels=4, out_channels=4,
                       block_out_channels=(128, 256), layers_per_block=2,
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"),
                       norm_num_groups=32, attention_head_dim=32, num_class_embeds=len(names) + 1)
    unet.register_to_config(**{CLASS_NAMES_KEY: names})
    ema = UNet2DModel.from_config(unet.config)
    ema.load_state_dict(unet.state_dict())
    config = TrainConfig()
    objective = objective_for(config)
    opt = torch.optim.AdamW(unet.parameters(), lr=1e-3, betas=(0.9, 0.99))
    start, step = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        idx = torch.randint(0, len(z), (32,), generator=g)
        labels = torch.where(torch.rand(32, generator=g) < config.label_dropout, len(names), y[idx])
        t = torch.randint(0, config.num_train_timesteps, (32,), generator=g)
        noise = torch.randn(z[idx].shape, generator=g)
        loss = objective(unet, z[idx], noise, t, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        step += 1
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), unet.parameters(), strict=True):
                pe.lerp_(p, 1 - decay)
    print(f"latent UNet: {step} steps in {seconds:.0f} s, last loss {loss.item():.4f}")
    return ema.eval(), step


def main() -> None:
    from judge_samples import class_grid  # benchmarks/ is this script's folder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ae-seconds", type=float, default=180)
    ap.add_argument("--unet-seconds", type=float, default=540)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--per-class", type=int, default=16)
    ap.add_argument("--name", default="latent-probe")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)  # layer initialisation
    g = torch.Generator().manual_seed(0)
    train, heldout = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    names = train.features["label"].names
    x, y = to_tensor(train["image"], 32), torch.tensor(train["label"])

    ae = train_autoencoder(x, args.ae_seconds, g)
    with torch.no_grad():
        recon = torch.cat([ae.decode(ae.encode(b).latent_dist.mean).sample
                           for b in to_tensor(heldout["image"], 32).split(64)])
        # Mirrored copies too, as the pixel recipe's flips; latents scaled to unit variance.
        z = torch.cat([ae.encode(b).latent_dist.mean for b in torch.cat([x, x.flip(3)]).split(64)])
    scale = float(1 / z.std())
    unet, unet_steps = train_latent_unet(z * scale, torch.cat([y, y]), list(names),
                                         args.unet_seconds, g)

    pipe = PDDiffusionPipeline(unet, objective_for(TrainConfig()).noise_scheduler()).with_scheduler("euler-a")
    pipe.set_progress_bar_config(disable=True)
    labels = [c for c in range(len(names)) for _ in range(args.per_class)]
    start, latents = time.perf_counter(), []
    gen = torch.Generator().manual_seed(0)

    def keep_last(p, i, t, kw):  # the final latents, before the pipeline clamps them as pixels
        if i == 24:
            latents.append(kw["latents"])
        return kw

    for b in range(0, len(labels), 16):
        pipe(len(labels[b:b + 16]), class_labels=labels[b:b + 16], guidance_scale=DEFAULT_GUIDANCE,
             num_inference_steps=25, generator=gen, callback_on_step_end=keep_last)
    with torch.no_grad():
        images = to_uint8(torch.cat([ae.decode(zb / scale).sample for zb in latents]))
    sample_seconds = time.perf_counter() - start
    requested = [names[c] for c in labels]
    summary = {"ae_seconds": args.ae_seconds, "unet_seconds": args.unet_seconds,
               "unet_steps": unet_steps, "latent_scale": round(scale, 4),
               "sample_seconds": round(sample_seconds, 1), "n": len(labels),
               "fd_pdshape_reconstructions": round(fd(heldout, to_uint8(recon), progress=False), 2)}
    for judge in ("pdshape", "pdcls"):
        summary[judge] = {"fd": round(fd(heldout, images, judge, progress=False), 2),
                          "agreement": round(class_agreement(images, requested, judge=judge), 3),
                          "per_class": {k: round(v, 3) for k, v in per_class_agreement(
                              images, requested, judge=judge).items()}}
    out = Path("runs/judged") / args.name
    out.parent.mkdir(parents=True, exist_ok=True)
    class_grid(images, labels, len(names)).save(out.with_suffix(".png"))
    recon_grid = np.concatenate([to_uint8(to_tensor(heldout["image"][:16], 32)),
                                 to_uint8(recon[:16])])
    class_grid(recon_grid, [0] * 16 + [1] * 16, 2, per_row=16).save(f"{out}-recon.png")
    out.with_suffix(".json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
