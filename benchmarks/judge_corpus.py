"""Does the larger corpus make a better 16-class judge? Pretrain on pdcorpus, fine-tune on the 16.

    python benchmarks/judge_corpus.py [--pretrain-epochs 40] [--finetune-epochs 60] [--json out.json]

Two arms with the same number of training batches, both the judges' network and augmentation
(pddlib.metrics.classifier), both measured once on the 16-class held-out split (118 images):
  corpus  pretrain on pdcorpus (every image except those within 0.1 RMS pixels of a held-out
          image, so nothing the test holds is seen), then a fresh 16-way head and the judges'
          recipe on the 16-class training split;
  control the judges' recipe on the 16-class training split alone, for all those batches.
Prints held-out accuracy (and with a mirrored copy averaged in) and per-class counts;
benchmarks/RESULTS.md records the result.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as F

from pddlib.data import load_images, to_tensor
from pddlib.metrics.classifier import ClassifierConfig, predict, train_classifier
from pddlib.metrics.judge import ARCHS


def far_from(images: torch.Tensor, held: torch.Tensor, min_rms: float = 0.1) -> torch.Tensor:
    """Mask of images (N,3,64,64) whose 16x16 RMS distance to every held-out image is >= min_rms."""
    a, b = F.avg_pool2d(images, 4).flatten(1), F.avg_pool2d(held, 4).flatten(1)
    d = torch.cdist(a, b) / math.sqrt(a.shape[1])
    # A mirrored held-out image is the same drawing: keep it out of pretraining too.
    d = torch.minimum(d, torch.cdist(a, F.avg_pool2d(held.flip(3), 4).flatten(1)) / math.sqrt(a.shape[1]))
    return d.min(1).values >= min_rms


def with_new_head(model: torch.nn.Module, num_classes: int) -> torch.nn.Module:
    """The pretrained network with a fresh linear head for num_classes."""
    name, lin = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    parent = model.get_submodule(name.rpartition(".")[0]) if "." in name else model
    setattr(parent, name.rpartition(".")[2], torch.nn.Linear(lin.in_features, num_classes))
    return model.train()


def accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict:
    """Held-out accuracy, with flip averaging, and per-class right/total."""
    pred = predict(model, x)
    with torch.no_grad():
        tta = (model(x).softmax(1) + model(x.flip(3)).softmax(1)).argmax(1)
    return {"accuracy": float((pred == y).float().mean()),
            "accuracy_flip_averaged": float((tta == y).float().mean()),
            "per_class": [[int((pred[y == c] == c).sum()), int((y == c).sum())]
                          for c in range(int(y.max()) + 1)]}


def main(argv: list[str] | None = None) -> int:
    """Train both arms, print and optionally save their held-out accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrain-epochs", type=int, default=40)
    p.add_argument("--finetune-epochs", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(2)
    cfg = ClassifierConfig()
    train16, held16 = load_images("openclipart", split="train"), load_images("openclipart", split="heldout")
    corpus = load_images("pdcorpus")
    x16, y16 = to_tensor(train16["image"], 64), torch.tensor(train16["label"])
    xh, yh = to_tensor(held16["image"], 32), torch.tensor(held16["label"])
    xc, yc = to_tensor(corpus["image"], 64), torch.tensor(corpus["label"])
    keep = far_from(xc, to_tensor(held16["image"], 64))
    xc, yc = xc[keep], yc[keep]
    pre_steps = args.pretrain_epochs * math.ceil(len(xc) / cfg.batch_size)
    ft_steps = args.finetune_epochs * math.ceil(len(x16) / cfg.batch_size)
    print(f"pdcorpus {len(corpus)} images, {len(xc)} kept for pretraining; {pre_steps} + "
          f"{ft_steps} batches", flush=True)
    results = {"n_pretrain": len(xc), "pretrain_steps": pre_steps, "finetune_steps": ft_steps}

    t = time.perf_counter()
    base = train_classifier(xc, yc, len(corpus.features["label"].names),
                            replace(cfg, steps=pre_steps), torch.Generator().manual_seed(args.seed),
                            init_seed=args.seed, desc="pretrain", progress=True)
    ARCHS["pretrained"] = lambda n, _w: with_new_head(base, n)  # train_classifier builds from ARCHS
    try:
        tuned = train_classifier(x16, y16, 16, replace(cfg, arch="pretrained", steps=ft_steps),
                                 torch.Generator().manual_seed(args.seed + 1), init_seed=args.seed,
                                 desc="fine-tune", progress=True)
    finally:
        del ARCHS["pretrained"]
    results["corpus"] = {**accuracy(tuned, xh, yh), "seconds": round(time.perf_counter() - t)}

    t = time.perf_counter()
    control = train_classifier(x16, y16, 16, replace(cfg, steps=pre_steps + ft_steps),
                               torch.Generator().manual_seed(args.seed), init_seed=args.seed,
                               desc="control", progress=True)
    results["control"] = {**accuracy(control, xh, yh), "seconds": round(time.perf_counter() - t)}

    names = train16.features["label"].names
    for arm in ("corpus", "control"):
        r = results[arm]
        print(f"{arm}: held-out {r['accuracy']:.3f} (flip-averaged {r['accuracy_flip_averaged']:.3f}), "
              f"{r['seconds']} s; " + ", ".join(f"{n} {a}/{b}" for n, (a, b) in
                                               zip(names, r["per_class"], strict=True)))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
