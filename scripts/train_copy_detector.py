"""Train the copy-detection descriptor (pddlib.metrics.copydetect) on images the course never measures.

    python scripts/train_copy_detector.py      # writes pddlib/metrics/pdcopy.safetensors + .json

Its images are the multi-source corpus (pdcorpus) less every image of the workshop's 16-class
set, both splits, and every corpus image that is a near-duplicate or mirror image of one: the
copy guard calibrates its threshold on the workshop's training images and tests held-out ones
against them, so a descriptor trained on those very images (instance discrimination pushes
each one away from the rest) would measure its own training set differently from new images.

Instance discrimination, as SSCD (Pizzi et al. 2022) trains its descriptors: two altered views
of each training image must land closer to each other than to any other image of the batch
(InfoNCE). The alterations are the ways a diffusion model's copy differs from its original:
drawn fainter or paler, softened (half the views go through the shipped autoencoder pd-ae32,
whose reconstructions look like a latent model's samples), blurred, made at half the size and
enlarged, shifted or mirrored a little, colours a little off, noisy. Seeded, CPU-only, no
pretrained weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pddlib.autoencoder import decode, encode, load_autoencoder
from pddlib.data import load_images, to_tensor
from pddlib.data.dedup import duplicates_in
from pddlib.data.transforms import as_uint8
from pddlib.metrics.anchors import hue_rotation
from pddlib.metrics.classifier import uniform, warmup_cosine
from pddlib.metrics.copydetect import CopyNet

OUT = Path(__file__).resolve().parents[1] / "pddlib" / "metrics"


@dataclass(frozen=True)
class TrainConfig:
    """How the descriptor is trained."""

    image_size: int = 32
    width: int = 32
    dim: int = 128  # descriptor length
    epochs: int = 32  # about 800 steps on the disjoint corpus images
    batch_size: int = 128  # images per step, two views each
    temperature: float = 0.07
    lr: float = 2e-3
    weight_decay: float = 5e-2
    seed: int = 0


def chance(n: int, p: float, g: torch.Generator) -> torch.Tensor:
    """n seeded Bernoulli(p) draws as a bool tensor."""
    return torch.rand(n, generator=g) < p


def blur(x: torch.Tensor) -> torch.Tensor:
    """One 3 x 3 binomial blur (edges replicated)."""
    k = torch.tensor([1.0, 2.0, 1.0]) / 4
    kernel = (k[:, None] * k[None]).expand(3, 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), kernel, groups=3)


def copy_view(x: torch.Tensor, softened: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A view of each image (N, 3, S, S) in [-1, 1] as a copy of it might look."""
    n, _, s, _ = x.shape
    v = torch.where(chance(n, 0.5, g)[:, None, None, None], softened, x)
    scale, angle = uniform(n, 0.9, 1.1, g), uniform(n, -0.08, 0.08, g)
    mirror = torch.where(chance(n, 0.5, g), -1.0, 1.0)
    tx, ty = uniform(n, -0.08, 0.08, g), uniform(n, -0.08, 0.08, g)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, tx], 1),
                         torch.stack([sin * mirror, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 3, s, s), align_corners=False)
    v = F.grid_sample(v - 1, grid, align_corners=False) + 1  # white outside
    faint = torch.where(chance(n, 0.5, g), uniform(n, 0.3, 1.0, g), torch.ones(n))
    v = 1 - faint[:, None, None, None] * (1 - v)  # drawn fainter: ink moves towards white
    angles = uniform(n, -0.4, 0.4, g) * chance(n, 0.3, g)
    rot = torch.stack([torch.from_numpy(hue_rotation(float(a))).float() for a in angles])
    v = torch.einsum("nij,njhw->nihw", rot, v)
    grey = v.mean(1, keepdim=True)
    v = grey + (v - grey) * uniform(n, 0.6, 1.3, g)[:, None, None, None]
    v = v + uniform(n, -0.1, 0.1, g)[:, None, None, None]
    for p in (0.5, 0.3, 0.15):  # up to three blurs
        b = chance(n, p, g)
        if b.any():
            v = v.clone()
            v[b] = blur(v[b])
    small = chance(n, 0.3, g)  # made at half the size (a 16 px model's sample), then enlarged
    if small.any():
        v = v.clone()
        v[small] = F.interpolate(F.avg_pool2d(v[small], 2), scale_factor=2, mode="bilinear",
                                 align_corners=False)
    sigma = uniform(n, 0, 0.15, g) * chance(n, 0.3, g)
    return (v + sigma[:, None, None, None] * torch.randn(v.shape, generator=g)).clamp(-1, 1)


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of paired unit descriptors a[i] <-> b[i] against every other view in the batch."""
    z = torch.cat([a, b])
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(a)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
    return F.cross_entropy(sim, target)


def train(x: torch.Tensor, softened: torch.Tensor, config: TrainConfig) -> CopyNet:
    """Train on images x (N, 3, S, S) in [-1, 1] and their autoencoder reconstructions."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)
    g = torch.Generator().manual_seed(config.seed)
    model = CopyNet(config.width, config.dim)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = len(x) // config.batch_size
    sched = warmup_cosine(opt, config.epochs * per_epoch)
    model.train()
    for _ in (bar := tqdm(range(config.epochs), desc="pdcopy")):
        order = torch.randperm(len(x), generator=g)
        for i in range(per_epoch):
            idx = order[i * config.batch_size:(i + 1) * config.batch_size]
            a = model(copy_view(x[idx], softened[idx], g))
            b = model(copy_view(x[idx], softened[idx], g))
            loss = info_nce(a, b, config.temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


def disjoint_images():
    """pdcorpus rows that are not, and do not duplicate or mirror, any workshop (openclipart) image."""
    corpus, workshop = load_images("pdcorpus"), load_images("openclipart")
    shared = set(workshop["sha1"])
    rows = [i for i, s in enumerate(corpus["sha1"]) if s not in shared]
    twins = duplicates_in(as_uint8(corpus.select(rows), size=64), as_uint8(workshop, size=64))
    return corpus.select([r for r, t in zip(rows, twins, strict=True) if t < 0])


def main(argv: list[str] | None = None) -> int:
    """Train and save the descriptor with its record."""
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(epochs=args.epochs)
    split = disjoint_images()
    x = to_tensor(split["image"], config.image_size)
    vae = load_autoencoder("pd-ae32")
    softened = decode(vae, encode(vae, x)).clamp(-1, 1)
    start = time.perf_counter()
    model = train(x, softened, config)
    seconds = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(args.out / "pdcopy.safetensors"))
    record = {**asdict(config), "n_train": len(x), "seconds": round(seconds, 1),
              "command": f"python scripts/train_copy_detector.py --epochs {args.epochs}",
              "data": f"pdcorpus less the workshop's 16-class set (both splits, near-duplicates "
                      f"and mirror images included), {len(x)} images (public domain); "
                      "no pretrained weights"}
    (args.out / "pdcopy.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote pdcopy.safetensors and pdcopy.json to {args.out} ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
