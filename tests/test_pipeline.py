"""PDDiffusionPipeline on a tiny UNet: seeded outputs, guidance, schedulers, labels, save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from pddlib.defaults import DEFAULT_SCHEDULER
from pddlib.models import TINY, build_unet
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.schedulers import NAMES as SCHEDULER_NAMES
from pddlib.schedulers import SCHEDULERS

NAMES = ["circle", "square", "star"]


def make_pipe(class_names: list[str] | None = NAMES) -> PDDiffusionPipeline:
    """A tiny 16 px pipeline with weights from a fixed seed (global RNG restored afterwards)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        unet = build_unet(TINY, class_names)
    pipe = PDDiffusionPipeline(unet.eval(), DDPMScheduler(num_train_timesteps=1000))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def pipe() -> PDDiffusionPipeline:
    return make_pipe()


def test_ddpm_expected_slice(pipe: PDDiffusionPipeline) -> None:
    final = {}

    def keep(p, i, t, kw):
        final["latents"] = kw["latents"]
        return kw

    out = pipe(2, class_labels=["circle", 2], guidance_scale=3.0, num_inference_steps=2,
               generator=gen(0), output_type="np", callback_on_step_end=keep).images
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    # The images are the final latents mapped from [-1, 1] to [0, 1] and clamped.
    expected_images = (final["latents"].permute(0, 2, 3, 1).numpy() / 2 + 0.5).clip(0, 1)
    np.testing.assert_allclose(out, expected_images, atol=1e-6)
    np.testing.assert_allclose(final["latents"][1, :, 7, 7:10].flatten().numpy(), EXPECTED_DDPM,
                               atol=2e-3)


def test_same_seed_same_images_and_per_image_generators(pipe: PDDiffusionPipeline) -> None:
    kw = {"class_labels": [0, 1, 2], "guidance_scale": 2.0, "num_inference_steps": 2, "output_type": "pt"}
    a = pipe(3, generator=gen(7), **kw).images
    b = pipe(3, generator=gen(7), **kw).images
    assert torch.equal(a, b)
    batch = pipe(3, generator=[gen(10), gen(11), gen(12)], **kw).images
    alone = pipe(1, generator=[gen(11)], class_labels="square", guidance_scale=2.0,
                 num_inference_steps=2, output_type="pt").images
    torch.testing.assert_close(batch[1:2], alone, atol=1e-4, rtol=0)


def test_the_default_scheduler_is_registered_and_unknown_names_are_refused() -> None:
    assert DEFAULT_SCHEDULER in SCHEDULER_NAMES
    with pytest.raises(ValueError, match=r"Unknown scheduler 'fast'.*'ddim'"):
        make_pipe().with_scheduler("fast")


@pytest.mark.parametrize("name", SCHEDULER_NAMES)
def test_every_scheduler_runs_and_is_reproducible(name: str) -> None:
    original = make_pipe()
    pipe = original.with_scheduler(name)
    assert type(pipe.scheduler).__name__ == SCHEDULERS[name]
    assert type(original.scheduler).__name__ == "DDPMScheduler"  # a copy: the original is kept
    assert pipe.unet is original.unet
    assert pipe.scheduler.config.num_train_timesteps == 1000  # the same noise schedule
    # A pixel model's x0 estimate is clipped to the image range where the sampler can do it.
    assert pipe.scheduler.config.get("clip_sample", True) is True
    kw = {"class_labels": "star", "guidance_scale": 2.0, "num_inference_steps": 2, "output_type": "pt"}
    a, b = pipe(2, generator=gen(3), **kw).images, pipe(2, generator=gen(3), **kw).images
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)


def test_guidance_is_one_batched_unet_call(pipe: PDDiffusionPipeline) -> None:
    batches = []
    hook = pipe.unet.register_forward_hook(lambda m, args, out: batches.append(args[0].shape[0]))
    try:
        pipe(3, class_labels=1, guidance_scale=4.0, num_inference_steps=2, generator=gen())
        pipe(3, class_labels=1, guidance_scale=1.0, num_inference_steps=2, generator=gen())
    finally:
        hook.remove()
    assert batches == [6, 6, 3, 3]


def test_guidance_formula(pipe: PDDiffusionPipeline) -> None:
    # With latents fixed, step 0's guided prediction is uncond + w * (cond - uncond).
    latents = torch.randn(1, 3, 16, 16, generator=gen(1))
    preds = {}

    def grab(label, w):
        def cb(p, i, t, kw):
            preds.setdefault((label, w), kw["noise_pred"].clone())
            return kw
        pipe(1, class_labels=label, guidance_scale=w, num_inference_steps=1, latents=latents,
             callback_on_step_end=cb, generator=gen())
    grab(0, 1.0)
    grab(0, 3.0)
    grab(None, 1.0)
    cond, uncond = preds[(0, 1.0)], preds[(None, 1.0)]
    torch.testing.assert_close(preds[(0, 3.0)], uncond + 3.0 * (cond - uncond),
                               atol=1e-4, rtol=1e-4)


def test_guidance_interval_guides_only_inside_it(pipe: PDDiffusionPipeline) -> None:
    def run(**kw):
        batches = []
        hook = pipe.unet.register_forward_hook(lambda m, a, out: batches.append(a[0].shape[0]))
        try:
            images = pipe(2, class_labels=1, num_inference_steps=4, generator=gen(2),
                          output_type="pt", **kw).images
        finally:
            hook.remove()
        return images, batches

    full, full_batches = run(guidance_scale=4.0)
    same, _ = run(guidance_scale=4.0, guidance_interval=(0.0, 1.0))
    none, none_batches = run(guidance_scale=4.0, guidance_interval=(0.9, 0.95))
    unguided, _ = run(guidance_scale=1.0)
    assert torch.equal(full, same) and full_batches == [4, 4, 4, 4]
    torch.testing.assert_close(none, unguided, atol=1e-6, rtol=0)
    assert none_batches == [2, 2, 2, 2]  # outside the interval: the conditional half alone
    # DDPM's 4 steps are t = 750, 500, 250, 0: [0.3, 0.8] guides the first two only.
    _, mid_batches = run(guidance_scale=4.0, guidance_interval=(0.3, 0.8))
    assert mid_batches == [4, 4, 2, 2]
    with pytest.raises(ValueError, match="guidance_interval must be"):
        run(guidance_scale=4.0, guidance_interval=(0.8, 0.3))


def test_autoguidance_extrapolates_from_the_weak_model(pipe: PDDiffusionPipeline) -> None:
    # weak + w * (cond - weak), both conditional: with the model itself as the weak one, the
    # images are the plain conditional ones; with another model, step 0 follows the formula.
    kw = {"class_labels": 1, "num_inference_steps": 3, "output_type": "pt"}
    plain = pipe(2, guidance_scale=1.0, generator=gen(3), **kw).images
    itself = pipe(2, guidance_scale=4.0, weak_unet=pipe.unet, generator=gen(3), **kw).images
    assert torch.equal(plain, itself)

    weak_pipe = make_pipe()
    with torch.no_grad():
        for p in weak_pipe.unet.parameters():
            p.mul_(0.5)
    latents = torch.randn(1, 3, 16, 16, generator=gen(1))
    preds = {}

    def grab(who, **call):
        def cb(p, i, t, kwargs):
            preds.setdefault(who, kwargs["noise_pred"].clone())
            return kwargs
        call.setdefault("guidance_scale", 1.0)
        (weak_pipe if who == "weak" else pipe)(1, class_labels=0, num_inference_steps=1,
                                               latents=latents, callback_on_step_end=cb,
                                               generator=gen(), **call)
    grab("cond")
    grab("weak")
    grab("auto", guidance_scale=3.0, weak_unet=weak_pipe.unet)
    torch.testing.assert_close(preds["auto"], preds["weak"] + 3.0 * (preds["cond"] - preds["weak"]),
                               atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="weak_unet must be a version of the same model"):
        pipe(1, class_labels=0, guidance_scale=2.0, weak_unet=make_pipe(["a", "b"]).unet,
             num_inference_steps=1)


def test_callback_sees_latents_and_x0_and_can_replace_latents(pipe: PDDiffusionPipeline) -> None:
    seen = []

    def cb(p, i, t, kw):
        seen.append((i, int(t), kw["pred_original_sample"] is not None, kw["latents"].shape))
        return {"latents": torch.zeros_like(kw["latents"])}

    out = pipe(1, class_labels=0, num_inference_steps=2, generator=gen(), callback_on_step_end=cb,
               output_type="pt").images
    assert [s[:3] for s in seen] == [(0, 500, True), (1, 0, True)]
    assert torch.allclose(out, torch.full_like(out, 0.5))  # zero latents decode to grey


def test_labels_by_name_equal_labels_by_index(pipe: PDDiffusionPipeline) -> None:
    kw = {"guidance_scale": 2.0, "num_inference_steps": 2, "output_type": "pt"}
    a = pipe(2, class_labels=["star", "circle"], generator=gen(5), **kw).images
    b = pipe(2, class_labels=[2, 0], generator=gen(5), **kw).images
    assert torch.equal(a, b)


def test_bad_labels_and_sizes_say_what_to_do(pipe: PDDiffusionPipeline) -> None:
    with pytest.raises(ValueError, match=r"Unknown class name 'dog'.*circle"):
        pipe(1, class_labels="dog", num_inference_steps=1)
    with pytest.raises(ValueError, match="out of range"):
        pipe(1, class_labels=3, num_inference_steps=1)
    with pytest.raises(ValueError, match="one per image"):
        pipe(3, class_labels=[0, 1], num_inference_steps=1)
    with pytest.raises(ValueError, match=r"16x16 images.*\(1, 3, 16, 16\)"):
        pipe(1, latents=torch.zeros(1, 3, 32, 32), num_inference_steps=1)
    uncond = make_pipe(None)
    with pytest.raises(ValueError, match="unconditional"):
        uncond(1, class_labels=0, num_inference_steps=1)
    assert uncond(1, num_inference_steps=1, output_type="np").images.shape == (1, 16, 16, 3)


def test_guidance_applies_only_with_class_labels(pipe: PDDiffusionPipeline) -> None:
    kw = {"num_inference_steps": 2, "output_type": "pt"}
    uncond = make_pipe(None)
    # Without labels there is nothing to steer towards: the scale has no effect, and says so.
    assert torch.equal(uncond(1, guidance_scale=3.0, generator=gen(1), **kw).images,
                       uncond(1, generator=gen(1), **kw).images)
    assert torch.equal(pipe(1, guidance_scale=3.0, generator=gen(1), **kw).images,
                       pipe(1, generator=gen(1), **kw).images)
    assert not torch.equal(pipe(1, class_labels=0, guidance_scale=3.0, generator=gen(1), **kw).images,
                           pipe(1, class_labels=0, generator=gen(1), **kw).images)
    assert PDDiffusionPipeline.effective_guidance(3.0, None) == 1.0
    assert PDDiffusionPipeline.effective_guidance(3.0, [0]) == 3.0
    assert pipe.classes_in_turn(5) == [0, 1, 2, 0, 1] and uncond.classes_in_turn(5) is None


def test_save_and_reload_round_trip(pipe: PDDiffusionPipeline, tmp_path: Path) -> None:
    pipe.with_scheduler("ddim").save_pretrained(tmp_path / "model")
    loaded = PDDiffusionPipeline.from_pretrained(tmp_path / "model")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.class_names == NAMES
    assert type(loaded.scheduler).__name__ == "DDIMScheduler"
    loaded = loaded.with_scheduler("ddpm")
    kw = {"class_labels": "square", "guidance_scale": 2.0, "num_inference_steps": 2, "output_type": "pt"}
    assert torch.equal(pipe(1, generator=gen(2), **kw).images,
                       loaded(1, generator=gen(2), **kw).images)
    image = loaded(1, generator=gen(), class_labels=0, num_inference_steps=2).images[0]
    assert image.size == (16, 16) and image.mode == "RGB"


# Final latents of image 1 (class 2, guidance 3, seed 0, DDPM 2 steps) at row 7, columns 7-9.
EXPECTED_DDPM = np.array([-0.5503103, 1.0, 0.5855907, 0.9776728, -0.43877494, 1.0, -1.0, -1.0,
                          0.9866434], dtype=np.float32)
