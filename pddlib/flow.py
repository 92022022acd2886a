"""Flow matching (rectified flow): the straight path from an image to noise, and its velocity.

Conventions as diffusers' FlowMatchEulerDiscreteScheduler and Stable Diffusion 3: time t in
[0, 1] is the noise level, t = 0 the data, t = 1 pure noise, and the network is called at
timestep `TIME_SCALE * t`. Pure functions of tensors and explicit generators, like
k-diffusion's sampling.py.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import torch

TIME_SCALE = 1000  # the UNet is called at timestep TIME_SCALE * t (diffusers' num_train_timesteps)
Velocity = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t, t of shape (N,)) -> v


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise: the straight path, one t per image."""
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def velocity(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """d x_t / dt along the straight path: noise - x0, the same at every t."""
    return noise - x0


def logit_normal_times(n: int, generator: torch.Generator, mean: float = 0.0,
                       std: float = 1.0) -> torch.Tensor:
    """n training times sigmoid(N(mean, std^2)): most of them mid-path (SD3's default density)."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def shift_times(t: torch.Tensor, shift: float) -> torch.Tensor:
    """SD3's time shift s t / (1 + (s - 1) t): s > 1 moves times towards noise, keeping 0 and 1."""
    return shift * t / (1 + (shift - 1) * t)


def from_ddpm(alpha_bar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(t, scale) with DDPM's x_t = scale * the flow's x at t: the same point, rescaled.

    sqrt(abar) x0 + sqrt(1 - abar) eps = (sqrt(abar) + sqrt(1 - abar)) ((1 - t) x0 + t eps)
    for t = sqrt(1 - abar) / (sqrt(abar) + sqrt(1 - abar)).
    """
    a, b = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    return b / (a + b), a + b


def sigmas(steps: int, shift: float = 1.0) -> torch.Tensor:
    """The steps + 1 noise levels of an Euler sampler, 1 down to 0, as diffusers spaces them."""
    # diffusers spaces between the ends of its (already shifted) training levels, then shifts
    # again: the smallest non-zero level is shift(shift(1/1000)).
    lowest = shift_times(torch.tensor(1.0 / TIME_SCALE), shift)
    t = torch.linspace(1.0, float(lowest), steps)
    return torch.cat([shift_times(t, shift), torch.zeros(1)])


def euler(v: Velocity, noise: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Integrate dx/dt = v(x, t) from levels[0] down to levels[-1], one Euler step per gap."""
    x = noise
    for t, t_next in pairwise(levels):
        x = x + (t_next - t) * v(x, t.expand(len(x)))
    return x
