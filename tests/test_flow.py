"""Flow matching's path, velocity, loss and Euler sampler, checked against DDPM and diffusers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from diffusers import FlowMatchEulerDiscreteScheduler

from pddlib import flow, noise
from pddlib.models import TINY, TINY_LATENT, build_unet
from pddlib.objectives.flow_matching import FlowMatching
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.pixels import model_to_unit


def draws(seed: int = 0, n: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 8, 8, generator=g), torch.randn(n, 4, 8, 8, generator=g)


def test_the_path_runs_straight_from_the_image_to_the_noise_at_the_velocity() -> None:
    x0, eps = draws()
    assert torch.equal(flow.interpolate(x0, eps, torch.zeros(3)), x0)
    assert torch.equal(flow.interpolate(x0, eps, torch.ones(3)), eps)
    t, h = torch.tensor([0.2, 0.5, 0.9]), 1e-3
    slope = (flow.interpolate(x0, eps, t + h) - flow.interpolate(x0, eps, t)) / h
    assert torch.allclose(slope, flow.velocity(x0, eps), atol=1e-2)


def test_the_ddpm_forward_process_is_the_same_path_after_a_time_change() -> None:
    x0, eps = draws()
    abar = noise.alphas_cumprod(noise.make_betas("squaredcos_cap_v2", 1000))[[10, 500, 990]]
    ddpm = abar.sqrt().view(-1, 1, 1, 1) * x0 + (1 - abar).sqrt().view(-1, 1, 1, 1) * eps
    t, scale = flow.from_ddpm(abar)
    assert torch.allclose(ddpm, scale.view(-1, 1, 1, 1) * flow.interpolate(x0, eps, t), atol=1e-5)
    assert t[0] < 0.1 and t[-1] > 0.9  # little noise stays early on the path, much stays late


def test_training_times_are_seeded_inside_the_unit_interval_and_shifted_towards_noise() -> None:
    t = flow.logit_normal_times(4096, torch.Generator().manual_seed(0))
    assert torch.equal(t, flow.logit_normal_times(4096, torch.Generator().manual_seed(0)))
    assert 0 < t.min() and t.max() < 1 and abs(t.median() - 0.5) < 0.03
    shifted = flow.shift_times(t, 3.0)
    assert (shifted >= t).all() and abs(shifted.median() - 0.75) < 0.03  # 3 * .5 / (1 + 2 * .5)
    assert flow.shift_times(torch.tensor([0.0, 1.0]), 3.0).tolist() == [0.0, 1.0]


def test_the_loss_is_the_mse_to_the_velocity_at_timestep_1000_t() -> None:
    unet = build_unet(TINY_LATENT, ["a", "b"], seed=0)
    x0, eps = draws()
    t, labels = torch.tensor([0.1, 0.5, 0.9]), torch.tensor([0, 1, 2])
    by_hand = F.mse_loss(unet((1 - t.view(-1, 1, 1, 1)) * x0 + t.view(-1, 1, 1, 1) * eps,
                              1000 * t, class_labels=labels).sample, eps - x0)
    assert torch.allclose(FlowMatching()(unet, x0, eps, t, labels), by_hand)


@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_the_hand_written_euler_loop_is_diffusers_flow_match_euler(shift: float) -> None:
    unet = build_unet(TINY_LATENT, seed=0).eval()
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=shift)
    scheduler.set_timesteps(5)
    assert torch.allclose(flow.sigmas(5, shift), scheduler.sigmas, atol=1e-6)

    def v(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return unet(x, 1000 * t).sample

    start, _ = draws(1)
    with torch.no_grad():
        ours = flow.euler(v, start, flow.sigmas(5, shift))
        x = start
        for t in scheduler.timesteps:
            x = scheduler.step(unet(x, t).sample, t, x).prev_sample
    assert torch.allclose(ours, x, atol=1e-5)


def test_the_pipeline_samples_a_flow_model_as_the_hand_written_loop_does() -> None:
    unet = build_unet(TINY, ["a", "b"], seed=0).eval()
    pipe = PDDiffusionPipeline(unet, FlowMatchEulerDiscreteScheduler(shift=3.0)).with_scheduler("euler")
    start = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    got = pipe(2, class_labels=["a", "b"], num_inference_steps=4, latents=start,
               output_type="pt").images
    labels = torch.tensor([0, 1])
    with torch.no_grad():
        ours = flow.euler(lambda x, t: unet(x, 1000 * t, class_labels=labels).sample, start,
                          flow.sigmas(4, 3.0))
    assert torch.allclose(got, model_to_unit(ours), atol=1e-5)


def test_a_flow_model_samples_only_with_its_own_family() -> None:
    pipe = PDDiffusionPipeline(build_unet(TINY, seed=0), FlowMatchEulerDiscreteScheduler())
    assert pipe.with_scheduler("euler-a").scheduler.config.stochastic_sampling is True
    assert pipe.with_scheduler("euler").scheduler.config.stochastic_sampling is False
    with pytest.raises(ValueError, match=r"trained with flow matching: sample it with one of "
                                         r"\['euler', 'euler-a'\], not 'ddim'"):
        pipe.with_scheduler("ddim")
    one = pipe.with_scheduler("euler-a")(1, num_inference_steps=3,
                                         generator=torch.Generator().manual_seed(0)).images
    again = pipe.with_scheduler("euler-a")(1, num_inference_steps=3,
                                           generator=torch.Generator().manual_seed(0)).images
    assert np.array_equal(np.asarray(one[0]), np.asarray(again[0]))
