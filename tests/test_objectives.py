"""The objectives: each loss written out by hand equals the registered class's, and the registry."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from pddlib.models import TINY, build_unet
from pddlib.objectives import OBJECTIVES, objective_for, objective_of
from pddlib.objectives.ddpm import DDPMObjective
from pddlib.objectives.epsilon import Epsilon
from pddlib.objectives.flow_matching import FlowMatching
from pddlib.objectives.v_prediction import VPrediction
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import TrainConfig

NAMES = ["red", "blue"]


class Zero(torch.nn.Module):
    """Predicts 0: the per-image loss is mean(target ** 2)."""

    def forward(self, x, t, class_labels=None):
        return type("Out", (), {"sample": torch.zeros_like(x)})()


def test_timestep_shift_favours_high_noise_and_shift_one_is_uniform() -> None:
    plain = Epsilon().draw_times(4000, torch.Generator().manual_seed(0))
    uniform = torch.randint(0, 1000, (4000,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain, uniform)
    shifted = Epsilon(timestep_shift=3.0).draw_times(4000, torch.Generator().manual_seed(0))
    assert shifted.dtype == torch.long and 0 <= shifted.min() and shifted.max() <= 999
    # u -> 3u / (1 + 2u): the median draw u = 0.5 lands at 0.75, so ~half the draws are >= 750.
    assert (shifted >= 750).float().mean() == pytest.approx(0.5, abs=0.03)
    assert (plain >= 750).float().mean() == pytest.approx(0.25, abs=0.03)


def test_objective_is_noise_prediction_mse_with_min_snr_weights() -> None:
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(4, 3, 8, 8, generator=g) * 2 - 1, torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([1, 100, 500, 999])
    per_image = (noise ** 2).mean(dim=(1, 2, 3))
    assert Epsilon(snr_gamma=None)(Zero(), x0, noise, t) == pytest.approx(per_image.mean().item())
    eps = Epsilon(snr_gamma=5.0)
    a = eps.scheduler.alphas_cumprod[t]
    snr = a / (1 - a)
    w = snr.clamp(max=5.0) / snr
    assert eps(Zero(), x0, noise, t) == pytest.approx((w * per_image).mean().item())


def test_v_prediction_objective_is_min_snr_weighted_mse_on_v() -> None:
    objective = objective_for(TrainConfig())
    assert isinstance(objective, VPrediction)
    unet = build_unet(TINY, NAMES, seed=0)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(3, 3, 16, 16, generator=g) * 2 - 1
    noise = torch.randn(3, 3, 16, 16, generator=g)
    t, labels = torch.tensor([3, 400, 990]), torch.tensor([0, 1, 2])
    abar_all = objective.scheduler.alphas_cumprod
    with torch.no_grad():
        loss = objective(unet, x0, noise, t, labels)
        # The same objective written out: v = sqrt(abar) eps - sqrt(1 - abar) x0.
        abar = abar_all[t][:, None, None, None]
        x_t = abar.sqrt() * x0 + (1 - abar).sqrt() * noise
        v = abar.sqrt() * noise - (1 - abar).sqrt() * x0
        pred = unet(x_t, t, class_labels=labels).sample
        per_image = ((pred - v) ** 2).mean(dim=(1, 2, 3))
    snr = abar_all[t] / (1 - abar_all[t])
    expected = (snr.clamp(max=5.0) / (snr + 1) * per_image).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("objective", [Epsilon(), VPrediction(), FlowMatching(timestep_shift=3.0)])
def test_to_x0_inverts_the_path_given_the_true_target(objective) -> None:
    g = torch.Generator().manual_seed(1)
    x0, noise = torch.randn(3, 4, 8, 8, generator=g), torch.randn(3, 4, 8, 8, generator=g)
    t = objective.draw_times(3, g)
    x_t = objective.noised(x0, noise, t)
    back = objective.to_x0(x_t, objective.target(x0, noise, t), t)
    torch.testing.assert_close(back, x0, atol=2e-3, rtol=1e-3)  # eps divides by sqrt(abar)


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_a_saved_scheduler_names_the_objective_it_was_trained_with(name: str) -> None:
    config = TrainConfig(prediction_type=name, **OBJECTIVES[name].config_defaults)
    objective = objective_for(config)
    assert objective_of(objective.noise_scheduler()) == objective


@pytest.mark.parametrize("name", list(OBJECTIVES))
def test_sampling_levels_run_from_noise_to_clean(name: str) -> None:
    objective = objective_for(TrainConfig(prediction_type=name, **OBJECTIVES[name].config_defaults))
    t, alpha, sigma = objective.sampling_levels(4)
    assert len(t) == len(alpha) == len(sigma) == 5
    assert float(alpha[-1]) == 1.0 and float(sigma[-1]) == 0.0
    assert float(sigma[0]) > 0.99 and float(alpha[0]) < 0.01
    assert (sigma[1:] <= sigma[:-1]).all()


@dataclass(frozen=True)
class X0(DDPMObjective):
    """A toy objective, as a new one would be added: the UNet predicts the clean image itself."""

    name = "x0"
    prediction_type = "sample"  # diffusers' name for x0-prediction

    def target(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return x0

    def weight(self, t: torch.Tensor) -> torch.Tensor | None:
        return None if self.snr_gamma is None else self.snr(t).clamp(max=self.snr_gamma)

    def to_x0(self, x_t: torch.Tensor, output: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return output


def test_a_new_objective_is_one_class_and_one_registry_line(tmp_path, monkeypatch, capsys) -> None:
    """Registered, a toy x0-prediction objective trains (CLI), samples and is evaluated."""
    from pddlib import cli
    from pddlib.metrics.evaluate import EvalConfig, evaluate_model
    from pddlib.recipes import RECIPES, tiny_latent_config

    monkeypatch.setitem(OBJECTIVES, "x0", X0)  # the one registry line
    # The default recipe with a tiny UNet; its sample grid uses a sampler that knows x0.
    monkeypatch.setitem(RECIPES, "cpu-latent", tiny_latent_config(sample_scheduler="pd-ddim"))
    out = tmp_path / "run"
    assert cli.main(["train", "--out", str(out), "--objective", "x0", "--max-steps", "2"]) == 0
    pipe = PDDiffusionPipeline.from_run(out)
    assert pipe.scheduler.config.prediction_type == "sample"
    assert isinstance(objective_of(pipe.scheduler), X0)
    grid = tmp_path / "grid.png"
    assert cli.main(["sample", "--model", str(out), "--n", "4", "--steps", "2", "--scheduler",
                     "pd-ddim", "--out", str(grid)]) == 0
    assert grid.is_file()
    result = evaluate_model(out, EvalConfig(n=16, steps=2, scheduler="ddim"))
    assert result.to_dict()["n"] == 16
    capsys.readouterr()
    assert cli.main(["train", "--out", str(tmp_path / "bad"), "--objective", "x1"]) == 2
    assert "Unknown objective (prediction_type) 'x1'; choose one of" in capsys.readouterr().err
