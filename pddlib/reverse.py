"""The reverse process by hand: one denoising step as a pure function, named after its paper.

Every step here takes the current x, the model's estimate of the clean image x0 (what any
objective's output becomes through `Objective.to_x0`, pddlib.objectives) and two noise levels:
x_t = alpha x0 + sigma eps now, and (alpha_next, sigma_next) after the step. For DDPM's
variance-preserving path alpha = sqrt(abar), sigma = sqrt(1 - abar); for flow matching's straight
path alpha = 1 - t, sigma = t. So one step works for every objective, as k-diffusion's samplers
work for every model through its denoiser. The functions read nothing but their arguments.
"""

from __future__ import annotations

import torch

Level = float | torch.Tensor


def eps_from_x0(x: torch.Tensor, x0: torch.Tensor, alpha: Level, sigma: Level) -> torch.Tensor:
    """The noise estimate that goes with x0: eps = (x - alpha x0) / sigma."""
    return (x - alpha * x0) / sigma


def ddim_step(x: torch.Tensor, x0: torch.Tensor, alpha: Level, sigma: Level, alpha_next: Level,
              sigma_next: Level, clip: bool = False) -> torch.Tensor:
    """DDIM (Song et al. 2021, eta = 0): put the same noise estimate back at the lower level.

    x_next = alpha_next x0 + sigma_next eps. Deterministic. It is also the Euler step of the
    probability-flow ODE in the variable x / alpha (Karras et al. 2022), and for flow matching
    exactly the Euler step x + (t_next - t) v. clip keeps x0 in the pixel range [-1, 1] and the
    noise estimate of the unclipped x0, as diffusers' clip_sample does (never clip latents).
    """
    eps = eps_from_x0(x, x0, alpha, sigma)
    return alpha_next * (x0.clamp(-1, 1) if clip else x0) + sigma_next * eps


def ddpm_step(x: torch.Tensor, x0: torch.Tensor, alpha: Level, sigma: Level, alpha_next: Level,
              sigma_next: Level, noise: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """DDPM ancestral step (Ho et al. 2020): a draw from q(x_next | x, x0 = the estimate).

    The forward process from the next level to this one scales by a = alpha / alpha_next and adds
    noise of variance b = sigma^2 - a^2 sigma_next^2. Given x0, the earlier point is Gaussian with
    mean (a sigma_next^2 x + alpha_next b x0) / sigma^2 and variance b sigma_next^2 / sigma^2.
    `noise` is the fresh standard normal draw of this step; clip keeps x0 in [-1, 1] (pixels).
    """
    x0 = x0.clamp(-1, 1) if clip else x0
    a = alpha / alpha_next
    b = sigma ** 2 - a ** 2 * sigma_next ** 2
    mean = (a * sigma_next ** 2 * x + alpha_next * b * x0) / sigma ** 2
    variance = b * sigma_next ** 2 / sigma ** 2
    return mean + variance ** 0.5 * noise


def sigma_of(abar: float) -> float:
    """The noise level of the variance-exploding view (Karras et al. 2022): sqrt((1 - abar) / abar)."""
    return ((1 - abar) / abar) ** 0.5


def from_ve(x: torch.Tensor, sigma: Level) -> torch.Tensor:
    """x0 + sigma eps (what Euler-type diffusers schedulers carry) as the unit-variance x_t."""
    return x / (sigma ** 2 + 1) ** 0.5


def euler_step(x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """Euler step of the probability-flow ODE (Karras et al. 2022) in the sigma parameterisation.

    Here x = x0 + sigma eps, as diffusers' Euler-type schedulers carry it: the ODE's slope is
    (x - x0) / sigma, and the step moves along it from sigma to sigma_next. In x_t = x /
    sqrt(sigma^2 + 1) (`from_ve`) it is the DDIM step.
    """
    return x + (x - x0) / sigma * (sigma_next - sigma)
