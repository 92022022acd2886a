"""The reverse step written out (pddlib.reverse) and pddlib's samplers equal what diffusers computes."""

from __future__ import annotations

import pytest
import torch
from diffusers.utils.torch_utils import randn_tensor

from pddlib import reverse
from pddlib.models import TINY, build_unet
from pddlib.objectives import OBJECTIVES, objective_for
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import TrainConfig
from pddlib.samplers import SAMPLERS

STEPS = 5


def tiny_pipe(objective: str = "v_prediction") -> PDDiffusionPipeline:
    config = TrainConfig(prediction_type=objective, **OBJECTIVES[objective].config_defaults)
    p = PDDiffusionPipeline(build_unet(TINY, ["a", "b"], seed=0).eval(),
                            objective_for(config).noise_scheduler())
    p.set_progress_bar_config(disable=True)
    return p


@pytest.fixture(scope="module")
def pipe() -> PDDiffusionPipeline:
    return tiny_pipe()


def inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 16, 16, generator=g), torch.randn(2, 3, 16, 16, generator=g)


def levels(sched, i: int, t) -> tuple[float, float, float, float]:
    """(alpha, sigma, alpha_next, sigma_next) of DDIM's step i: sqrt(abar) and sqrt(1 - abar)."""
    prev = int(t) - sched.config.num_train_timesteps // STEPS
    abar, abar_next = float(sched.alphas_cumprod[t]), (
        float(sched.alphas_cumprod[prev]) if prev >= 0 else 1.0)
    return abar ** 0.5, (1 - abar) ** 0.5, abar_next ** 0.5, (1 - abar_next) ** 0.5


def test_ddim_step_equals_diffusers(pipe) -> None:
    sched = pipe.with_scheduler("ddim").scheduler
    sched.set_timesteps(STEPS)
    objective = objective_for(TrainConfig())
    x, v = inputs()
    for i, t in enumerate(sched.timesteps):
        expected = sched.step(v, t, x).prev_sample
        x0 = objective.to_x0(x, v, t.view(1))
        got = reverse.ddim_step(x, x0, *levels(sched, i, t), clip=True)  # as diffusers' pixels
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_ddpm_step_equals_diffusers_given_the_same_noise(pipe) -> None:
    sched = pipe.with_scheduler("ddpm").scheduler
    sched.set_timesteps(STEPS)
    abar, ts = sched.alphas_cumprod, sched.timesteps
    objective = objective_for(TrainConfig())
    x, v = inputs(1)
    for i, t in enumerate(ts[:-1]):  # the last step adds no noise
        expected = sched.step(v, t, x, generator=torch.Generator().manual_seed(i)).prev_sample
        noise = randn_tensor(v.shape, generator=torch.Generator().manual_seed(i))
        a, a_next = float(abar[t]), float(abar[ts[i + 1]])
        x0 = objective.to_x0(x, v, t.view(1))
        got = reverse.ddpm_step(x, x0, a ** 0.5, (1 - a) ** 0.5, a_next ** 0.5,
                                (1 - a_next) ** 0.5, noise, clip=True)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_euler_step_equals_diffusers_and_is_ddim_in_unit_variance_coordinates(pipe) -> None:
    sched = pipe.with_scheduler("euler").scheduler
    sched.set_timesteps(STEPS)
    x, v = inputs(2)
    x = x * sched.init_noise_sigma
    for i, t in enumerate(sched.timesteps):
        sigma, sigma_next = float(sched.sigmas[i]), float(sched.sigmas[i + 1])
        assert sigma == pytest.approx(reverse.sigma_of(float(sched.alphas_cumprod[int(t)])),
                                      rel=1e-4)
        x0 = x / (sigma ** 2 + 1) - sigma * v / (sigma ** 2 + 1) ** 0.5  # v's x0 in this view
        expected = sched.step(v, t, x).prev_sample
        torch.testing.assert_close(reverse.euler_step(x, x0, sigma, sigma_next), expected,
                                   atol=1e-4, rtol=1e-4)
        # The same step seen as DDIM on the unit-variance x_t, in float64: at the first, very
        # large sigma float32 rounding of x alone is far above the tolerance.
        a, s = 1 / (sigma ** 2 + 1) ** 0.5, sigma / (sigma ** 2 + 1) ** 0.5
        a_n, s_n = 1 / (sigma_next ** 2 + 1) ** 0.5, sigma_next / (sigma_next ** 2 + 1) ** 0.5
        xd, x0d = x.double(), x0.double()
        torch.testing.assert_close(reverse.ddim_step(reverse.from_ve(xd, sigma), x0d, a, s, a_n, s_n),
                                   reverse.from_ve(reverse.euler_step(xd, x0d, sigma, sigma_next),
                                                   sigma_next))
        x = expected


def test_a_whole_ddim_loop_by_hand_reproduces_the_pipeline(pipe) -> None:
    ddim = pipe.with_scheduler("ddim")
    start = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    labels = torch.tensor([0, 1])
    expected = ddim(2, class_labels=[0, 1], num_inference_steps=STEPS, latents=start,
                    output_type="pt").images
    sched, unet = ddim.scheduler, ddim.unet
    sched.set_timesteps(STEPS)
    objective = objective_for(TrainConfig())
    x = start
    with torch.no_grad():
        for i, t in enumerate(sched.timesteps):
            v = unet(x, t, class_labels=labels).sample
            x0 = objective.to_x0(x, v, t.view(1))
            x = reverse.ddim_step(x, x0, *levels(sched, i, t), clip=True)
    torch.testing.assert_close((x / 2 + 0.5).clamp(0, 1), expected, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(("objective", "ours", "theirs"), [
    ("v_prediction", "pd-ddim", "ddim"), ("epsilon", "pd-ddim", "ddim"),
    ("flow", "pd-ddim", "euler"), ("v_prediction", "pd-ddpm", "ddpm"),
    ("epsilon", "pd-ddpm", "ddpm")])
def test_pddlib_samplers_reproduce_diffusers_for_every_objective(objective, ours, theirs) -> None:
    p = tiny_pipe(objective)
    kwargs = {"class_labels": [0, 1], "guidance_scale": 2.0, "num_inference_steps": STEPS,
              "output_type": "pt"}
    a = p.with_scheduler(ours)(2, generator=torch.Generator().manual_seed(4), **kwargs).images
    # pddlib's samplers never clip x0; diffusers' DDPM and DDIM do for pixels unless told not to.
    diffusers_pipe = p.with_scheduler(theirs)
    if "clip_sample" in diffusers_pipe.scheduler.config:
        diffusers_pipe.scheduler = type(diffusers_pipe.scheduler).from_config(
            diffusers_pipe.scheduler.config, clip_sample=False)
    b = diffusers_pipe(2, generator=torch.Generator().manual_seed(4), **kwargs).images
    torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-4)


def test_a_new_sampler_is_one_function_and_one_registry_line(monkeypatch, pipe) -> None:
    seen = []

    def halfway(denoise, x, alphas, sigmas, *, generator=None, callback=None):
        """A toy sampler: one jump from the first level straight to the clean estimate."""
        seen.append(len(alphas))
        return denoise(x, 0)

    monkeypatch.setitem(SAMPLERS, "toy", halfway)
    out = pipe.with_scheduler("toy")(2, class_labels=[0, 1], num_inference_steps=3,
                                     generator=torch.Generator().manual_seed(0),
                                     output_type="pt").images
    assert out.shape == (2, 3, 16, 16) and seen == [4]
