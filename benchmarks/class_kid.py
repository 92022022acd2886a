"""Class-conditional KID (pddlib.metrics.kid.class_kid) of saved samples, beside real anchors.

    python benchmarks/class_kid.py runs/ladder/*.npz runs/judged/autoguidance-600-w3.npz \
        runs/cas-samples/*.npz [--json out.json]

Each .npz holds `images` (uint8, N x S x S x 3) and `labels` (class indices or names), as
fidelity_ladder.py, judge_samples.py and cas.py save them. Each set is compared, class by class,
with the training split (about 67 images a class: what the models learnt from) and with the
held-out split (4-12 a class), in both judges' feature spaces. The held-out images themselves,
mildly and destructively degraded (metrics.anchors), are scored against the training split: the
floor a real unseen drawing sets, and what blobs and blurs cost. RESULTS.md records the result
beside a person's look.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pddlib.data import load_images
from pddlib.data.transforms import as_uint8
from pddlib.defaults import JUDGE_NAMES
from pddlib.labels import indices_of
from pddlib.metrics import anchors
from pddlib.metrics.features import extract_features
from pddlib.metrics.kid import class_kid


def anchor_rows(images: np.ndarray, labels: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Real held-out images as they are, mildly degraded and destroyed, with their labels."""
    return {"held-out images (real, unseen)": (images, labels),
            "  blurred, radius 1 px (mild)": (anchors.blurred(images, 1.0), labels),
            "  colour blobs (destructive)": (anchors.colour_blobs(images), labels),
            "  4x4 tiles shuffled (destructive)": (anchors.patch_shuffled(images), labels),
            "  blurred, radius 3 px (destructive)": (anchors.blurred(images, 3.0), labels)}


def main(argv: list[str] | None = None) -> int:
    """Score every saved set and the anchors; print a table, optionally write JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("npz", type=Path, nargs="+", help="saved samples")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    splits = {s: load_images("openclipart", split=s) for s in ("train", "heldout")}
    names = splits["train"].features["label"].names
    real = {s: (as_uint8(d, size=32), np.asarray(d["label"])) for s, d in splits.items()}
    anchored = anchor_rows(*real["heldout"])
    rows = dict(anchored)
    for path in args.npz:
        with np.load(path) as z:
            rows[path.stem] = z["images"], np.asarray(indices_of(z["labels"].tolist(), names, str(path)))
    out: dict[str, dict] = {}
    for judge in JUDGE_NAMES:
        feats = {s: (extract_features(x, judge, progress=False), y) for s, (x, y) in real.items()}
        for name, (images, labels) in rows.items():
            f = extract_features(images, judge, progress=False)
            against = ["train"] if name in anchored else ["train", "heldout"]
            out.setdefault(name, {"n": len(images)})[judge] = {
                s: class_kid(*feats[s], f, labels) for s in against}
    print(f"{'set':<44} {'N':>5}  " + "  ".join(f"{j} vs train / vs held-out" for j in JUDGE_NAMES))
    for name, r in out.items():
        cells = ["  /  ".join(f"{r[j][s]['mean']:.3f} ({r[j][s]['se']:.3f})" for s in r[j])
                 for j in JUDGE_NAMES]
        print(f"{name:<44} {r['n']:>5}  " + "   ".join(f"{c:<34}" for c in cells))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
