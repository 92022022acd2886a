"""v-prediction (Salimans & Ho 2022): the UNet predicts v = sqrt(abar) eps - sqrt(1 - abar) x0."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pddlib.objectives.base import per_sample
from pddlib.objectives.ddpm import DDPMObjective


@dataclass(frozen=True)
class VPrediction(DDPMObjective):
    """Predict v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022); min-SNR weighted."""

    name = "v_prediction"
    prediction_type = "v_prediction"

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """v, by diffusers' own get_velocity."""
        return self.scheduler.get_velocity(x0, noise, t)

    def weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """min(snr, gamma) / (snr + 1): the v error scaled to an x0 error, capped at high SNR."""
        if self.snr_gamma is None:
            return None
        snr = self.snr(t)
        return snr.clamp(max=self.snr_gamma) / (snr + 1)

    def to_x0(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 = sqrt(abar) x_t - sqrt(1 - abar) v: no division, stable at every noise level."""
        alpha, sigma = self.alpha_sigma(t.reshape(-1))
        return per_sample(alpha, x_t) * x_t - per_sample(sigma, x_t) * output
