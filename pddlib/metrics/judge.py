"""The judges: small clip-art classifiers trained on the embedded set, offline feature networks.

Each judge is a pair of files shipped beside this module, NAME.safetensors and NAME.json (class
names, input size, architecture, held-out accuracy, the training command); they are trained by
scripts/train_judge.py on the embedded set's training split only, with no pretrained weights.
  - "pdshape" (the default): a small ResNet trained with identity-preserving augmentation
    (random crops, rotations and flips, hue turns, mild blur and noise), so that it must name a
    class by its shape rather than its colours; its features rank degraded real images as a
    person does (pddlib.metrics.anchors, tested).
  - "pdcls": a plain CNN trained with flips and shifts only, kept to compare; it keys
    on colour and layout, and rates blob-like samples above blurred real images.
Two uses each: features (the penultimate layer) give "FD-<judge>", an offline stand-in for FID
that is never called FID; and `class_agreement(images, requested)`, the fraction of generated
images the judge assigns to the class that was asked for, overall and per class.
Judges see images as the course's CPU models do: square-padded on white, 32 px, in [-1, 1].
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, partial
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pddlib.data.transforms import as_uint8
from pddlib.defaults import DEFAULT_JUDGE, JUDGE_NAMES
from pddlib.labels import indices_of
from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.pixels import to_model

JUDGES = JUDGE_NAMES


class PDClassifier(nn.Module):
    """pdcls: 3x3 conv-BN-ReLU stages of widths w, 2w, 4w at 32, 16, 8 px, pool, linear."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            if stage:
                layers.append(nn.MaxPool2d(2))
            # One layer at full resolution: on CPU it costs the most and adds the least.
            for _ in range(2 if stage else 1):
                layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                           nn.ReLU(inplace=True)]
                cin = cout
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(cin, num_classes)
        self.feature_dim = cin

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> penultimate features (N, 4 * width)."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> class logits (N, num_classes)."""
        return self.head(self.dropout(self.features(x)))


class ResBlock(nn.Module):
    """Two 3x3 conv-BN layers with a residual path (a 1x1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, cin, S, S) -> (N, cout, S / stride, S / stride)."""
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


class ShapeNet(nn.Module):
    """pdshape: a ResNet for 32 px clip art: stem, blocks of w, 2w, 4w at 32, 16, 8 px, pool, linear."""

    def __init__(self, num_classes: int, width: int = 32) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        # Two blocks at 16 and 8 px, where shapes of 32 px clip art live; one at full size.
        self.body = nn.Sequential(ResBlock(w, w, 1), ResBlock(w, 2 * w, 2), ResBlock(2 * w, 2 * w, 1),
                                  ResBlock(2 * w, 4 * w, 2), ResBlock(4 * w, 4 * w, 1))
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(4 * w, num_classes)
        self.feature_dim = 4 * w

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> penultimate features (N, 4 * width)."""
        return self.body(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> class logits (N, num_classes)."""
        return self.head(self.dropout(self.features(x)))


ARCHS = {"plain": PDClassifier, "resnet": ShapeNet}


# ---------------------------------------------------------------------------------------------
# The committed judges
# ---------------------------------------------------------------------------------------------

def package_file(name: str) -> Path:
    """Path of a file shipped inside pddlib.metrics."""
    return Path(str(resources.files("pddlib.metrics").joinpath(name)))


def check_judge(name: str) -> str:
    """name if it is a known judge, else one clear error naming the choices."""
    if name not in JUDGES:
        raise ValueError(f"unknown judge {name!r}: choose one of {', '.join(JUDGES)} "
                         f"(default {DEFAULT_JUDGE}).")
    return name


def weights_file(name: str = DEFAULT_JUDGE) -> Path:
    """The judge's NAME.safetensors."""
    return package_file(f"{check_judge(name)}.safetensors")


@dataclass(frozen=True)
class JudgeInfo:
    """What NAME.json records about a committed judge."""

    name: str
    arch: str  # a key of ARCHS
    class_names: tuple[str, ...]
    image_size: int
    width: int
    heldout_accuracy: float
    n_train: int
    n_heldout: int
    command: str
    seconds: float


@cache
def info(name: str = DEFAULT_JUDGE) -> JudgeInfo:
    """Read NAME.json (class names, input size, held-out accuracy, training command)."""
    path = package_file(f"{check_judge(name)}.json")
    if not path.is_file():
        raise FileNotFoundError(f"The {name} judge is missing ({path}); retrain it with "
                                f"`python scripts/train_judge.py --name {name}` from a full checkout.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["class_names"] = tuple(raw["class_names"])
    return JudgeInfo(**{k: raw[k] for k in JudgeInfo.__dataclass_fields__})


@cache
def load_judge(name: str = DEFAULT_JUDGE) -> nn.Module:
    """The committed judge in eval mode, on CPU (weights from NAME.safetensors)."""
    from safetensors.torch import load_file

    meta = info(name)
    model = ARCHS[meta.arch](len(meta.class_names), meta.width)
    model.load_state_dict(load_file(str(weights_file(name))))
    return model.eval().requires_grad_(False)


def to_input(images_uint8: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) at `size` px -> float (N, 3, size, size) in [-1, 1]."""
    x = np.asarray(images_uint8)
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != size or x.shape[2] != size:
        raise ValueError(f"expected uint8 images (N, {size}, {size}, 3), got {tuple(x.shape)}")
    return to_model(x)


@torch.no_grad()
def classify(images, *, judge: str = DEFAULT_JUDGE,
             batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(predicted label indices (N,), class probabilities (N, C)) for any image collection.

    images: a dataset, a list of PIL images, or uint8 (N, H, W, 3); brought to the judge's
    32 px first. Labels index `info(judge).class_names` (the embedded set's classes).
    """
    meta = info(judge)
    arr = as_uint8(images, size=meta.image_size)
    model = load_judge(judge)
    probs = [F.softmax(model(to_input(arr[i:i + batch_size], meta.image_size)), dim=1)
             for i in range(0, len(arr), batch_size)]
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(meta.class_names)))
    return p.argmax(axis=1), p


def label_indices(labels: Sequence[int | str], judge: str = DEFAULT_JUDGE) -> np.ndarray:
    """Class names or indices of the embedded set -> indices (N,), with a clear error otherwise."""
    owner = f"the {judge} judge (trained on the embedded set's classes)"
    return np.asarray(indices_of(labels, info(judge).class_names, owner), dtype=np.int64)


def knows_classes(class_names: Sequence[str], judge: str = DEFAULT_JUDGE) -> bool:
    """True when every name is a class the judge was trained on (and there is at least one)."""
    return bool(class_names) and set(class_names) <= set(info(judge).class_names)


def agreements(images, requested_labels: Sequence[int | str], *,
               judge: str = DEFAULT_JUDGE) -> tuple[np.ndarray, np.ndarray]:
    """(requested indices (N,), whether the judge named each image's requested class (N,))."""
    want = label_indices(list(requested_labels), judge)
    pred, _ = classify(images, judge=judge)
    if len(pred) != len(want):
        raise ValueError(f"got {len(pred)} images but {len(want)} requested labels")
    return want, pred == want


def agreement_by_class(want: np.ndarray, hits: np.ndarray,
                       judge: str = DEFAULT_JUDGE) -> dict[str, float]:
    """{class name: fraction of hits among its images}, for each class in want."""
    names = info(judge).class_names
    return {names[c]: float(hits[want == c].mean()) for c in sorted(set(want.tolist()))}


def per_class_agreement(images, requested_labels: Sequence[int | str], *,
                        judge: str = DEFAULT_JUDGE) -> dict[str, float]:
    """{class name: fraction of its images the judge assigns to it}, for each requested class."""
    return agreement_by_class(*agreements(images, requested_labels, judge=judge), judge)


# The confidence at which agreement stopped saturating on the recorded ladder of models
# (benchmarks/fidelity_ladder.py): at 0.9 it still ordered one recipe's checkpoints.
CONFIDENT = 0.9


def confident_agreement(images, requested_labels: Sequence[int | str], *,
                        threshold: float = CONFIDENT, judge: str = DEFAULT_JUDGE) -> float:
    """Fraction of images whose requested class the judge gives a probability >= threshold.

    Plain agreement saturates on good models (the judge names the class of a typical outline
    whatever its quality); at a high confidence it keeps ordering checkpoints of one recipe.
    """
    want = label_indices(list(requested_labels), judge)
    _, probs = classify(images, judge=judge)
    if len(probs) != len(want):
        raise ValueError(f"got {len(probs)} images but {len(want)} requested labels")
    return float((probs[np.arange(len(want)), want] >= threshold).mean()) if len(want) else float("nan")


def class_agreement(images, requested_labels: Sequence[int | str], *,
                    judge: str = DEFAULT_JUDGE) -> float:
    """Fraction of images that the judge assigns to the requested class (names or indices)."""
    _, hits = agreements(images, requested_labels, judge=judge)
    return float(hits.mean()) if len(hits) else float("nan")


# ---------------------------------------------------------------------------------------------
# The judges as feature spaces (FD-<judge>)
# ---------------------------------------------------------------------------------------------

@torch.no_grad()
def penultimate(model: nn.Module, device: torch.device, batch_uint8: np.ndarray) -> np.ndarray:
    """Penultimate features (B, D) float32 of one uint8 batch at the judge's size."""
    return model.features(to_model(batch_uint8).to(device)).float().cpu().numpy()


def extractor(name: str, device: torch.device) -> Extractor:
    """The judge's feature map on `device`, keyed by its weights' hash for the feature cache."""
    key = f"{name}-" + hashlib.sha256(weights_file(name).read_bytes()).hexdigest()[:8]
    model = load_judge(name)
    # A copy off the CPU: the cached CPU judge stays where classify() expects it.
    model = model if device.type == "cpu" else copy.deepcopy(model).to(device)
    return Extractor(name, key, info(name).image_size, 256, partial(penultimate, model, device))


def space(name: str, **kw) -> FeatureSpace:
    """A judge's feature space: FD-<name>; features are post-ReLU averages, so centred for cosine."""
    return FeatureSpace(check_judge(name), partial(extractor, name), fd_name=f"FD-{name}",
                        centre=True, **kw)
