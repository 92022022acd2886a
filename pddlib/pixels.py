"""Pixel ranges, converted in one place.

Three ranges meet in this course: models denoise (N, 3, H, W) floats in [-1, 1] ("model"),
pipelines return floats in [0, 1] ("unit", diffusers' convention), and images on disk, judges
and metrics use uint8 (N, H, W, 3) arrays ("uint8").
"""

from __future__ import annotations

import numpy as np
import torch


def to_model(images_uint8: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [-1, 1]."""
    x = torch.as_tensor(np.ascontiguousarray(images_uint8))
    return x.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Float (N, 3, H, W) in [-1, 1] -> uint8 array (N, H, W, 3), rounded and clipped."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round()
    return x.to(torch.uint8).permute(0, 2, 3, 1).numpy()


def model_to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clipped (what a pipeline returns)."""
    return (x / 2 + 0.5).clamp(0, 1)


def unit_to_model(x: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1]."""
    return x * 2 - 1


def unit_to_uint8(x: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] -> uint8, rounded (layout unchanged)."""
    return np.round(np.clip(np.asarray(x), 0, 1) * 255).astype(np.uint8)


def uint8_to_unit(x: np.ndarray | torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 -> floats in [0, 1] (layout unchanged; float64 keeps exact copies at distance 0)."""
    return torch.as_tensor(np.ascontiguousarray(x)).to(dtype) / 255.0
