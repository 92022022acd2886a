"""Flow matching (rectified flow): the UNet predicts the velocity noise - x0 along a straight path."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import FlowMatchEulerDiscreteScheduler

from pddlib import flow
from pddlib.objectives.base import Objective, per_sample
from pddlib.schedulers import is_flow


@dataclass(frozen=True)
class FlowMatching(Objective):
    """Predict the velocity noise - x0 on the straight path x_t = (1 - t) x0 + t noise, unweighted."""

    timestep_shift: float = 1.0  # SD3's shift of the training times and the sampler's levels

    name = "flow"
    config_defaults = {"snr_gamma": None}  # noqa: RUF012 (a class-level constant)

    @classmethod
    def from_config(cls, config) -> FlowMatching:
        """The objective of a TrainConfig; min-SNR weights and other timestep counts are refused."""
        if config.snr_gamma is not None:
            raise ValueError("Flow matching weights every time alike: set snr_gamma=None "
                             "(min-SNR weighting is for the DDPM objectives).")
        if config.num_train_timesteps != flow.TIME_SCALE:
            raise ValueError(f"Flow matching calls the UNet at timestep {flow.TIME_SCALE} t: keep "
                             f"num_train_timesteps={flow.TIME_SCALE}.")
        return cls(config.timestep_shift)

    @classmethod
    def owns(cls, scheduler) -> bool:
        """diffusers' flow-matching family."""
        return is_flow(scheduler)

    @classmethod
    def from_scheduler(cls, scheduler) -> FlowMatching:
        """The objective behind a FlowMatchEulerDiscreteScheduler."""
        return cls(scheduler.config.shift)

    def noise_scheduler(self) -> FlowMatchEulerDiscreteScheduler:
        """diffusers' flow-matching Euler scheduler with this shift."""
        return FlowMatchEulerDiscreteScheduler(num_train_timesteps=flow.TIME_SCALE,
                                               shift=self.timestep_shift)

    def draw_times(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n shifted logit-normal times in (0, 1): most of them mid-path."""
        return flow.shift_times(flow.logit_normal_times(n, generator), self.timestep_shift)

    def unet_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The UNet sees timestep TIME_SCALE t, as diffusers' flow schedulers call it."""
        return flow.TIME_SCALE * t

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(1 - t, t): the straight path."""
        return 1 - t, t

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t on the straight path (pddlib.flow.interpolate)."""
        return flow.interpolate(x0, noise, t)

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The velocity noise - x0, the same at every t."""
        return flow.velocity(x0, noise)

    def to_x0(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 = x_t - t v: walk the rest of the straight line back to t = 0."""
        return x_t - per_sample(t.reshape(-1), x_t) * output

    def sampling_levels(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, alpha, sigma) of `steps` levels spaced as diffusers spaces them, and the clean end."""
        t = flow.sigmas(steps, self.timestep_shift)
        return t, 1 - t, t
