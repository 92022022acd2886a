"""The forward (noising) process: beta schedules, SNR and closed-form q(x_t | x_0).

Every function is pure and follows diffusers' names and formulas (`DDPMScheduler`), so a
schedule made here and one made by diffusers agree to float precision:

    alphas_cumprod[t] = prod_{s <= t} (1 - betas[s])                    ("alpha-bar")
    x_t = sqrt(alphas_cumprod[t]) * x0 + sqrt(1 - alphas_cumprod[t]) * noise,  noise ~ N(0, I)

Schedules are computed in float64 (the curves are plotted and compared); `add_noise` casts
them to the images' dtype first, exactly as diffusers does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid")
MAX_BETA = 0.999  # diffusers' cap for the cosine schedule: keeps 1 - beta away from 0


def make_betas(
    schedule: str = "linear",
    num_train_timesteps: int = 1000,
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
) -> torch.Tensor:
    """Return the betas (T,) float64 that `DDPMScheduler(beta_schedule=schedule)` uses."""
    if schedule not in SCHEDULES:
        raise ValueError(f"Unknown beta schedule {schedule!r}; choose one of {list(SCHEDULES)}.")
    if num_train_timesteps < 1:
        raise ValueError(f"num_train_timesteps must be >= 1, got {num_train_timesteps}")
    T, f64 = num_train_timesteps, torch.float64
    if schedule == "linear":  # Ho et al. 2020
        return torch.linspace(beta_start, beta_end, T, dtype=f64)
    if schedule == "scaled_linear":  # latent diffusion: linear in sqrt(beta)
        return torch.linspace(beta_start**0.5, beta_end**0.5, T, dtype=f64) ** 2
    if schedule == "sigmoid":  # GeoDiff: slow start and end, fast middle
        return torch.sigmoid(torch.linspace(-6, 6, T, dtype=f64)) * (beta_end - beta_start) + beta_start
    # squaredcos_cap_v2 (Nichol & Dhariwal 2021): alpha-bar follows a squared cosine in t;
    # beta_start and beta_end are ignored, as in diffusers.
    s = torch.arange(T + 1, dtype=f64) / T
    f = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    return (1 - f[1:] / f[:-1]).clamp(max=MAX_BETA)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Rescale betas (T,) so the last step is pure noise (SNR 0), as in Lin et al. 2023, Alg. 1."""
    ab_sqrt = torch.cumprod(1 - betas, dim=0).sqrt()
    first, last = ab_sqrt[0].clone(), ab_sqrt[-1].clone()
    # Shift so sqrt(alpha-bar_T) = 0, then scale so sqrt(alpha-bar_0) is unchanged.
    ab_sqrt = (ab_sqrt - last) * first / (first - last)
    ab = ab_sqrt**2
    return 1 - torch.cat([ab[:1], ab[1:] / ab[:-1]])


def alphas_cumprod(betas: torch.Tensor) -> torch.Tensor:
    """Return alpha-bar (T,): the cumulative product of (1 - betas), same dtype as betas."""
    return torch.cumprod(1 - betas, dim=0)


def snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Signal-to-noise ratio alpha-bar / (1 - alpha-bar), same shape as the input."""
    return alphas_cumprod / (1 - alphas_cumprod)


def log_snr(alphas_cumprod: torch.Tensor) -> torch.Tensor:
    """Natural log of the SNR, computed stably: log(alpha-bar) - log(1 - alpha-bar)."""
    return torch.log(alphas_cumprod) - torch.log1p(-alphas_cumprod)


def _per_sample(values: torch.Tensor, timesteps: torch.Tensor | int, x0: torch.Tensor) -> torch.Tensor:
    """Gather values[timesteps] and shape it (B, 1, ..., 1) to broadcast against x0 (B, ...)."""
    timesteps = torch.as_tensor(timesteps, device=x0.device).long().flatten()
    v = values.to(device=x0.device)[timesteps]
    return v.reshape(-1, *([1] * (x0.ndim - 1)))


def add_noise(
    x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor | int, alphas_cumprod: torch.Tensor
) -> torch.Tensor:
    """Return x_t (B, C, H, W) from x0 and noise (B, C, H, W) at timesteps (B,) or one int.

    The same arithmetic as `DDPMScheduler.add_noise`, so results match it exactly.
    """
    # Cast first, like diffusers, so float32 images get float32 coefficients.
    ab = _per_sample(alphas_cumprod.to(dtype=x0.dtype), timesteps, x0)
    return ab**0.5 * x0 + (1 - ab) ** 0.5 * noise


def q_mean_std(
    x0: torch.Tensor, timesteps: torch.Tensor | int, alphas_cumprod: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (B, C, H, W) and std (B, 1, 1, 1) of the Gaussian q(x_t | x0) at the timesteps."""
    ab = _per_sample(alphas_cumprod.to(dtype=x0.dtype), timesteps, x0)
    return ab**0.5 * x0, (1 - ab) ** 0.5


def q_sample(
    x0: torch.Tensor,
    timesteps: torch.Tensor | int,
    alphas_cumprod: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw x_t ~ q(x_t | x0) in one step; return (x_t, noise), both shaped like x0."""
    # Draw on the generator's device (CPU generators are common), then move to x0's device.
    device = generator.device if generator is not None else x0.device
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype)
    noise = noise.to(x0.device)
    return add_noise(x0, noise, timesteps, alphas_cumprod), noise


def random_timesteps(
    batch_size: int, num_train_timesteps: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One uniform random timestep per image: a LongTensor (batch_size,) in [0, T)."""
    device = generator.device if generator is not None else "cpu"
    return torch.randint(0, num_train_timesteps, (batch_size,), generator=generator, device=device)


def immiscible_order(x0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """The permutation of `noise` that pairs each image with noise nearby (least total distance).

    Immiscible diffusion (Li et al. 2024): within a batch, hand each image the noise sample
    closest to it instead of a random one, so the images a noisy input may come from overlap
    less. The noise stays an exact Gaussian sample; only its pairing with the images changes.
    """
    from scipy.optimize import linear_sum_assignment

    # On the CPU in float64: the assignment runs there anyway, and MPS has no float64.
    cost = torch.cdist(x0.detach().flatten(1).cpu().double(), noise.detach().flatten(1).cpu().double())
    _, columns = linear_sum_assignment(cost.numpy())
    return torch.as_tensor(columns, dtype=torch.long, device=noise.device)


@dataclass(frozen=True)
class NoiseSchedule:
    """A named beta schedule; defaults are DDPMScheduler's (linear, 1000 steps, 1e-4 to 0.02)."""

    beta_schedule: str = "linear"
    num_train_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    rescale_betas_zero_snr: bool = False

    def __post_init__(self) -> None:
        make_betas(self.beta_schedule, self.num_train_timesteps)  # fail early on a bad name

    def betas(self) -> torch.Tensor:
        """Betas (T,) float64."""
        betas = make_betas(self.beta_schedule, self.num_train_timesteps,
                           self.beta_start, self.beta_end)
        return rescale_zero_terminal_snr(betas) if self.rescale_betas_zero_snr else betas

    def alphas_cumprod(self) -> torch.Tensor:
        """Alpha-bar (T,) float64."""
        return alphas_cumprod(self.betas())

    def ddpm_scheduler(self, **kwargs):
        """A diffusers `DDPMScheduler` with this schedule (kwargs are passed on)."""
        from diffusers import DDPMScheduler

        return DDPMScheduler(beta_schedule=self.beta_schedule,
                             num_train_timesteps=self.num_train_timesteps,
                             beta_start=self.beta_start, beta_end=self.beta_end,
                             rescale_betas_zero_snr=self.rescale_betas_zero_snr, **kwargs)
