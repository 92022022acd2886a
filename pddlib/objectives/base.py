"""What every training objective is: a path from x0 to noise, what the UNet predicts on it, a weight.

One small class per objective, as EDM's `training/loss.py` has: each owns its checks, its noise
schedule, its time draw, its target and weight, and the adapter `to_x0` that turns the UNet's
output back into a clean-image estimate, which is all a sampler needs (k-diffusion's denoiser).
On the path, x_t = alpha(t) x0 + sigma(t) noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F


def per_sample(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """values (N,) shaped (N, 1, 1, 1) to broadcast against images like `like`."""
    return values.to(like.device, like.dtype).view(-1, *([1] * (like.dim() - 1)))


@dataclass(frozen=True)
class Objective:
    """A training objective: subclasses fill in the path, the target, the weight and to_x0."""

    name: ClassVar[str]  # the registry key, saved as TrainConfig.prediction_type (the docstring's
    # first line is what the model card says of it)
    # Config fields a user gets with this objective unless they set them (the CLI applies them).
    config_defaults: ClassVar[dict] = {}

    @classmethod
    def from_config(cls, config) -> Objective:
        """The objective a TrainConfig asks for; raises ValueError naming the fix if it cannot."""
        raise NotImplementedError

    @classmethod
    def owns(cls, scheduler) -> bool:
        """Whether a model sampled with this diffusers scheduler was trained with this objective."""
        raise NotImplementedError

    @classmethod
    def from_scheduler(cls, scheduler) -> Objective:
        """The objective a saved model was trained with, from its (training) scheduler's config."""
        raise NotImplementedError

    def noise_scheduler(self):
        """The diffusers scheduler of the training noise; samplers are built from its config."""
        raise NotImplementedError

    def draw_times(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n training times (N,) drawn from `generator`, in this objective's units."""
        raise NotImplementedError

    def unet_timestep(self, t: torch.Tensor) -> torch.Tensor:
        """The timestep the UNet is called with at time t."""
        return t

    def alpha_sigma(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(alpha, sigma) of x_t = alpha x0 + sigma noise at times t."""
        raise NotImplementedError

    def noised(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t: the images x0 moved along the path to times t (one per image)."""
        alpha, sigma = self.alpha_sigma(t)
        return per_sample(alpha, x0) * x0 + per_sample(sigma, x0) * noise

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """What the UNet learns to output at x_t."""
        raise NotImplementedError

    def weight(self, t: torch.Tensor) -> torch.Tensor | None:
        """Per-sample loss weights at times t, or None for plain MSE."""
        return None

    def to_x0(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The clean-image estimate from the UNet's output at x_t: what a sampler steps with."""
        raise NotImplementedError

    def sampling_levels(self, steps: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(t, alpha, sigma), each (steps + 1,): the levels a sampler visits, ending clean (0, 1, 0)."""
        raise NotImplementedError

    def __call__(self, unet: torch.nn.Module, x0: torch.Tensor, noise: torch.Tensor,
                 t: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        """The weighted MSE between the UNet's output at x_t and the target; a scalar."""
        pred = unet(self.noised(x0, noise, t), self.unet_timestep(t),
                    class_labels=class_labels).sample
        target = self.target(x0, noise, t)
        mse = F.mse_loss(pred.float(), target.float(), reduction="none").mean(dim=(1, 2, 3))
        weight = self.weight(t)
        return mse.mean() if weight is None else (weight.to(mse.device) * mse).mean()
