"""Image <-> tensor transforms: PIL RGB images to normalised (N, 3, S, S) tensors and back, and grids.

`to_uint8` lives in pddlib.pixels (all pixel-range conversions do) and is re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["as_pil_list", "as_uint8", "pil_grid", "resize_square", "to_pil", "to_tensor",
           "to_uint8"]

import numpy as np
import torch
from PIL import Image

from pddlib.pixels import to_model, to_uint8


def resize_square(image: Image.Image, size: int) -> Image.Image:
    """Return `image` as RGB, padded to a square on white and resized to (size, size)."""
    image = image.convert("RGB")
    w, h = image.size
    if w != h:
        side = max(w, h)
        canvas = Image.new("RGB", (side, side), (255, 255, 255))
        canvas.paste(image, ((side - w) // 2, (side - h) // 2))
        image = canvas
    if image.size != (size, size):
        # BICUBIC in PIL widens its kernel when shrinking, so downscaling is antialiased.
        image = image.resize((size, size), Image.Resampling.BICUBIC)
    return image


def to_tensor(images: Iterable[Image.Image], size: int) -> torch.Tensor:
    """Stack PIL images into a float32 tensor (N, 3, size, size) scaled to [-1, 1]."""
    arrays = [np.asarray(resize_square(im, size), dtype=np.uint8) for im in images]
    if not arrays:
        return torch.empty(0, 3, size, size)
    return to_model(np.stack(arrays))


def to_pil(x: torch.Tensor) -> list[Image.Image]:
    """Convert a tensor (N, 3, H, W) in [-1, 1] to a list of PIL RGB images."""
    return [Image.fromarray(a) for a in to_uint8(x)]


def as_uint8(images, size: int | None = None) -> np.ndarray:
    """Any image collection -> uint8 array (N, S, S, 3); resized (square-padded on white) if size."""
    if hasattr(images, "column_names") and "image" in getattr(images, "column_names", ()):
        images = images["image"]  # a datasets.Dataset: its PIL images
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"image arrays must be uint8 (N, H, W, 3), got {images.dtype} "
                             f"{images.shape}; convert with pddlib.data.to_uint8.")
        if size is None or images.shape[1:3] == (size, size):
            return images
        images = [Image.fromarray(a) for a in images]
    if not isinstance(images, Sequence) or not all(isinstance(im, Image.Image) for im in images):
        raise ValueError("images must be a dataset with an 'image' column, a list of PIL images, "
                         "or a uint8 array/tensor (N, H, W, 3)")
    if size is None:
        sizes = {im.size for im in images}
        if len(sizes) > 1:
            raise ValueError(f"images have different sizes {sorted(sizes)[:3]}...: pass size=")
        size = max(next(iter(sizes))) if sizes else 1
    if not images:
        return np.zeros((0, size, size, 3), np.uint8)
    return np.stack([np.asarray(resize_square(im, size), dtype=np.uint8) for im in images])


def as_pil_list(images: torch.Tensor | Sequence[Image.Image]) -> list[Image.Image]:
    """A list of PIL RGB images from PIL images or a tensor (N, 3, H, W) in [-1, 1]."""
    if isinstance(images, torch.Tensor):
        return to_pil(images)
    return [im.convert("RGB") for im in images]


def pil_grid(images: torch.Tensor | Sequence[Image.Image], nrow: int | None = None,
             pad: int = 2) -> Image.Image:
    """One PIL image tiling equal-sized images, `nrow` per row, on white with `pad` px gaps."""
    ims = as_pil_list(images)
    nrow = nrow or math.ceil(math.sqrt(len(ims)))
    w, h = ims[0].size
    rows = math.ceil(len(ims) / nrow)
    grid = Image.new("RGB", (nrow * (w + pad) - pad, rows * (h + pad) - pad), (255, 255, 255))
    for i, im in enumerate(ims):
        grid.paste(im, ((i % nrow) * (w + pad), (i // nrow) * (h + pad)))
    return grid
