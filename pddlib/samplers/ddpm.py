"""The ancestral DDPM sampler (pddlib.reverse.ddpm_step, fresh noise at every step but the last)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from diffusers.utils.torch_utils import randn_tensor

from pddlib.reverse import ddpm_step


def sample(denoise: Callable[[torch.Tensor, int], torch.Tensor], x: torch.Tensor,
           alphas: torch.Tensor, sigmas: torch.Tensor, *, generator=None,
           callback: Callable | None = None) -> torch.Tensor:
    """Walk x from level 0 to the last (clean) level, drawing from the posterior at each step."""
    for i in range(len(alphas) - 1):
        x0 = denoise(x, i)
        # Drawn as diffusers draws (CPU generators stay reproducible on every device).
        noise = (randn_tensor(x.shape, generator=generator, device=x.device, dtype=x.dtype)
                 if sigmas[i + 1] > 0 else torch.zeros_like(x))
        x = ddpm_step(x, x0, alphas[i], sigmas[i], alphas[i + 1], sigmas[i + 1], noise)
        if callback is not None:
            x = callback(i, x, x0)
    return x
