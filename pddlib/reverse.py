"""The reverse process by hand: one denoising step as a pure function, named after its paper.

The course model predicts v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022). From
x_t and v both the clean image and the noise follow in closed form, and every sampler is a rule
for going from x_t to a less noisy x_prev with them. `abar` is alpha-bar, the fraction of
signal variance left at a timestep (`scheduler.alphas_cumprod[t]`). Tensors are (N, C, H, W);
the functions read nothing but their arguments (k-diffusion's sampling.py is the model).
"""

from __future__ import annotations

import torch


def x0_from_v(x_t: torch.Tensor, v: torch.Tensor, abar: torch.Tensor | float) -> torch.Tensor:
    """The clean-image estimate: x0 = sqrt(abar) x_t - sqrt(1 - abar) v."""
    abar = torch.as_tensor(abar, dtype=x_t.dtype)
    return abar.sqrt() * x_t - (1 - abar).sqrt() * v


def eps_from_v(x_t: torch.Tensor, v: torch.Tensor, abar: torch.Tensor | float) -> torch.Tensor:
    """The noise estimate: eps = sqrt(1 - abar) x_t + sqrt(abar) v."""
    abar = torch.as_tensor(abar, dtype=x_t.dtype)
    return (1 - abar).sqrt() * x_t + abar.sqrt() * v


def ddim_step(x_t: torch.Tensor, v: torch.Tensor, abar: float, abar_prev: float,
              clip: bool = True) -> torch.Tensor:
    """DDIM (Song et al. 2021, eta = 0): x_prev = sqrt(abar_prev) x0 + sqrt(1 - abar_prev) eps.

    Deterministic: the same noise estimate is put back at the lower noise level. clip keeps the
    x0 estimate in the image range [-1, 1], as diffusers' clip_sample does.
    """
    x0, eps = x0_from_v(x_t, v, abar), eps_from_v(x_t, v, abar)
    if clip:
        x0 = x0.clamp(-1, 1)
    return abar_prev ** 0.5 * x0 + (1 - abar_prev) ** 0.5 * eps


def ddpm_step(x_t: torch.Tensor, v: torch.Tensor, abar: float, abar_prev: float,
              noise: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """DDPM ancestral step (Ho et al. 2020): a draw from q(x_prev | x_t, x0 = the estimate).

    The posterior of the forward process given x0 is Gaussian, with mean
    sqrt(abar_prev) beta / (1 - abar) x0 + sqrt(alpha) (1 - abar_prev) / (1 - abar) x_t and
    variance (1 - abar_prev) / (1 - abar) beta, where alpha = abar / abar_prev, beta = 1 - alpha.
    `noise` is the fresh standard normal draw of this step.
    """
    x0 = x0_from_v(x_t, v, abar)
    if clip:
        x0 = x0.clamp(-1, 1)
    alpha = abar / abar_prev
    beta = 1 - alpha
    mean = (abar_prev ** 0.5 * beta / (1 - abar)) * x0 + (
        alpha ** 0.5 * (1 - abar_prev) / (1 - abar)) * x_t
    variance = max((1 - abar_prev) / (1 - abar) * beta, 1e-20)
    return mean + variance ** 0.5 * noise


def sigma_of(abar: float) -> float:
    """The noise level of the variance-exploding view (Karras et al. 2022): sqrt((1 - abar) / abar)."""
    return ((1 - abar) / abar) ** 0.5


def euler_step(x: torch.Tensor, v: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """Euler step of the probability-flow ODE (Karras et al. 2022) in the sigma parameterisation.

    Here x = x0 + sigma * eps (what Euler-type diffusers schedulers carry); the UNet saw
    x / sqrt(sigma^2 + 1) and predicted v. The denoised estimate is
    x0 = x / (sigma^2 + 1) - sigma v / sqrt(sigma^2 + 1); the ODE's slope is (x - x0) / sigma,
    and the step moves along it from sigma to sigma_next.
    """
    denoised = x / (sigma ** 2 + 1) - sigma * v / (sigma ** 2 + 1) ** 0.5
    return x + (x - denoised) / sigma * (sigma_next - sigma)
