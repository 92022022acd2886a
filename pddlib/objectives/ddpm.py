"""What the DDPM objectives share: a diffusers noise schedule over integer timesteps, min-SNR weights.

x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise (Ho et al. 2020), abar from `DDPMScheduler`, whose
own `add_noise` makes x_t. Subclasses say what the UNet predicts (epsilon.py, v_prediction.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from diffusers import DDPMScheduler

from pddlib.flow import shift_times
from pddlib.noise import snr as snr_of
from pddlib.objectives.base import Objective
from pddlib.schedulers import is_flow


@dataclass(frozen=True)
class DDPMObjective(Objective):
    """A DDPM-family objective; `prediction_type` is diffusers' name for what the UNet predicts."""

    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    timestep_shift: float = 1.0  # > 1 draws high-noise timesteps more often
    snr_gamma: float | None = 5.0  # min-SNR-gamma weighting (Hang et al. 2023); None: plain MSE

    prediction_type = "epsilon"  # diffusers' name (a class attribute, not a field)

    @classmethod
    def from_config(cls, config) -> DDPMObjective:
        """The objective of a TrainConfig."""
        return cls(config.num_train_timesteps, config.beta_schedule, config.timestep_shift,
                   config.snr_gamma)

    @classmethod
    def owns(cls, scheduler) -> bool:
        """A DDPM-family scheduler whose prediction_type is this objective's."""
        return not is_flow(scheduler) and scheduler.config.prediction_type == cls.prediction_type

    @classmethod
    def from_scheduler(cls, scheduler) -> DDPMObjective:
        """The objective behind a DDPM-family scheduler (its noise schedule; weights do not matter)."""
        return cls(scheduler.config.num_train_timesteps, scheduler.config.beta_schedule)

    @cached_property
    def scheduler(self) -> DDPMScheduler:
        """The training noise schedule (built once)."""
        return self.noise_scheduler()

    def noise_scheduler(self) -> DDPMScheduler:
        """DDPMScheduler with this schedule; "trailing" spacing only affects sampling (T - 1 first)."""
        return DDPMScheduler(num_train_timesteps=self.num_train_timesteps,
                             beta_schedule=self.beta_schedule,
                             prediction_type=self.prediction_type, timestep_spacing="trailing")

    def draw_times(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n integer timesteps: uniform, or pushed towards noise by SD3's time shift."""
        if self.timestep_shift == 1.0:  # the plain uniform draw, kept so old runs reproduce
            return torch.randint(0, self.num_train_timesteps, (n,), generator=generator)
        u = shift_times(torch.rand(n, generator=generator), self.timestep_shift)
        return (u * self.num_train_timesteps).long().clamp(max=self.num_train_timesteps - 1)

    def alphas_cumprod(self, t: torch.Tensor) -> torch.Tensor:
        """abar at integer timesteps t."""
        return self.scheduler.alphas_cumprod.to(t.device)[t]

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar), sqrt(1 - abar)) at timesteps t."""
        abar = self.alphas_cumprod(t)
        return abar.sqrt(), (1 - abar).sqrt()

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t by diffusers' own add_noise (the same numbers the diffusers schedulers assume)."""
        return self.scheduler.add_noise(x0, noise, t)

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar / (1 - abar) at timesteps t."""
        return snr_of(self.alphas_cumprod(t))

    def sampling_levels(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, alpha, sigma) of `steps` sampling levels ("trailing" spacing) and the clean end."""
        scheduler = self.noise_scheduler()
        scheduler.set_timesteps(steps)
        t = scheduler.timesteps
        alpha, sigma = self.alpha_sigma(t)
        return (torch.cat([t, t.new_tensor([-1])]), torch.cat([alpha, alpha.new_ones(1)]),
                torch.cat([sigma, sigma.new_zeros(1)]))
