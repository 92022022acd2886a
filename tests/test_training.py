"""The training loop: exact resume, NaN stop, output folder, config checks, batches, objective."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from pddlib.batches import batch_indices, draw_batch
from pddlib.data.schema import features
from pddlib.defaults import DEFAULT_SCHEDULER
from pddlib.objectives import objective_for
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import TrainConfig, learning_rate, tiny_config, tiny_latent_config
from pddlib.runs import latest_checkpoint, read_loss_log
from pddlib.saving import TrainingDiverged
from pddlib.schedulers import SCHEDULERS
from pddlib.training import StepInfo, train

NAMES = ["red", "blue"]


def synthetic_dataset(n: int = 12) -> datasets.Dataset:
    """n 20x20 images in the common schema: a red or blue square on white, alternating."""
    feats = features(NAMES)
    cols: dict[str, list] = {k: [""] * n for k in feats}
    images = []
    for i in range(n):
        a = np.full((20, 20, 3), 255, np.uint8)
        a[4 + i % 3:14, 5:15] = (200, 30, 30) if i % 2 == 0 else (30, 30, 200)
        images.append(Image.fromarray(a))
    cols.update(image=images, label=[i % 2 for i in range(n)], sha1=[f"{i:040x}" for i in range(n)],
                width=[20] * n, height=[20] * n)
    # Drawn for the tests, dedicated to the public domain: the trainer refuses rows without that.
    cols.update(source=["tests"] * n, source_url=["file://synthetic"] * n,
                license=["CC0"] * n, license_reason=["made for the tests"] * n)
    return datasets.Dataset.from_dict(cols, features=feats)


@pytest.fixture(scope="module")
def ds() -> datasets.Dataset:
    return synthetic_dataset()


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")


def test_interrupted_and_resumed_run_ends_with_identical_weights(ds, tmp_path: Path) -> None:
    cfg = tiny_config(max_steps=6, checkpoint_every=2)
    train(cfg, ds, tmp_path / "straight")

    def crash(info: StepInfo) -> None:
        if info.step == 5:  # after step 5: the newest checkpoint is step 4
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, ds, tmp_path / "resumed", callback=crash)
    assert latest_checkpoint(tmp_path / "resumed").name == "step-000004"
    result = train(cfg, ds, tmp_path / "resumed", resume=True)
    assert result.resumed_from == 4 and result.step == 6

    for name in ("straight", "resumed"):
        assert latest_checkpoint(tmp_path / name).name == "step-000006"
    a, b = (latest_checkpoint(tmp_path / n) for n in ("straight", "resumed"))
    for file in ("unet/diffusion_pytorch_model.safetensors", "ema.safetensors",
                 "optimizer.safetensors"):
        ta, tb = load_file(a / file), load_file(b / file)
        assert ta.keys() == tb.keys()
        assert all(torch.equal(ta[k], tb[k]) for k in ta), file
    # The EMA weights of the output pipeline and the loss logs match too.
    assert all(torch.equal(x, y) for x, y in zip(weights(tmp_path / "straight").values(),
                                                 weights(tmp_path / "resumed").values(),
                                                 strict=True))
    assert read_loss_log(tmp_path / "straight") == [
        {**r, "seconds": s["seconds"]} for r, s in
        zip(read_loss_log(tmp_path / "resumed"), read_loss_log(tmp_path / "straight"),
            strict=True)]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(ds, tmp_path: Path) -> None:
    def corrupt(info: StepInfo) -> None:
        if info.step == 3:
            with torch.no_grad():
                info.unet.conv_in.weight.fill_(float("nan"))

    cfg = tiny_config(max_steps=6, checkpoint_every=2)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 4.*step-000002"):
        train(cfg, ds, tmp_path, callback=corrupt)
    ckpt = latest_checkpoint(tmp_path)
    assert ckpt.name == "step-000002"
    assert all(torch.isfinite(w).all() for w in weights(ckpt).values())
    state = json.loads((ckpt / "state.json").read_text())
    assert state["step"] == 2 and state["config"] == cfg.to_dict()


def test_output_folder_is_a_loadable_pipeline(ds, tmp_path: Path) -> None:
    cfg = tiny_config(max_steps=4, sample_every=2)
    result = train(cfg, ds, tmp_path)
    assert result.step == 4 and math.isfinite(result.loss) and result.images_per_second > 0
    pipe = PDDiffusionPipeline.from_pretrained(tmp_path)
    assert pipe.class_names == NAMES and pipe.unet.config.sample_size == 16
    # Saved with the course's sampler, built from the training noise schedule.
    assert type(pipe.scheduler).__name__ == SCHEDULERS[DEFAULT_SCHEDULER]
    assert pipe.scheduler.config.timestep_spacing == "trailing"
    assert pipe.scheduler.config.prediction_type == cfg.prediction_type
    assert TrainConfig.from_dict(json.loads((tmp_path / "train_config.json").read_text())) == cfg
    assert [r["step"] for r in read_loss_log(tmp_path)] == [1, 2, 3, 4]
    assert not (tmp_path / "README.md").exists()  # the card is rendered after training, not in it
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step-000002.png", "step-000004.png"]
    raw = PDDiffusionPipeline.from_run(tmp_path, weights="raw")
    ema = PDDiffusionPipeline.from_run(tmp_path, weights="ema")
    assert not torch.equal(raw.unet.conv_in.weight, ema.unet.conv_in.weight)
    images = ema(2, class_labels="blue", guidance_scale=2.0, num_inference_steps=2,
                 generator=torch.Generator().manual_seed(0)).images
    assert images[0].size == (16, 16)
    # Resuming a finished run trains nothing and keeps the result.
    again = train(cfg, ds, tmp_path, resume=True)
    assert again.resumed_from == 4 and again.step == 4


def test_loss_log_on_disk_follows_the_run_step_by_step(ds, tmp_path: Path) -> None:
    seen = []
    train(tiny_config(max_steps=3, checkpoint_every=100, sample_every=0), ds, tmp_path,
          callback=lambda info: seen.append([r["step"] for r in read_loss_log(info.out_dir)]))
    assert seen == [[1], [1, 2], [1, 2, 3]]


def test_refuses_to_mix_runs(ds, tmp_path: Path) -> None:
    cfg = tiny_config(max_steps=2)
    train(cfg, ds, tmp_path)
    with pytest.raises(ValueError, match="already holds a training run.*resume=True"):
        train(cfg, ds, tmp_path)
    with pytest.raises(ValueError, match=r"another config \(lr: 0.001 -> 0.01\)"):
        train(replace(cfg, lr=1e-2), ds, tmp_path, resume=True)
    with pytest.raises(ValueError, match="another dataset"):
        train(cfg, ds.select(range(8)), tmp_path, resume=True)
    with pytest.raises(ValueError, match="load_images"):
        train(cfg, ds.remove_columns("image"), tmp_path / "x")
    with pytest.raises(ValueError, match="divisible"):
        train(replace(cfg, batch_size=7, grad_accum=2), ds, tmp_path / "y")


def test_gradient_accumulation_matches_one_big_batch(ds, tmp_path: Path) -> None:
    one = tiny_config(max_steps=2, label_dropout=0.0)
    train(one, ds, tmp_path / "one")
    train(replace(one, grad_accum=2), ds, tmp_path / "two")
    a, b = (weights(latest_checkpoint(tmp_path / n)) for n in ("one", "two"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=1e-4)


def test_batches_are_epoch_permutations_and_pure_functions_of_the_step() -> None:
    rows = torch.cat([batch_indices(0, s, 4, 10) for s in range(5)])  # two epochs of 10
    assert sorted(rows[:10].tolist()) == list(range(10))
    assert sorted(rows[10:].tolist()) == list(range(10))
    cfg = tiny_config()
    a, b = draw_batch(cfg, 3, 12), draw_batch(cfg, 3, 12)
    assert torch.equal(a.noise, b.noise) and torch.equal(a.times, b.times)
    assert not torch.equal(a.noise, draw_batch(cfg, 4, 12).noise)
    half = a.part(1, 2)
    assert torch.equal(half.noise, a.noise[4:]) and torch.equal(half.index, a.index[4:])


def test_learning_rate_warms_up_then_decays_to_the_floor() -> None:
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert learning_rate(cfg, 0) == pytest.approx(1e-4)
    assert learning_rate(cfg, 9) == pytest.approx(1e-3)
    assert learning_rate(cfg, 60) == pytest.approx(0.55e-3)
    assert learning_rate(cfg, 110) == pytest.approx(1e-4)


def test_flow_matching_trains_on_shifted_times_and_saves_its_own_sampler(ds, tmp_path) -> None:
    from diffusers import FlowMatchEulerDiscreteScheduler

    cfg = tiny_config(prediction_type="flow", snr_gamma=None, timestep_shift=3.0, sample_every=2)
    t = draw_batch(replace(cfg, batch_size=4096), 0, len(ds)).times
    assert t.is_floating_point() and 0 < t.min() and t.max() < 1 and t.median() > 0.7
    sched = objective_for(cfg).noise_scheduler()
    assert isinstance(sched, FlowMatchEulerDiscreteScheduler) and sched.config.shift == 3.0

    result = train(cfg, ds, tmp_path)
    assert math.isfinite(result.loss) and (tmp_path / "samples" / "step-000002.png").is_file()
    pipe = PDDiffusionPipeline.from_run(tmp_path)
    assert isinstance(pipe.scheduler, FlowMatchEulerDiscreteScheduler)
    assert pipe.scheduler.config.stochastic_sampling is (DEFAULT_SCHEDULER == "euler-a")
    assert pipe.with_scheduler("euler")(1, class_labels="red", num_inference_steps=2).images


def test_objectives_that_do_not_go_together_are_refused(ds, tmp_path) -> None:
    with pytest.raises(ValueError, match="set snr_gamma=None"):
        train(tiny_config(prediction_type="flow"), ds, tmp_path)
    with pytest.raises(ValueError, match=r"Unknown objective \(prediction_type\) 'sample'; choose one of"):
        train(tiny_config(prediction_type="sample"), ds, tmp_path)
    assert not any(tmp_path.iterdir())  # refused before anything was written


def test_cli_train_then_sample(ds, tmp_path: Path, monkeypatch, capsys) -> None:
    from pddlib import cli
    from pddlib.recipes import RECIPES

    # A scraped-style folder (imagefolder + metadata.jsonl) with the synthetic images.
    folder = tmp_path / "scraped"
    (folder / "images").mkdir(parents=True)
    rows = []
    for i, row in enumerate(ds):
        row["image"].save(folder / "images" / f"{i:03d}.png")
        rows.append({**{k: v for k, v in row.items() if k != "image"},
                     "file_name": f"images/{i:03d}.png", "label": NAMES[row["label"]]})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The default recipe (latent, on the shipped autoencoder) with a tiny UNet: same code path.
    monkeypatch.setitem(RECIPES, "cpu-latent", tiny_latent_config())

    out = tmp_path / "run"
    assert cli.main(["train", "--data", str(folder), "--out", str(out),
                     "--max-steps", "2", "--seed", "1"]) == 0
    assert "trained 2 steps" in capsys.readouterr().out
    # Conditional by default, as TrainConfig is; the command renders the card after training.
    assert json.loads((out / "train_config.json").read_text())["conditional"] is True
    assert "Classes: blue, red." in (out / "README.md").read_text()
    flow = tmp_path / "flow"
    assert cli.main(["train", "--data", str(folder), "--out", str(flow), "--objective", "flow",
                     "--max-steps", "2"]) == 0
    assert {k: json.loads((flow / "train_config.json").read_text())[k]
            for k in ("prediction_type", "snr_gamma")} == {"prediction_type": "flow",
                                                          "snr_gamma": None}
    uncond = tmp_path / "uncond"
    assert cli.main(["train", "--data", str(folder), "--out", str(uncond), "--no-conditional",
                     "--max-steps", "2"]) == 0
    assert PDDiffusionPipeline.from_run(uncond).class_names == []
    capsys.readouterr()
    assert cli.main(["train", "--data", str(folder), "--out", str(out)]) == 2
    assert "already holds a training run" in capsys.readouterr().err
    grid = tmp_path / "grid.png"
    assert cli.main(["sample", "--model", str(out), "--n", "4", "--steps", "2", "--scheduler",
                     "dpm++", "--label", "blue", "--out", str(grid)]) == 0
    assert Image.open(grid).size == (32 * 2 + 2, 32 * 2 + 2)  # 8 x 8 latents decode to 32 px
    assert cli.main(["sample", "--model", str(out), "--label", "green", "--steps", "1",
                     "--out", str(grid)]) == 2
    assert "Unknown class name 'green'" in capsys.readouterr().err


def test_course_model_trains_once_then_loads(ds, tmp_path: Path, capsys) -> None:
    from pddlib.trained import course_config, course_model, trained_run

    pipe = course_model(fast=True, data=ds, root=tmp_path)
    assert "Training the tiny FAST-mode model" in capsys.readouterr().out
    assert pipe.class_names == NAMES
    again = course_model(fast=True, data=ds, root=tmp_path)
    assert "Loaded the tiny FAST-mode model" in capsys.readouterr().out
    assert torch.equal(again.unet.conv_in.weight, pipe.unet.conv_in.weight)
    assert len(list(tmp_path.iterdir())) == 1
    # Any other config gets its own folder, trained once and then reused.
    twin = replace(course_config(fast=True), prediction_type="flow", snr_gamma=None)
    folder = trained_run(twin, ds, name="objective", root=tmp_path)
    assert folder.name.startswith("objective-fast-cond-") and len(list(tmp_path.iterdir())) == 2
    assert trained_run(twin, ds, name="objective", root=tmp_path) == folder
    assert "Loaded the objective model from" in capsys.readouterr().out


def test_immiscible_pairing_changes_the_training_noise_only(ds, tmp_path: Path) -> None:
    """immiscible=True trains from the same batches with the noise re-paired: other first loss."""
    plain = train(tiny_config(max_steps=1), ds, tmp_path / "plain")
    paired = train(tiny_config(max_steps=1, immiscible=True), ds, tmp_path / "paired")
    assert math.isfinite(paired.loss)
    assert paired.loss != pytest.approx(plain.loss, rel=1e-6)


def test_a_checkpoint_from_before_a_config_field_existed_resumes(ds, tmp_path: Path) -> None:
    """A field added later (here `immiscible`) counts as its default in an older checkpoint."""
    cfg = tiny_config(max_steps=4, checkpoint_every=2)
    train(replace(cfg, max_steps=2), ds, tmp_path)
    state_file = latest_checkpoint(tmp_path) / "state.json"
    (state_file.parent / "checksums.json").unlink()  # as old as its state: written before records
    state = json.loads(state_file.read_text())
    del state["config"]["immiscible"]
    state_file.write_text(json.dumps(state))
    assert train(cfg, ds, tmp_path, resume=True).resumed_from == 2
    with pytest.raises(ValueError, match="immiscible: False -> True"):
        train(replace(cfg, max_steps=6, immiscible=True), ds, tmp_path, resume=True)
