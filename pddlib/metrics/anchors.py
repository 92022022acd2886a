"""Sanity anchors for a quality score: images known to be bad, to read a number against.

A score means little alone. Held-out real images against training images give its floor (the
best any model could do at that sample size); blurred real images and pure noise give ceilings.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageFilter

from pddlib.metrics.features import as_uint8


def blurred(images, radius: float = 2.0, size: int | None = None) -> np.ndarray:
    """Gaussian-blurred copies (uint8 (N, S, S, 3)) of an image collection, blurred at `size` px."""
    arr = as_uint8(images, size=size)
    return np.stack([np.asarray(Image.fromarray(a).filter(ImageFilter.GaussianBlur(radius)))
                     for a in arr]) if len(arr) else arr


def noise_images(n: int, size: int, generator: torch.Generator | None = None) -> np.ndarray:
    """n images of uniform random pixels, uint8 (n, size, size, 3)."""
    x = torch.randint(0, 256, (n, size, size, 3), generator=generator, dtype=torch.uint8)
    return x.numpy()
