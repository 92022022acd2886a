"""pddlib.experiments on a tiny 8 px UNet: seeds, sweeps, timing, guidance, the loop's inside."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from diffusers import DDPMScheduler, EulerDiscreteScheduler
from PIL import Image

from pddlib import experiments, viz
from pddlib.models import TINY, build_unet
from pddlib.pipeline import PDDiffusionPipeline

NAMES = ["circle", "square", "star"]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Run this module's 8 px models on one thread (restored afterwards).

    They gain nothing from a second thread, and on a busy 2-core machine two OpenMP threads
    were measured 18x slower than one (411 ms against 23 ms per UNet call).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipe() -> PDDiffusionPipeline:
    """A seeded 8 px class-conditional pipeline (untrained: outputs are arbitrary but fixed)."""
    unet = build_unet(replace(TINY, sample_size=8), NAMES, seed=0).eval()
    p = PDDiffusionPipeline(unet, DDPMScheduler(num_train_timesteps=1000))
    p.set_progress_bar_config(disable=True)
    return p


def judge_classes() -> list[str]:
    """The default judge's classes (the embedded set's)."""
    from pddlib.metrics import judge

    return list(judge.info().class_names)


def test_saved_initial_noise_reproduces_the_image(pipe) -> None:
    ddim = pipe.with_scheduler("ddim")
    kw = {"class_labels": "star", "num_inference_steps": 2, "output_type": "pt"}
    drawn = ddim(2, generator=experiments.seeded(3), **kw).images
    latents = experiments.initial_noise(ddim, 2, experiments.seeded(3))
    assert latents.shape == (2, 3, 8, 8)
    assert torch.equal(ddim(2, latents=latents.clone(), **kw).images, drawn)


def test_same_seed_same_image_and_per_image_seeds(pipe) -> None:
    kw = {"scheduler": "ddpm", "steps": 2, "class_label": "square", "guidance": 2.0}
    a = experiments.sample(pipe, seed=5, **kw)
    assert a.shape == (1, 3, 8, 8) and -1 <= a.min() and a.max() <= 1
    assert torch.equal(a, experiments.sample(pipe, seed=5, **kw))
    assert not torch.equal(a, experiments.sample(pipe, seed=6, **kw))
    batch = experiments.sample(pipe, seed=[4, 5, 6], **kw)
    # The middle image of a batch with per-image generators is the seed-5 image alone
    # (up to batched-convolution rounding).
    torch.testing.assert_close(batch[1:2], a, atol=1e-5, rtol=0)


def test_steps_sweep_columns_are_single_samples(pipe) -> None:
    grid = experiments.steps_sweep(pipe, "euler", [1, 3], seed=2, class_label=0)
    assert grid.shape == (2, 3, 8, 8)
    one = experiments.sample(pipe, seed=2, scheduler="euler", steps=3, class_label=0)
    assert torch.equal(grid[1:], one)
    assert not torch.equal(grid[0], grid[1])


def test_time_sampling_table(pipe) -> None:
    table = experiments.time_sampling(pipe, ["ddim", "dpm++"], [1, 2], batch_size=2, repeats=1)
    assert list(table.columns) == ["scheduler", "steps", "seconds_per_image",
                                   "seconds_per_step", "batch_size"]
    assert table[["scheduler", "steps"]].values.tolist() == [["ddim", 1], ["ddim", 2],
                                                              ["dpm++", 1], ["dpm++", 2]]
    assert (table.seconds_per_image > 0).all()
    torch.testing.assert_close(torch.tensor(table.seconds_per_step.values),
                               torch.tensor((table.seconds_per_image / table.steps).values))


def test_diversity_in_pixels() -> None:
    same = torch.zeros(4, 3, 2, 2)
    assert experiments.diversity(same) == 0.0
    # Constant images 0, 1, -1: RMS distances 1, 1, 2 -> mean 4/3.
    three = torch.stack([torch.full((3, 2, 2), v) for v in (0.0, 1.0, -1.0)])
    assert experiments.diversity(three) == pytest.approx(4 / 3)
    with pytest.raises(ValueError, match="at least two"):
        experiments.diversity(same[:1])
    with pytest.raises(ValueError, match="space"):
        experiments.diversity(same, "clip")


def test_guidance_sweep_shares_noise_across_scales(pipe) -> None:
    sweep = experiments.guidance_sweep(pipe, ["circle", 2], [0, 1, 3], n=2, steps=2, seed=1,
                                    scheduler="ddim")  # deterministic: comparable below
    assert sweep.classes == ["circle", "star"] and sweep.scales == [0.0, 1.0, 3.0]
    assert sweep.grid().shape == (6, 3, 8, 8)
    assert torch.equal(sweep.grid(1)[4], sweep.images["star", 1.0][1])
    rows = sweep.rows(1)
    assert list(rows) == ["circle", "star"] and torch.equal(rows["star"], sweep.grid(1)[3:])
    # Scale 1 is plain conditional sampling from the shared start noise.
    ddim = pipe.with_scheduler("ddim")
    latents = experiments.initial_noise(ddim, 2, experiments.seeded(1))
    plain = experiments.sample(pipe, scheduler="ddim", steps=2, class_label="circle", latents=latents)
    torch.testing.assert_close(sweep.images["circle", 1.0], plain, atol=1e-5, rtol=0)
    # Scale 0 is the unconditional (null class) model, the same whatever class was asked for.
    torch.testing.assert_close(sweep.images["circle", 0.0], sweep.images["star", 0.0],
                               atol=1e-5, rtol=0)
    table = sweep.table
    assert len(table) == 6 and list(table["guidance"]) == [0.0, 1.0, 3.0] * 2
    assert table.loc[1, "diversity_pixels"] == pytest.approx(
        experiments.diversity(sweep.images["circle", 1.0]))
    assert table.class_agreement.isna().all()  # the judge does not know circle / square / star
    assert list(sweep.by_scale()["guidance"]) == [0.0, 1.0, 3.0]


def test_guidance_sweep_errors(pipe) -> None:
    with pytest.raises(ValueError, match="Unknown class name"):
        experiments.guidance_sweep(pipe, ["dog"], [1], n=1, steps=1)
    uncond = PDDiffusionPipeline(build_unet(replace(TINY, sample_size=8), seed=0),
                                 DDPMScheduler())
    with pytest.raises(ValueError, match="class-conditional"):
        experiments.guidance_sweep(uncond, None, [1], n=1, steps=1)


def test_guidance_sweep_judged_by_the_judge() -> None:
    names = judge_classes()[:2]
    unet = build_unet(replace(TINY, sample_size=8), names, seed=0).eval()
    p = PDDiffusionPipeline(unet, DDPMScheduler())
    sweep = experiments.guidance_sweep(p, None, [1, 4], n=2, steps=1)
    table = sweep.table
    assert len(table) == 4
    assert table.class_agreement.isin([0.0, 0.5, 1.0]).all()  # fractions of two images
    assert (table.diversity_judge >= 0).all()


def test_evenly_spaced_steps() -> None:
    assert experiments.evenly_spaced_steps(25, 6) == [0, 5, 10, 14, 19, 24]
    assert experiments.evenly_spaced_steps(3, 6) == [0, 1, 2]
    assert experiments.evenly_spaced_steps(10, 1) == [0]


@pytest.mark.parametrize("scheduler", ["ddim", "euler", "pd-ddim"])
def test_collect_trajectory(pipe, scheduler: str) -> None:
    traj = experiments.collect_trajectory(pipe, at=[0, 2], steps=3, scheduler=scheduler, seed=4,
                                          class_label="circle", guidance=2.0)
    assert traj.steps == [0, 2] and traj.num_inference_steps == 3
    assert traj.x_t.shape == traj.x0.shape == (2, 1, 3, 8, 8)
    assert len(traj.timesteps) == 2 and traj.timesteps[0] > traj.timesteps[1]
    # The recorded run is the ordinary run, and after the last step x_t is the image.
    plain = experiments.sample(pipe, seed=4, scheduler=scheduler, steps=3, class_label="circle",
                               guidance=2.0)
    assert torch.equal(traj.images, plain)
    torch.testing.assert_close(traj.x_t[-1].clamp(-1, 1), plain, atol=1e-6, rtol=0)
    if scheduler == "euler":
        assert isinstance(pipe.with_scheduler(scheduler).scheduler,
                          EulerDiscreteScheduler)


def test_collect_trajectory_errors(pipe) -> None:
    with pytest.raises(ValueError, match="does not report the predicted x0"):
        experiments.collect_trajectory(pipe, scheduler="dpm++", steps=2)
    with pytest.raises(ValueError, match="step indices"):
        experiments.collect_trajectory(pipe, at=[5], steps=2)


def test_quality_vs_steps() -> None:
    names = judge_classes()[:2]
    unet = build_unet(replace(TINY, sample_size=8), names, seed=0).eval()
    p = PDDiffusionPipeline(unet, DDPMScheduler())
    g = torch.Generator().manual_seed(0)
    real = [Image.fromarray((torch.rand(8, 8, 3, generator=g) * 255).byte().numpy())
            for _ in range(6)]
    table = experiments.quality_vs_steps(p, real, "ddim", [1, 2], n=6, batch_size=6)
    assert table.steps.tolist() == [1, 2] and (table.fd >= 0).all()
    assert table.class_agreement.between(0, 1).all()


# ---------------------------------------------------------------- figures


def test_sampling_figures(pipe, tmp_path) -> None:
    rows = {"ddim": torch.zeros(3, 3, 8, 8), "ddpm": torch.ones(2, 3, 8, 8)}
    fig = viz.image_rows(rows, {"ddim": ["a", "b", "c"], "ddpm": ["d", "e"]})
    assert [len(ax.images) for ax in fig.axes] == [1, 1, 1, 1, 1, 0]
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c", "d", "e", ""]
    fig = viz.image_rows(rows, ["x", "y", "z"])  # shared column titles: first row only
    assert [ax.get_title() for ax in fig.axes] == ["x", "y", "z", "", "", ""]

    table = experiments.time_sampling(pipe, ["ddim", "euler"], [1, 2], batch_size=1, repeats=1)
    fig = viz.line_charts(table, "steps", ["seconds_per_image", "seconds_per_step"],
                          by="scheduler")
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2

    traj = experiments.collect_trajectory(pipe, steps=4, at=[0, 1, 3])
    fig = viz.trajectory_strip(traj)
    assert len(fig.axes) == 6
    assert fig.axes[0].get_title() == f"step 1/4\nfrom t={traj.timesteps[0]}"
    first = viz.trajectory_gif(traj, tmp_path / "runs" / "loop.gif", scale=2)
    assert first.size == ((8 * 2 + 2) * 2, 16)
    with Image.open(tmp_path / "runs" / "loop.gif") as gif:
        assert gif.n_frames == 3  # one frame per recorded step


def test_controls_or_static_headless(monkeypatch) -> None:
    monkeypatch.setenv("PDD_STATIC", "1")
    seen = []

    def render(ax, seed, scheduler):
        seen.append((seed, scheduler))
        viz.show_image(ax, torch.zeros(3, 4, 4), f"{scheduler} {seed}")

    fig = viz.controls_or_static(render, {"seed": range(3), "scheduler": ["ddim", "euler"]},
                                 [{"seed": 0, "scheduler": "ddim"},
                                  {"seed": 2, "scheduler": "euler"}])
    assert isinstance(fig, viz.NotebookFigure)
    assert seen == [(0, "ddim"), (2, "euler")]
    assert [ax.get_title() for ax in fig.axes] == ["ddim 0", "euler 2"]


def test_controls_with_a_front_end(monkeypatch) -> None:
    pytest.importorskip("ipywidgets")
    monkeypatch.setenv("PDD_STATIC", "0")
    seen = []
    box = viz.controls_or_static(lambda ax, seed, scheduler: seen.append((seed, scheduler)),
                                 {"seed": range(3), "scheduler": ["ddim", "euler"]},
                                 [{"seed": 2, "scheduler": "ddim"}])
    assert seen == [(2, "ddim")]  # starts at the first example
    box.children[1].value = "euler"  # the dropdown re-renders
    assert seen[-1] == (2, "euler")
