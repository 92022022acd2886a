"""pdcls: a small clip-art classifier, the offline feature network and recognisability judge.

Trained on the embedded set's training split by scripts/train_pdcls.py (weights committed
beside this file as pdcls.safetensors, with pdcls.json: class names, input size, held-out
accuracy, the training command). Two uses:
  - features: its penultimate layer (128-d) gives "FD-pdcls", an offline stand-in for FID that
    is never called FID (a tiny network trained on ~1k images is not InceptionV3 on ImageNet);
  - judge: `class_agreement(images, requested_labels)` is the fraction of generated images it
    assigns to the class that was asked for.
It sees images as the course's CPU models do: square-padded on white, 32 px, in [-1, 1].
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WEIGHTS = "pdcls.safetensors"
CONFIG = "pdcls.json"


class PDClassifier(nn.Module):
    """3x3 conv-BN-ReLU stages of widths w, 2w, 4w at 32, 16, 8 px (1, 2, 2 layers), pool, linear."""

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


# ---------------------------------------------------------------------------------------------
# The committed classifier
# ---------------------------------------------------------------------------------------------

def package_file(name: str) -> Path:
    """Path of a file shipped inside pddlib.metrics."""
    return Path(str(resources.files("pddlib.metrics").joinpath(name)))


@dataclass(frozen=True)
class PDClsInfo:
    """What pdcls.json records about the committed classifier."""

    class_names: tuple[str, ...]
    image_size: int
    width: int
    heldout_accuracy: float
    n_train: int
    n_heldout: int
    command: str
    seconds: float


def info() -> PDClsInfo:
    """Read pdcls.json (class names, input size, held-out accuracy, training command)."""
    path = package_file(CONFIG)
    if not path.is_file():
        raise FileNotFoundError(f"The pdcls classifier is missing ({path}); retrain it with "
                                "`python scripts/train_pdcls.py` from a full checkout.")
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["class_names"] = tuple(raw["class_names"])
    return PDClsInfo(**{k: raw[k] for k in PDClsInfo.__dataclass_fields__})


@lru_cache(maxsize=1)
def load_pdcls() -> PDClassifier:
    """The committed classifier in eval mode, on CPU (weights from pdcls.safetensors)."""
    from safetensors.torch import load_file

    meta = info()
    model = PDClassifier(len(meta.class_names), meta.width)
    model.load_state_dict(load_file(str(package_file(WEIGHTS))))
    return model.eval().requires_grad_(False)


def to_input(images_uint8: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) at `size` px -> float (N, 3, size, size) in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images_uint8))
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != size or x.shape[2] != size:
        raise ValueError(f"expected uint8 images (N, {size}, {size}, 3), got {tuple(x.shape)}")
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def classify(images, *, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(predicted label indices (N,), class probabilities (N, C)) for any image collection.

    images: a dataset, a list of PIL images, or uint8 (N, H, W, 3); brought to 32 px first.
    Labels index `info().class_names` (the embedded set's classes).
    """
    from pddlib.metrics.features import as_uint8

    size = info().image_size
    arr = as_uint8(images, size=size)
    model = load_pdcls()
    probs = [F.softmax(model(to_input(arr[i:i + batch_size], size)), dim=1)
             for i in range(0, len(arr), batch_size)]
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(info().class_names)))
    return p.argmax(axis=1), p


def label_indices(labels: Sequence[int | str]) -> np.ndarray:
    """Class names or indices of the embedded set -> indices (N,), with a clear error otherwise."""
    names = list(info().class_names)
    out = []
    for label in labels:
        if isinstance(label, str):
            if label not in names:
                raise ValueError(f"pdcls knows only the embedded set's classes {names}; "
                                 f"got {label!r}.")
            out.append(names.index(label))
        elif 0 <= int(label) < len(names):
            out.append(int(label))
        else:
            raise ValueError(f"class index {label} out of range 0..{len(names) - 1} ({names}).")
    return np.asarray(out, dtype=np.int64)


def class_agreement(images, requested_labels: Sequence[int | str]) -> float:
    """Fraction of images that pdcls assigns to the requested class (names or indices), in [0, 1]."""
    want = label_indices(list(requested_labels))
    pred, _ = classify(images)
    if len(pred) != len(want):
        raise ValueError(f"got {len(pred)} images but {len(want)} requested labels")
    return float((pred == want).mean()) if len(want) else float("nan")


# ---------------------------------------------------------------------------------------------
# Training (used by scripts/train_pdcls.py)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainConfig:
    """How the committed classifier is trained: a few CPU minutes at 32 px."""

    image_size: int = 32  # the course's CPU resolution
    width: int = 32  # channels of the first stage (then 2x, 4x)
    epochs: int = 30
    batch_size: int = 32  # small batches: more steps per CPU second on ~1k images
    lr: float = 2e-3  # AdamW peak, cosine-decayed to zero after a short warm-up
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1
    max_shift: int = 3  # random translation in pixels (padding is white, like the data)
    seed: int = 0


def augment(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to max_shift px of a batch (N, 3, S, S) in [-1, 1]."""
    n, _, s, _ = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    if max_shift <= 0:
        return x
    # Pad with white (1.0 in [-1, 1]) and crop at a random offset per image.
    padded = F.pad(x, (max_shift,) * 4, value=1.0)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=generator)
    return torch.stack([padded[i, :, dy[i]:dy[i] + s, dx[i]:dx[i] + s] for i in range(n)])


def train_classifier(
    images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrainConfig,
    progress: bool = True,
) -> PDClassifier:
    """Train a PDClassifier on images (N, 3, S, S) in [-1, 1] with labels (N,); seeded, CPU."""
    # Layer initialisation and dropout draw from the global RNG: fork it, so training is seeded
    # and the caller's RNG state is left exactly as it was.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return _train(images, labels, num_classes, config, progress)


def _train(images: torch.Tensor, labels: torch.Tensor, num_classes: int, config: TrainConfig,
           progress: bool) -> PDClassifier:
    """The training loop of `train_classifier` (global RNG already forked and seeded)."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(config.seed)
    # channels_last: ~30 % faster convolutions on CPU; the same model up to float rounding.
    model = PDClassifier(num_classes, config.width).to(memory_format=torch.channels_last)
    images = images.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(images) / config.batch_size)
    total = config.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + math.cos(math.pi * min(1.0, s / total))))
    model.train()
    bar = tqdm(range(config.epochs), desc="pdcls", disable=not progress)
    for _ in bar:
        order = torch.randperm(len(images), generator=gen)
        for i in range(0, len(images), config.batch_size):
            idx = order[i:i + config.batch_size]
            if len(idx) < 2:  # BatchNorm needs more than one image
                continue
            x = augment(images[idx], config.max_shift, gen)
            loss = F.cross_entropy(model(x), labels[idx], label_smoothing=config.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")
    return model.eval()


@torch.no_grad()
def accuracy(model: PDClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy of model on images (N, 3, S, S) in [-1, 1] with labels (N,)."""
    model.eval()
    return float((model(images).argmax(1) == labels).float().mean())


def save_pdcls(model: PDClassifier, meta: PDClsInfo, folder: Path) -> None:
    """Write pdcls.safetensors and pdcls.json into folder."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / WEIGHTS))
    data = asdict(meta)
    data["class_names"] = list(meta.class_names)
    (folder / CONFIG).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
