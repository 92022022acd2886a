"""Noise prediction (Ho et al. 2020): the UNet guesses the noise that was added."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pddlib.objectives.base import per_sample
from pddlib.objectives.ddpm import DDPMObjective


@dataclass(frozen=True)
class Epsilon(DDPMObjective):
    """Predict the noise that was added (Ho et al. 2020); min-SNR weights min(snr, gamma) / snr."""

    name = "epsilon"
    prediction_type = "epsilon"

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The noise itself."""
        return noise

    def weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """min(snr, gamma) / snr: the eps error scaled to an x0 error, capped at high SNR."""
        if self.snr_gamma is None:
            return None
        snr = self.snr(t)
        return snr.clamp(max=self.snr_gamma) / snr

    def to_x0(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar): divides by sqrt(abar), tiny at high noise."""
        alpha, sigma = self.alpha_sigma(t.reshape(-1))
        return (x_t - per_sample(sigma, x_t) * output) / per_sample(alpha, x_t)
