"""The reverse step written out (pddlib.reverse) equals what the diffusers schedulers compute."""

from __future__ import annotations

import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from pddlib import reverse
from pddlib.models import TINY, build_unet
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.training import noise_scheduler
from pddlib.recipes import TrainConfig

STEPS = 5


@pytest.fixture(scope="module")
def pipe() -> PDDiffusionPipeline:
    p = PDDiffusionPipeline(build_unet(TINY, ["a", "b"], seed=0).eval(), noise_scheduler(TrainConfig()))
    p.set_progress_bar_config(disable=True)
    return p


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 16, 16, generator=g)


def test_x0_and_eps_invert_the_forward_process() -> None:
    x0, eps = inputs()
    abar = torch.tensor(0.3)
    x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * eps
    v = abar.sqrt() * eps - (1 - abar).sqrt() * x0
    torch.testing.assert_close(reverse.x0_from_v(x_t, v, abar), x0)
    torch.testing.assert_close(reverse.eps_from_v(x_t, v, abar), eps)


def test_ddim_step_equals_diffusers(pipe) -> None:
    sched = pipe.with_scheduler("ddim").scheduler
    sched.set_timesteps(STEPS)
    abar = sched.alphas_cumprod
    x, v = inputs()
    for i, t in enumerate(sched.timesteps):
        prev = int(t) - sched.config.num_train_timesteps // STEPS
        abar_prev = float(abar[prev]) if prev >= 0 else 1.0
        expected = sched.step(v, t, x).prev_sample
        got = reverse.ddim_step(x, v, float(abar[t]), abar_prev)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_ddpm_step_equals_diffusers_given_the_same_noise(pipe) -> None:
    sched = pipe.with_scheduler("ddpm").scheduler
    sched.set_timesteps(STEPS)
    abar, ts = sched.alphas_cumprod, sched.timesteps
    x, v = inputs(1)
    for i, t in enumerate(ts[:-1]):  # the last step adds no noise
        expected = sched.step(v, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        noise = randn_tensor(v.shape, generator=torch.Generator().manual_seed(i))
        got = reverse.ddpm_step(x, v, float(abar[t]), float(abar[ts[i + 1]]), noise)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_euler_step_equals_diffusers(pipe) -> None:
    sched = pipe.with_scheduler("euler").scheduler
    sched.set_timesteps(STEPS)
    x, v = inputs(2)
    x = x * sched.init_noise_sigma
    for i, t in enumerate(sched.timesteps):
        sigma, sigma_next = float(sched.sigmas[i]), float(sched.sigmas[i + 1])
        assert sigma == pytest.approx(reverse.sigma_of(float(sched.alphas_cumprod[int(t)])),
                                      rel=1e-4)
        expected = sched.step(v, t, x).prev_sample
        torch.testing.assert_close(reverse.euler_step(x, v, sigma, sigma_next), expected,
                                   atol=1e-4, rtol=1e-4)
        x = expected


def test_a_whole_ddim_loop_by_hand_reproduces_the_pipeline(pipe) -> None:
    ddim = pipe.with_scheduler("ddim")
    start = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1])
    expected = ddim(2, class_labels=[0, 1], num_inference_steps=STEPS, latents=start,
                    output_type="pt").images
    sched, unet = ddim.scheduler, ddim.unet
    sched.set_timesteps(STEPS)
    x = start
    with torch.no_grad():
        for t in sched.timesteps:
            v = unet(x, t, class_labels=labels).sample
            prev = int(t) - sched.config.num_train_timesteps // STEPS
            x = reverse.ddim_step(x, v, float(sched.alphas_cumprod[t]),
                                  float(sched.alphas_cumprod[prev]) if prev >= 0 else 1.0)
    torch.testing.assert_close((x / 2 + 0.5).clamp(0, 1), expected, atol=1e-4, rtol=1e-4)
