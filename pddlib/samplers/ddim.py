"""The deterministic DDIM sampler (pddlib.reverse.ddim_step at every level)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pddlib.reverse import ddim_step


def sample(denoise: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor,
           alphas: torch.Tensor, sigmas: torch.Tensor, *, generator=None,
           callback: Callable | None = None) -> torch.Tensor:
    """Walk x from level 0 to the last (clean) level; the same noise estimate at every step."""
    for i in range(len(alphas) - 1):
        x0 = denoise(x, i)
        x = ddim_step(x, x0, alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1])
        if callback is not None:
            x = callback(i, x, x0)
    return x
