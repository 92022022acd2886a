"""pdcopy: a copy-detection descriptor trained on public-domain clip art, offline (like SSCD, smaller).

A small ResNet (the pdshape judge's body) whose unit-length output puts an image and its altered
copies (fainter, softened, blurred, shifted, mirrored, recoloured a little) close together and
different drawings apart: trained by scripts/train_copy_detector.py on corpus images outside the
workshop's 16-class set (the guard calibrates on and measures that set's images), shipped as
pdcopy.safetensors with pdcopy.json (its training record). It is the feature space "pdcopy"
(SPACE), the space of the copy guard.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache, partial

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.metrics.judge import ResBlock, package_file, to_input

WEIGHTS = "pdcopy.safetensors"


class CopyNet(nn.Module):
    """Stem, blocks of w, 2w, 4w channels at 32, 16, 8 px, average pool, linear, unit length."""

    def __init__(self, width: int = 32, dim: int = 128) -> None:
        super().__init__()
        w = width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.body = nn.Sequential(ResBlock(w, w, 1), ResBlock(w, 2 * w, 2), ResBlock(2 * w, 2 * w, 1),
                                  ResBlock(2 * w, 4 * w, 2), ResBlock(4 * w, 4 * w, 1))
        self.proj = nn.Linear(4 * w, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, S, S) in [-1, 1] -> unit descriptors (N, dim)."""
        return F.normalize(self.proj(self.body(self.stem(x)).mean(dim=(2, 3))), dim=1)


@cache
def record() -> dict:
    """pdcopy.json: the training config, data and command."""
    path = package_file("pdcopy.json")
    if not path.is_file():
        raise FileNotFoundError(f"The pdcopy descriptor is missing ({path}); retrain it with "
                                "`python scripts/train_copy_detector.py` from a full checkout.")
    return json.loads(path.read_text(encoding="utf-8"))


@cache
def load_descriptor() -> CopyNet:
    """The shipped descriptor in eval mode, on CPU."""
    from safetensors.torch import load_file

    meta = record()
    model = CopyNet(meta["width"], meta["dim"])
    model.load_state_dict(load_file(str(package_file(WEIGHTS))))
    return model.eval().requires_grad_(False)


@torch.no_grad()
def copy_descriptors(images_uint8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Unit descriptors (N, dim) of uint8 images (N, H, W, 3), resized to the descriptor's size."""
    from pddlib.data.transforms import as_uint8

    size = record()["image_size"]
    x = to_input(as_uint8(images_uint8, size=size), size)
    model = load_descriptor()
    return torch.cat([model(b) for b in x.split(batch_size)]).numpy()


@torch.no_grad()
def describe(model: CopyNet, device: torch.device, batch_uint8: np.ndarray) -> np.ndarray:
    """Unit descriptors (B, dim) of one uint8 batch at the descriptor's size."""
    x = to_input(batch_uint8, record()["image_size"]).to(device)
    return model(x).cpu().numpy()


def extractor(device: torch.device) -> Extractor:
    """The descriptor as a feature map on `device`, keyed by its weights' hash for the cache."""
    key = "pdcopy-" + hashlib.sha256(package_file(WEIGHTS).read_bytes()).hexdigest()[:8]
    model = load_descriptor()
    model = model if device.type == "cpu" else copy.deepcopy(model).to(device)
    return Extractor("pdcopy", key, record()["image_size"], 256, partial(describe, model, device))


# No fixed threshold: one that serves a 16-image training set cannot serve a thousand images
# alike, so it is calibrated on each training set (pddlib.metrics.replication).
SPACE = FeatureSpace("pdcopy", extractor, threshold=None, replication=True)
