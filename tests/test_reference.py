"""Shipping a run as reference weights and rebuilding a run folder from them (tiny models)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pddlib.pipeline import PDDiffusionPipeline
from pddlib.reference import UNET_FILE, ship, working_copy
from pddlib.training import tiny_latent_config, train
from tests.test_training import synthetic_dataset


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "latent"
    train(tiny_latent_config(max_steps=4, checkpoint_every=4, sample_every=4),
          synthetic_dataset(), out)
    return out


def sample(pipe: PDDiffusionPipeline, seed: int = 0) -> torch.Tensor:
    return pipe(4, class_labels=[0, 1, 0, 1], guidance_scale=2.0, num_inference_steps=2,
                generator=torch.Generator().manual_seed(seed), output_type="pt").images


def test_shipped_form_is_fp16_without_checkpoints_samples_or_autoencoder(run, tmp_path) -> None:
    shipped = ship(run, tmp_path / "pd-test")
    assert {p.name for p in shipped.iterdir()} == {
        "model_index.json", "unet", "scheduler", "train_config.json", "loss.jsonl", "provenance"}
    assert {t.dtype for t in load_file(shipped / UNET_FILE).values()} == {torch.float16}
    raw = (run / UNET_FILE).stat().st_size
    assert (shipped / UNET_FILE).stat().st_size < 0.55 * raw
    assert not list(tmp_path.glob("*.partial"))


def test_working_copy_samples_like_the_run_and_is_made_once(run, tmp_path) -> None:
    shipped = ship(run, tmp_path / "pd-test")
    copy = working_copy(shipped, tmp_path / "runs")
    assert copy.name.startswith("pd-test-") and (copy / "vae" / "training.json").is_file()
    pipe = PDDiffusionPipeline.from_run(copy)
    assert next(pipe.unet.parameters()).dtype == torch.float32
    ours, again = sample(pipe), sample(PDDiffusionPipeline.from_run(copy))
    assert torch.equal(ours, again)  # seeded sampling is reproducible
    # Only the fp16 rounding of the weights separates it from the run it was shipped from.
    assert torch.allclose(ours, sample(PDDiffusionPipeline.from_run(run)), atol=0.02)
    (copy / "metrics.json").write_text("{}")  # a learner's measurement stays in the copy
    assert working_copy(shipped, tmp_path / "runs") == copy
    assert (copy / "metrics.json").read_text() == "{}"


def test_shipped_folders_are_data_never_unpickled(run, tmp_path) -> None:
    shipped = ship(run, tmp_path / "pd-test")
    (shipped / "unet" / "evil.bin").write_bytes(b"not loaded")
    with pytest.raises(ValueError, match="evil.bin"):
        working_copy(shipped, tmp_path / "runs")
    with pytest.raises(FileNotFoundError, match="no trained pipeline"):
        ship(tmp_path / "nothing", tmp_path / "out")
