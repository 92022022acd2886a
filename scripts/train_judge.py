"""Train a judge (pddlib.metrics.judge) on the embedded set's training split and save it.

    python scripts/train_judge.py            # writes pddlib/metrics/pdshape.safetensors + .json

Seeded and CPU-only (minutes on 2 cores); no pretrained weights. The held-out split is touched
once, at the end, to measure accuracy: no model selection on it, so the recorded number is honest.
The augmentation keeps what names a class -- its shape -- and varies what should not: position,
scale, a slight rotation, mirroring, hue (half the batch, any angle), saturation, brightness,
mild blur and noise. A judge that cannot lean on colour must learn shapes, and so ranks shape-
destroying degradations (pddlib.metrics.anchors) far from real images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pddlib.data import load_images, to_tensor
from pddlib.metrics import judge
from pddlib.metrics.anchors import hue_rotation

OUT = Path(__file__).resolve().parents[1] / "pddlib" / "metrics"


@dataclass(frozen=True)
class TrainConfig:
    """How a judge is trained: 64 px sources augmented, then seen at 32 px."""

    name: str = "pdshape"
    arch: str = "resnet"
    image_size: int = 32  # the course's CPU resolution
    source_size: int = 64  # augment at 64 px, then average-pool to 32: antialiased, as at test
    width: int = 32
    epochs: int = 60
    batch_size: int = 64
    lr: float = 2e-3  # AdamW peak, cosine-decayed to zero after a short warm-up
    weight_decay: float = 5e-2
    label_smoothing: float = 0.1
    seed: int = 0


def uniform(n: int, low: float, high: float, g: torch.Generator) -> torch.Tensor:
    """n seeded draws from U(low, high)."""
    return torch.empty(n).uniform_(low, high, generator=g)


def warmup_cosine(opt: torch.optim.Optimizer, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first 5 % of `total` steps, then a cosine decay to zero."""
    warmup = max(1, total // 20)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / total))))


def geometric(x: torch.Tensor, out_size: int, g: torch.Generator) -> torch.Tensor:
    """Random scale 0.8-1.15, rotation +-11 deg, shift +-6 %, mirror; white outside; pooled down."""
    n, _, s, _ = x.shape
    scale, angle = uniform(n, 0.8, 1.15, g), uniform(n, -0.2, 0.2, g)
    mirror = torch.where(torch.rand(n, generator=g) < 0.5, -1.0, 1.0)
    tx, ty = uniform(n, -0.12, 0.12, g), uniform(n, -0.12, 0.12, g)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos * mirror, -sin, tx], 1),
                         torch.stack([sin * mirror, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, (n, 3, s, s), align_corners=False)
    x = F.grid_sample(x - 1, grid, align_corners=False) + 1  # zero padding of x - 1 is white
    return F.avg_pool2d(x, s // out_size)


def photometric(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Hue turned by any angle for half the batch; saturation, brightness, contrast; blur; noise."""
    n = len(x)
    angles = uniform(n, -math.pi, math.pi, g) * (torch.rand(n, generator=g) < 0.5)
    rot = torch.stack([torch.from_numpy(hue_rotation(float(a))).float() for a in angles])
    x = torch.einsum("nij,njhw->nihw", rot, x)
    grey = x.mean(1, keepdim=True)
    sat = uniform(n, 0.6, 1.3, g) * (torch.rand(n, generator=g) > 0.1)  # 10 % greyscale
    x = grey + (x - grey) * sat[:, None, None, None]
    x = x * uniform(n, 0.8, 1.2, g)[:, None, None, None] + uniform(n, -0.15, 0.15, g)[:, None, None, None]
    blur = torch.rand(n, generator=g) < 0.3
    if blur.any():
        k = torch.tensor([1.0, 2.0, 1.0]) / 4
        kernel = (k[:, None] * k[None]).expand(3, 1, 3, 3)
        x = x.clone()
        x[blur] = F.conv2d(F.pad(x[blur], (1, 1, 1, 1), mode="replicate"), kernel, groups=3)
    sigma = uniform(n, 0, 0.12, g) * (torch.rand(n, generator=g) < 0.3)
    return (x + sigma[:, None, None, None] * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def train(images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrainConfig):
    """Train a judge on source-size images (N, 3, S, S) in [-1, 1]; seeded, CPU."""
    from tqdm.auto import tqdm

    torch.manual_seed(config.seed)  # layer initialisation and dropout
    gen = torch.Generator().manual_seed(config.seed)
    model = judge.ARCHS[config.arch](num_classes, config.width).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = warmup_cosine(opt, config.epochs * math.ceil(len(images) / config.batch_size))
    model.train()
    for _ in (bar := tqdm(range(config.epochs), desc=config.name)):
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images), config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one image
                continue
            x = photometric(geometric(images[idx], config.image_size, gen), gen)
            loss = F.cross_entropy(model(x.contiguous(memory_format=torch.channels_last)),
                                   labels[idx], label_smoothing=config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of model on images (N, 3, S, S) in [-1, 1] with labels (N,)."""
    model.eval()
    return float((model(images).argmax(1) == labels).float().mean())


def save_judge(model: torch.nn.Module, meta: judge.JudgeInfo, folder: Path) -> None:
    """Write NAME.safetensors and NAME.json into folder."""
    save_file({k: v.contiguous() for k, v in model.state_dict().items()},
              str(folder / f"{meta.name}.safetensors"))
    data = asdict(meta)
    data["class_names"] = list(meta.class_names)
    (folder / f"{meta.name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Train, measure held-out accuracy, save weights and config."""
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", default=d.name)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--width", type=int, default=d.width)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(name=args.name, epochs=args.epochs, width=args.width, seed=args.seed)

    train_ds, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    names = train_ds.features["label"].names
    x_train, y_train = to_tensor(train_ds["image"], config.source_size), torch.tensor(train_ds["label"])
    x_held, y_held = to_tensor(held["image"], config.image_size), torch.tensor(held["label"])
    print(f"train {len(x_train)} / held-out {len(x_held)} images, {len(names)} classes")

    start = time.perf_counter()
    model = train(x_train, y_train, len(names), config)
    seconds = time.perf_counter() - start
    acc_held = accuracy(model, x_held, y_held)
    with torch.no_grad():
        pred = model(x_held).argmax(1).numpy()
    for i, name in enumerate(names):
        mask = y_held.numpy() == i
        print(f"  {name:<12} held-out {int((pred[mask] == i).sum())}/{int(mask.sum())}")
    print(f"held-out accuracy {acc_held:.3f}, {seconds:.0f} s")

    cmd = (f"python scripts/train_judge.py --name {args.name} --epochs {args.epochs} "
           f"--width {args.width} --seed {args.seed}")
    meta = judge.JudgeInfo(args.name, config.arch, tuple(names), config.image_size, config.width,
                           round(acc_held, 4), len(x_train), len(x_held), cmd, round(seconds, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    save_judge(model, meta, args.out)
    print(f"wrote {args.name}.safetensors and {args.name}.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
