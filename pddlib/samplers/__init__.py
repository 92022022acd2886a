"""pddlib's own samplers by name (k-diffusion style): loops over noise levels that ask a denoiser for x0.

Each sampler is one module with `sample(denoise, x, alphas, sigmas, *, generator, callback)`:
`denoise(x, i)` returns the clean-image estimate at level i (the pipeline builds it from the
UNet, guidance and the model's objective), levels i are x = alphas[i] x0 + sigmas[i] noise, the
last one clean. So every sampler works for every objective. Like k-diffusion's, they never clip
x0 (diffusers' DDPM and DDIM clip a pixel model's). A new sampler is one file here and
one line in SAMPLERS; the diffusers schedulers keep their names in pddlib.schedulers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from pddlib.samplers import ddim, ddpm

Denoiser = Callable[[torch.Tensor, int], torch.Tensor]  # (x at level i, i) -> x0 estimate
# After step i: (i, the new x, the x0 estimate it stepped with) -> the x to continue from.
StepCallback = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]

SAMPLERS: dict[str, Callable[..., torch.Tensor]] = {
    "pd-ddim": ddim.sample,
    "pd-ddpm": ddpm.sample,
}
