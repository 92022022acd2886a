"""Train the pdcls classifier on the embedded set's training split and commit-ready save it.

    python scripts/train_pdcls.py            # writes pddlib/metrics/pdcls.safetensors + pdcls.json

Seeded and CPU-only (a few minutes on 2 cores). The held-out split is touched once, at the end,
to measure accuracy: no model selection on it, so the recorded number is honest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

from pddlib.data import load_images, to_tensor
from pddlib.metrics import pdcls

OUT = Path(__file__).resolve().parents[1] / "pddlib" / "metrics"


def main(argv: list[str] | None = None) -> int:
    """Train, measure held-out accuracy, save weights and config."""
    defaults = pdcls.TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--width", type=int, default=defaults.width)
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    config = pdcls.TrainConfig(epochs=args.epochs, width=args.width, seed=args.seed)

    train, held = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    names = train.features["label"].names
    x_train, y_train = to_tensor(train["image"], config.image_size), torch.tensor(train["label"])
    x_held, y_held = to_tensor(held["image"], config.image_size), torch.tensor(held["label"])
    print(f"train {len(x_train)} / held-out {len(x_held)} images, {len(names)} classes, "
          f"{config.image_size} px")

    start = time.perf_counter()
    model = pdcls.train_classifier(x_train, y_train, len(names), config)
    seconds = time.perf_counter() - start
    acc_train = pdcls.accuracy(model, x_train, y_train)
    acc_held = pdcls.accuracy(model, x_held, y_held)
    with torch.no_grad():
        pred = model(x_held).argmax(1).numpy()
    for i, name in enumerate(names):
        mask = y_held.numpy() == i
        print(f"  {name:<12} held-out {int((pred[mask] == i).sum())}/{int(mask.sum())}")
    print(f"train accuracy {acc_train:.3f}, held-out accuracy {acc_held:.3f}, {seconds:.0f} s")

    cmd = "python scripts/train_pdcls.py" + "".join(
        f" --{k} {v}" for k, v in (("epochs", args.epochs), ("width", args.width),
                                   ("seed", args.seed)))
    meta = pdcls.PDClsInfo(tuple(names), config.image_size, config.width, round(acc_held, 4),
                           len(x_train), len(x_held), cmd, round(seconds, 1))
    args.out.mkdir(parents=True, exist_ok=True)
    pdcls.save_pdcls(model, meta, args.out)
    size = (args.out / pdcls.WEIGHTS).stat().st_size
    print(f"wrote {args.out / pdcls.WEIGHTS} ({size / 1e6:.2f} MB) and {args.out / pdcls.CONFIG}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
