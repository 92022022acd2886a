"""Does the larger corpus make a better 16-class judge? Pretrain on pdcorpus, fine-tune on the 16.

    python benchmarks/judge_corpus.py [--pretrain-epochs 40] [--finetune-epochs 60] [--json out.json]
    python benchmarks/judge_corpus.py --seeds 0 1 2 --no-control --save DIR   # an ensemble
    python benchmarks/judge_corpus.py --seeds 0 1 2 --no-control --load DIR --score runs/ladder/*.npz

Two arms with the same number of training batches, both the judges' network and augmentation
(pddlib.metrics.classifier), both measured once on the 16-class held-out split (118 images):
  corpus  pretrain on pdcorpus (every image except those within 0.1 RMS pixels of a held-out
          image, so nothing the test holds is seen), then a fresh 16-way head and the judges'
          recipe on the 16-class training split;
  control the judges' recipe on the 16-class training split alone, for all those batches.
With several --seeds the corpus arm is trained once per seed (each its own pretraining and
fine-tuning) and the members' class probabilities are also averaged: the ensemble's accuracy
after 1, 2, ... members; --no-pretrain makes the members the judges' own recipe on the 16 alone
(seed 0 is the shipped pdshape), to tell what pretraining adds from what averaging adds.
Prints held-out accuracy (and with a mirrored copy averaged in) and per-class counts; --save
writes each member's weights, --load reads them instead of training.
--score scores saved samples (.npz of uint8 images and labels indexing the 16 classes, as
fidelity_ladder.py and judge_samples.py write them) by the ensemble and by pdshape: agreement,
and agreement at a confidence of 0.5, 0.8 and 0.9. benchmarks/RESULTS.md records the results.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from pddlib.data import load_images, to_tensor
from pddlib.metrics.classifier import (
    ClassifierConfig,
    far_from,
    pretrain_then_finetune,
    train_classifier,
)
from pddlib.metrics.judge import ShapeNet, classify
from pddlib.pixels import to_model


@torch.no_grad()
def probabilities(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities of x and of its mirror image (each (N, C)); eval mode."""
    model.eval()
    return model(x).softmax(1), model(x.flip(3)).softmax(1)


def accuracy(probs: torch.Tensor, mirrored: torch.Tensor, y: torch.Tensor) -> dict:
    """Held-out accuracy, with the mirror's probabilities averaged in, and per-class right/total."""
    pred = probs.argmax(1)
    return {"accuracy": float((pred == y).float().mean()),
            "accuracy_flip_averaged": float(((probs + mirrored).argmax(1) == y).float().mean()),
            "per_class": [[int((pred[y == c] == c).sum()), int((y == c).sum())]
                          for c in range(int(y.max()) + 1)]}


def scores(probs: torch.Tensor, labels: torch.Tensor, thresholds=(0.5, 0.8, 0.9)) -> dict:
    """Agreement (top class is the asked one) and agreement at each confidence threshold."""
    asked = probs[torch.arange(len(labels)), labels]
    return {"agreement": float((probs.argmax(1) == labels).float().mean()),
            **{f"p>={t:g}": float((asked >= t).float().mean()) for t in thresholds}}


def score_samples(files: list[Path], members: list[torch.nn.Module]) -> dict:
    """{file stem: {"ensemble": scores, "pdshape": scores}} for saved samples."""
    out = {}
    for f in files:
        with np.load(f) as z:
            images, labels = z["images"], torch.as_tensor(z["labels"])
        x = to_model(images)
        ensemble = sum(probabilities(m, x)[0] for m in members) / len(members)
        out[f.stem] = {"ensemble": scores(ensemble, labels),
                       "pdshape": scores(torch.as_tensor(classify(images, judge="pdshape")[1]), labels)}
        print(f"{f.stem:<40} " + " | ".join(f"{k}: " + " ".join(f"{n} {v:.3f}" for n, v in r.items())
                                            for k, r in out[f.stem].items()), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Train the arms, print and optionally save their held-out accuracy."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pretrain-epochs", type=int, default=40)
    p.add_argument("--finetune-epochs", type=int, default=60)
    p.add_argument("--seeds", type=int, nargs="+", default=[0],
                   help="one corpus-arm member per seed (the control uses the first)")
    p.add_argument("--no-control", action="store_true")
    p.add_argument("--no-pretrain", action="store_true",
                   help="members without pretraining: the judges' recipe on the 16 alone")
    p.add_argument("--save", type=Path, help="write member-SEED.safetensors here")
    p.add_argument("--load", type=Path, help="read member-SEED.safetensors from here, untrained")
    p.add_argument("--score", type=Path, nargs="*", default=[], help="saved samples (.npz)")
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
    results = {"n_pretrain": len(xc), "pretrain_steps": pre_steps, "finetune_steps": ft_steps,
               "seeds": args.seeds, "members": [], "ensemble": []}
    names = train16.features["label"].names

    def report(arm: str, r: dict) -> None:
        print(f"{arm}: held-out {r['accuracy']:.3f} (flip-averaged {r['accuracy_flip_averaged']:.3f}); "
              + ", ".join(f"{n} {a}/{b}" for n, (a, b) in zip(names, r["per_class"], strict=True)),
              flush=True)

    total, total_mirrored, members = 0, 0, []
    for k, seed in enumerate(args.seeds, 1):
        t = time.perf_counter()
        if args.load:
            member = ShapeNet(16, cfg.width)
            member.load_state_dict(load_file(str(args.load / f"member-{seed}.safetensors")))
        elif args.no_pretrain:  # the judges' own recipe (scripts/train_judge.py --seed SEED)
            member = train_classifier(x16, y16, 16, replace(cfg, steps=ft_steps),
                                      torch.Generator().manual_seed(seed), init_seed=seed,
                                      desc=f"16 only {seed}", progress=True)
        else:
            member = pretrain_then_finetune((xc, yc, len(corpus.features["label"].names)),
                                            (x16, y16, 16), replace(cfg, steps=ft_steps), pre_steps,
                                            seed, progress=True)
        members.append(member)
        probs, mirrored = probabilities(member, xh)
        results["members"].append({"seed": seed, **accuracy(probs, mirrored, yh),
                                   "seconds": round(time.perf_counter() - t)})
        report(f"member seed {seed}", results["members"][-1])
        total, total_mirrored = total + probs, total_mirrored + mirrored
        results["ensemble"].append(accuracy(total, total_mirrored, yh))
        report(f"ensemble of {k}", results["ensemble"][-1])
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            save_file({n: v.contiguous() for n, v in member.state_dict().items()},
                      str(args.save / f"member-{seed}.safetensors"))
        if args.json:  # after every member: a long run's progress survives an interruption
            Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")

    if not args.no_control:
        t = time.perf_counter()
        control = train_classifier(x16, y16, 16, replace(cfg, steps=pre_steps + ft_steps),
                                   torch.Generator().manual_seed(args.seeds[0]),
                                   init_seed=args.seeds[0], desc="control", progress=True)
        results["control"] = {**accuracy(*probabilities(control, xh), yh),
                              "seconds": round(time.perf_counter() - t)}
        report("control", results["control"])
    if args.score:
        results["scored"] = score_samples(args.score, members)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
