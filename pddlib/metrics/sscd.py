"""SSCD copy-detection descriptors (Pizzi et al. 2022), optional: only from the local torch cache.

The replication study (Somepalli et al. 2023) scores copies with SSCD: a ResNet-50 trained so
that an image and its edited copies (crops, flips, colour changes, overlays) land close together.
Its weights are a TorchScript file Meta publishes; pddlib never downloads it by itself. Put the
file in the torch hub cache (`prefetch_weights()` on a machine with internet, or copy it there)
and `replication(...)` adds the "sscd" space (SPACE); without it the course uses pixels and pdcopy.
TorchScript archives are loaded with torch.jit.load, which runs no Python code from the file.
"""

from __future__ import annotations

from functools import lru_cache, partial
from pathlib import Path

import numpy as np
import torch

from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.metrics.hub_cache import download, hub_checkpoint
from pddlib.pixels import uint8_to_unit
from pddlib.progress import progress_bar

FILENAME = "sscd_disc_mixup.torchscript.pt"
URL = f"https://dl.fbaipublicfiles.com/sscd-copy-detection/{FILENAME}"
INPUT_SIZE = 288  # SSCD's evaluation resolution (the short side)
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet normalisation


def weights_path() -> Path:
    """Where the SSCD weights belong: <torch hub dir>/checkpoints/sscd_disc_mixup.torchscript.pt."""
    return hub_checkpoint(FILENAME)


def find_weights() -> Path | None:
    """The cached SSCD weights file, or None."""
    path = weights_path()
    return path if path.is_file() else None


def missing_message() -> str:
    """Why SSCD was skipped, and how to enable it."""
    return (f"the SSCD weights are not in the local torch cache ({weights_path()}); pddlib never "
            f"downloads them by itself. To add the 'sscd' space, run "
            f"`python -c 'from pddlib.metrics.sscd import prefetch_weights; prefetch_weights()'` "
            f"on a machine with internet (or download {URL} into that folder).")


def missing_reason() -> str | None:
    """Why the "sscd" space cannot run here (its weights are not cached), or None."""
    return None if find_weights() is not None else missing_message()


def prefetch_weights(progress: bool = True) -> Path:
    """Download the SSCD weights into the torch hub cache (needs internet); return the path."""
    return find_weights() or download(URL, FILENAME, progress=progress)


@lru_cache(maxsize=2)
def load_sscd(device: str = "cpu") -> torch.jit.ScriptModule:
    """The SSCD network from the local cache, in eval mode on `device`."""
    path = find_weights()
    if path is None:
        raise FileNotFoundError("SSCD is unavailable: " + missing_message())
    return torch.jit.load(str(path), map_location=device).eval()


@torch.no_grad()
def sscd_features(images_uint8: np.ndarray, *, batch_size: int = 32, progress: bool = False,
                  device: str | None = None) -> np.ndarray:
    """L2-normalised SSCD descriptors (N, 512) of uint8 images (N, H, W, 3)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = load_sscd(device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    out = []
    for i in progress_bar(range(0, len(images_uint8), batch_size), desc="features (sscd)",
                          disable=not progress):
        x = uint8_to_unit(images_uint8[i:i + batch_size]).permute(0, 3, 1, 2).to(device)
        x = torch.nn.functional.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear",
                                            align_corners=False, antialias=True)
        out.append(torch.nn.functional.normalize(model((x - mean) / std), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 512), np.float32)


def describe(device: str, batch_uint8: np.ndarray) -> np.ndarray:
    """SSCD descriptors (B, 512) of one uint8 batch."""
    return sscd_features(batch_uint8, batch_size=max(1, len(batch_uint8)), device=device)


def extractor(device: torch.device) -> Extractor:
    """SSCD as a feature map on `device` (loaded now: a missing file fails before any work)."""
    load_sscd(str(device))
    return Extractor("sscd", None, None, 32, partial(describe, str(device)))


# Somepalli et al.'s threshold for a copy.
SPACE = FeatureSpace("sscd", extractor, threshold=0.5, replication=True, missing=missing_reason)
