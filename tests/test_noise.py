"""pddlib.noise: schedules match diffusers, the closed form q(x_t | x0) is what it says."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import DDPMScheduler

from pddlib import noise

SEED = 0


def images(batch: int = 3, size: int = 8, seed: int = SEED) -> torch.Tensor:
    """A seeded batch of 'images' (B, 3, size, size) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 3, size, size, generator=g) * 2 - 1


@pytest.mark.parametrize("schedule", noise.SCHEDULES)
def test_betas_match_diffusers(schedule: str) -> None:
    betas = noise.make_betas(schedule)
    expected = DDPMScheduler(beta_schedule=schedule).betas
    assert betas.dtype == torch.float64 and betas.shape == (1000,)
    torch.testing.assert_close(betas, expected.double(), atol=1e-6, rtol=0)


@pytest.mark.parametrize("schedule", noise.SCHEDULES)
def test_custom_range_and_length_match_diffusers(schedule: str) -> None:
    kwargs = {"num_train_timesteps": 50, "beta_start": 5e-4, "beta_end": 0.05}
    expected = DDPMScheduler(beta_schedule=schedule, **kwargs).betas
    torch.testing.assert_close(noise.make_betas(schedule, **kwargs), expected.double(),
                               atol=1e-6, rtol=0)


def test_linear_schedule_by_hand() -> None:
    betas = noise.make_betas("linear", 3, beta_start=0.1, beta_end=0.3)
    ab = noise.alphas_cumprod(betas)
    torch.testing.assert_close(betas, torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    torch.testing.assert_close(ab, torch.tensor([0.9, 0.72, 0.504], dtype=torch.float64))
    torch.testing.assert_close(noise.snr(ab)[0], torch.tensor(9.0, dtype=torch.float64))
    torch.testing.assert_close(noise.log_snr(ab), torch.log(noise.snr(ab)))


@pytest.mark.parametrize("schedule", noise.SCHEDULES)
def test_alpha_bar_in_unit_interval_and_snr_decreasing(schedule: str) -> None:
    ab = noise.alphas_cumprod(noise.make_betas(schedule))
    assert ((ab > 0) & (ab <= 1)).all()
    assert (noise.snr(ab).diff() < 0).all()
    assert (noise.log_snr(ab).diff() < 0).all()


@pytest.mark.parametrize("schedule", noise.SCHEDULES)
def test_zero_terminal_snr(schedule: str) -> None:
    betas = noise.rescale_zero_terminal_snr(noise.make_betas(schedule))
    ab = noise.alphas_cumprod(betas)
    assert ab[-1] == 0 and noise.snr(ab)[-1] == 0
    torch.testing.assert_close(ab[0], noise.alphas_cumprod(noise.make_betas(schedule))[0])
    expected = DDPMScheduler(beta_schedule=schedule, rescale_betas_zero_snr=True).betas
    # diffusers rescales in float32; ours is float64, so they agree to float32 rounding.
    torch.testing.assert_close(betas, expected.double(), atol=1e-5, rtol=0)


def test_bad_schedule_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="cosine") as info:
        noise.make_betas("cosine")
    for name in noise.SCHEDULES:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="squaredcos_cap_v2"):
        noise.NoiseSchedule("cosine")


@pytest.mark.parametrize("schedule", noise.SCHEDULES)
def test_add_noise_matches_diffusers(schedule: str) -> None:
    scheduler = DDPMScheduler(beta_schedule=schedule)
    x0 = images(batch=4, size=16)
    g = torch.Generator().manual_seed(SEED + 1)
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    expected = scheduler.add_noise(x0, eps, t)
    # Same alpha-bar: the same arithmetic, so the same numbers.
    torch.testing.assert_close(noise.add_noise(x0, eps, t, scheduler.alphas_cumprod), expected,
                               atol=1e-6, rtol=0)
    # Our float64 alpha-bar differs from diffusers' float32 cumprod only by its rounding.
    ab = noise.alphas_cumprod(noise.make_betas(schedule))
    torch.testing.assert_close(noise.add_noise(x0, eps, t, ab), expected, atol=1e-4, rtol=0)
    assert noise.add_noise(x0, eps, t, ab).dtype == torch.float32


def test_add_noise_endpoints_and_int_timestep() -> None:
    x0, eps = images(batch=2), images(batch=2, seed=SEED + 1)
    ab = torch.tensor([1.0, 0.25, 0.0], dtype=torch.float64)
    torch.testing.assert_close(noise.add_noise(x0, eps, 0, ab), x0)
    torch.testing.assert_close(noise.add_noise(x0, eps, 1, ab), 0.5 * x0 + 0.75**0.5 * eps)
    torch.testing.assert_close(noise.add_noise(x0, eps, 2, ab), eps)
    mixed = noise.add_noise(x0, eps, torch.tensor([0, 2]), ab)
    torch.testing.assert_close(mixed, torch.stack([x0[0], eps[1]]))


def test_q_mean_std_closed_form() -> None:
    x0 = images(batch=2)
    ab = noise.alphas_cumprod(noise.make_betas("linear"))
    t = torch.tensor([100, 900])
    mean, std = noise.q_mean_std(x0, t, ab)
    assert mean.shape == x0.shape and std.shape == (2, 1, 1, 1)
    torch.testing.assert_close(std.flatten(), (1 - ab[t]).sqrt().float())
    torch.testing.assert_close(mean, ab[t].sqrt().float().view(2, 1, 1, 1) * x0)


@pytest.mark.parametrize("t", [50, 400, 999])
def test_q_sample_statistics_match_closed_form(t: int) -> None:
    n = 4000  # samples of x_t for one fixed x0 of 3*8*8 pixels
    x0 = images(batch=1, seed=SEED + 2).double().expand(n, -1, -1, -1)
    ab = noise.alphas_cumprod(noise.make_betas("linear"))
    g = torch.Generator().manual_seed(SEED)
    x_t, eps = noise.q_sample(x0, t, ab, generator=g)
    mean, std = noise.q_mean_std(x0[:1], t, ab)
    # Standard error of a sample mean is std / sqrt(n); 5 of them bounds every pixel here.
    assert (x_t.mean(0) - mean[0]).abs().max() < 5 * std.item() / n**0.5
    torch.testing.assert_close(x_t.std(0).mean(), std.flatten()[0], atol=0.01, rtol=0)
    torch.testing.assert_close(x_t, noise.add_noise(x0, eps, t, ab))


def test_q_sample_reproducible_with_generator() -> None:
    x0 = images()
    ab = noise.NoiseSchedule().alphas_cumprod()
    t = torch.tensor([1, 2, 3])
    a = noise.q_sample(x0, t, ab, torch.Generator().manual_seed(7))
    b = noise.q_sample(x0, t, ab, torch.Generator().manual_seed(7))
    c = noise.q_sample(x0, t, ab, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[1], c[1])


def test_random_timesteps() -> None:
    g = torch.Generator().manual_seed(SEED)
    t = noise.random_timesteps(256, 10, generator=g)
    assert t.dtype == torch.long and t.shape == (256,)
    assert t.min() >= 0 and t.max() <= 9 and len(t.unique()) == 10
    assert torch.equal(t, noise.random_timesteps(256, 10, torch.Generator().manual_seed(SEED)))


def test_noise_schedule_config() -> None:
    cfg = noise.NoiseSchedule("squaredcos_cap_v2", num_train_timesteps=100)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_train_timesteps = 10  # type: ignore[misc]
    scheduler = cfg.ddpm_scheduler()
    assert scheduler.config.num_train_timesteps == 100
    torch.testing.assert_close(cfg.betas(), scheduler.betas.double(), atol=1e-6, rtol=0)
    assert cfg.alphas_cumprod().shape == (100,)


def test_immiscible_order_is_the_cheapest_pairing():
    """The assignment is a permutation with the least total image-noise distance (brute force)."""
    import itertools

    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 2, 3, 3, generator=g), torch.randn(5, 2, 3, 3, generator=g)
    order = noise.immiscible_order(x0, eps)
    assert sorted(order.tolist()) == list(range(5))
    cost = torch.cdist(x0.flatten(1), eps.flatten(1))

    def total(perm):
        return sum(cost[i, j].item() for i, j in enumerate(perm))

    best = min(itertools.permutations(range(5)), key=total)
    assert order.tolist() == list(best)
    assert total(order.tolist()) < total(range(5))
