"""Train a judge (pddlib.metrics.judge) on the embedded set's training split and save it.

    python scripts/train_judge.py            # writes pddlib/metrics/pdshape.safetensors + .json

Seeded and CPU-only (minutes on 2 cores); no pretrained weights. The held-out split is touched
once, at the end, to measure accuracy: no model selection on it, so the recorded number is honest.
The network, augmentation and optimiser are pddlib.metrics.classifier's: the augmentation keeps
what names a class -- its shape -- and varies what should not: position, scale, a slight
rotation, mirroring, hue (half the batch, any angle), saturation, brightness, mild blur and
noise. A judge that cannot lean on colour must learn shapes, and so ranks shape-destroying
degradations (pddlib.metrics.anchors) far from real images.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import save_file

from pddlib.data import load_images, to_tensor
from pddlib.metrics import judge
from pddlib.metrics.classifier import ClassifierConfig, predict, train_classifier

OUT = Path(__file__).resolve().parents[1] / "pddlib" / "metrics"


@dataclass(frozen=True)
class TrainConfig:
    """How a judge is trained: 64 px sources augmented, then seen at 32 px (pddlib.metrics.classifier)."""

    name: str = "pdshape"
    source_size: int = 64  # augment at 64 px, then average-pool to 32: antialiased, as at test
    epochs: int = 60
    seed: int = 0
    # resnet, width 32, seen at 32 px; batches of 64; AdamW 2e-3, weight decay 0.05; smoothing 0.1
    classifier: ClassifierConfig = ClassifierConfig()


def train(images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrainConfig):
    """Train a judge on source-size images (N, 3, S, S) in [-1, 1]: config.epochs passes; seeded, CPU."""
    steps = config.epochs * math.ceil(len(images) / config.classifier.batch_size)
    return train_classifier(images, labels, num_classes, replace(config.classifier, steps=steps),
                            torch.Generator().manual_seed(config.seed), init_seed=config.seed,
                            desc=config.name, progress=True)


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
    p.add_argument("--width", type=int, default=d.classifier.width)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = TrainConfig(name=args.name, epochs=args.epochs, seed=args.seed,
                         classifier=replace(d.classifier, width=args.width))
    size = config.classifier.image_size

    train_ds, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    names = train_ds.features["label"].names
    x_train, y_train = to_tensor(train_ds["image"], config.source_size), torch.tensor(train_ds["label"])
    x_held, y_held = to_tensor(held["image"], size), torch.tensor(held["label"])
    print(f"train {len(x_train)} / held-out {len(x_held)} images, {len(names)} classes")

    start = time.perf_counter()
    model = train(x_train, y_train, len(names), config)
    seconds = time.perf_counter() - start
    pred = predict(model, x_held)
    acc_held = float((pred == y_held).float().mean())
    pred = pred.numpy()
    for i, name in enumerate(names):
        mask = y_held.numpy() == i
        print(f"  {name:<12} held-out {int((pred[mask] == i).sum())}/{int(mask.sum())}")
    print(f"held-out accuracy {acc_held:.3f}, {seconds:.0f} s")

    cmd = (f"python scripts/train_judge.py --name {args.name} --epochs {args.epochs} "
           f"--width {args.width} --seed {args.seed}")
    c = config.classifier
    meta = judge.JudgeInfo(args.name, c.arch, tuple(names), size, c.width, round(acc_held, 4),
                           len(x_train), len(x_held), cmd, round(seconds, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    save_judge(model, meta, args.out)
    print(f"wrote {args.name}.safetensors and {args.name}.json to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
