"""Latent diffusion: a tiny autoencoder, a UNet trained on its latents, a pipeline that decodes."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from test_training import synthetic_dataset

from pddlib.autoencoder import (
    AutoencoderConfig,
    decode,
    encode,
    factor,
    load_autoencoder,
    save_autoencoder,
    train_autoencoder,
)
from pddlib.data import to_tensor
from pddlib.folders import check_pipeline
from pddlib.models import TINY
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import tiny_config
from pddlib.training import train

TINY_AE = AutoencoderConfig(sample_size=16, latent_channels=4, block_out_channels=(8, 16),
                            norm_num_groups=4, steps=2, batch_size=4)
LATENT_UNET = replace(TINY, sample_size=8, in_channels=4)


@pytest.fixture(scope="module")
def data():
    return synthetic_dataset()


@pytest.fixture(scope="module")
def ae_dir(data, tmp_path_factory) -> Path:
    x = to_tensor(data["image"], 16)
    vae = train_autoencoder(x, TINY_AE, progress=False)
    return save_autoencoder(vae, tmp_path_factory.mktemp("ae") / "ae", TINY_AE, data="synthetic")


def test_the_autoencoder_halves_each_level_and_scales_latents_to_unit_variance(data, ae_dir):
    vae = load_autoencoder(ae_dir)
    assert factor(vae) == 2
    x = to_tensor(data["image"], 16)
    z = encode(vae, x)
    assert z.shape == (len(x), 4, 8, 8)
    assert z.std().item() == pytest.approx(1.0, rel=1e-4)  # the scaling factor's job
    assert decode(vae, z).shape == x.shape
    assert (ae_dir / "diffusion_pytorch_model.safetensors").is_file()
    assert (ae_dir / "training.json").is_file()


def test_a_latent_model_trains_saves_and_samples_full_size_images(data, ae_dir, tmp_path) -> None:
    cfg = tiny_config(model=LATENT_UNET, autoencoder=str(ae_dir), max_steps=4, sample_every=2)
    run = tmp_path / "run"
    train(cfg, data, run)
    pipe = PDDiffusionPipeline.from_run(run)
    assert pipe.vae is not None and pipe.image_size == 16 and pipe.unet.config.in_channels == 4
    images = pipe(2, class_labels="red", guidance_scale=2.0, num_inference_steps=2,
                  generator=torch.Generator().manual_seed(0), output_type="pt").images
    assert images.shape == (2, 3, 16, 16) and 0 <= images.min() and images.max() <= 1
    # The copy with another sampler keeps the autoencoder and never clips the (unbounded)
    # latents as DDIM and DDPM clip pixels; an exact resume still holds.
    for name in ("ddim", "ddpm"):
        assert pipe.with_scheduler(name).vae is pipe.vae
        assert pipe.with_scheduler(name).scheduler.config.clip_sample is False
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-000002.png",
                                                                    "step-000004.png"]
    again = train(replace(cfg, max_steps=6), data, run, resume=True)
    assert again.resumed_from == 4 and again.step == 6


def test_a_model_that_does_not_fit_the_autoencoder_is_refused(data, ae_dir, tmp_path) -> None:
    cfg = tiny_config(model=TINY, autoencoder=str(ae_dir))  # 3 input channels: pixels
    with pytest.raises(ValueError, match="makes 4-channel latents.*in_channels=4"):
        train(cfg, data, tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="holds no autoencoder"):
        load_autoencoder(tmp_path)


def test_the_shipped_autoencoder_loads_by_name_offline_and_says_how_it_was_made() -> None:
    from pddlib.autoencoder import SHIPPED, autoencoder_folder, training_record
    from pddlib.data import load_images

    assert SHIPPED == ("pd-ae32",)
    folder = autoencoder_folder("pd-ae32")
    weights = folder / "diffusion_pytorch_model.safetensors"
    assert weights.stat().st_size < 6_000_000  # fp16, small enough to ship in the package
    vae = load_autoencoder("pd-ae32")
    assert next(vae.parameters()).dtype == torch.float32  # computed in fp32, stored in fp16
    assert factor(vae) == 4 and vae.config.latent_channels == 4
    record = training_record("pd-ae32")
    assert "train split" in record["data"] and "public domain" in record["data"]
    assert record["command"].startswith("python scripts/train_autoencoder.py")
    assert "--fp16" in record["command"]
    # It reconstructs held-out images it never saw: pixel RMS error near its recorded figure.
    held = load_images("openclipart", split="heldout").select(range(32))
    x = to_tensor(held["image"], 32)
    recon = decode(vae, encode(vae, x)).clamp(-1, 1)
    rms = ((recon - x) / 2).pow(2).mean().sqrt().item()
    assert rms < 1.5 * record["heldout_rms_pixel_error"]


def test_a_latent_run_carries_its_autoencoders_provenance_into_the_card(data, ae_dir,
                                                                           tmp_path) -> None:
    from pddlib.card import build_card

    run = tmp_path / "run"
    train(tiny_config(model=LATENT_UNET, autoencoder=str(ae_dir), max_steps=2), data, run)
    assert (run / "vae" / "training.json").is_file()
    card = build_card(run)
    assert "latent diffusion" in card and "on the synthetic" in card


def test_a_latent_models_autoencoder_manifest_travels_with_it_and_is_verified(data, ae_dir,
                                                                             tmp_path) -> None:
    from pddlib.provenance import verify_provenance, write_manifest

    bare = tmp_path / "bare"  # an autoencoder folder without a manifest
    train(tiny_config(model=LATENT_UNET, autoencoder=str(ae_dir), max_steps=2), data, bare)
    (problem,) = verify_provenance(bare, data)
    assert "vae/provenance/manifest.jsonl is missing" in problem
    ae = tmp_path / "ae"
    shutil.copytree(ae_dir, ae)
    write_manifest(ae, data)
    run = tmp_path / "run"
    train(tiny_config(model=LATENT_UNET, autoencoder=str(ae), max_steps=2), data, run)
    assert (run / "vae" / "provenance" / "manifest.jsonl").read_text() == \
        (ae / "provenance" / "manifest.jsonl").read_text()
    assert verify_provenance(run, data) == []
    assert check_pipeline(run, full=True).recorded > 0
    record = json.loads((run / "checksums.json").read_text())["files"]
    assert "vae/provenance/manifest.jsonl" in record  # an edit to the copy is caught as damage


def test_the_autoencoder_loss_is_the_reconstruction_error_plus_the_weighted_kl(data) -> None:
    from pddlib.autoencoder import autoencoder_loss, build_autoencoder

    vae = build_autoencoder(TINY_AE)
    x = to_tensor(data["image"], 16)[:4]
    post = vae.encode(x).latent_dist
    z = post.mean + post.std * torch.randn(post.mean.shape,
                                           generator=torch.Generator().manual_seed(3))
    kl = 0.5 * (post.mean ** 2 + post.var - 1 - post.logvar).sum(dim=(1, 2, 3)).mean()
    expected = ((vae.decode(z).sample - x) ** 2).mean() + 0.5 * kl
    got = autoencoder_loss(vae, x, 0.5, torch.Generator().manual_seed(3))
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)


def test_a_course_autoencoder_is_trained_once_with_its_record_and_manifest(tmp_path,
                                                                          capsys) -> None:
    from pddlib.autoencoder import training_record
    from pddlib.data import load_images
    from pddlib.provenance import read_manifest, verify_manifest
    from pddlib.trained import trained_autoencoder

    folder = trained_autoencoder(TINY_AE, root=tmp_path)
    assert folder.parent == tmp_path and folder.name.startswith("autoencoder-")
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no partial folder left
    record = training_record(folder)
    assert record["config"]["steps"] == 2 and record["seconds"] > 0
    assert 0 < record["heldout_rms_pixel_error"] < 1
    assert record["heldout_fd_pdshape_of_reconstructions"] > 0
    assert "openclipart train split" in record["data"]
    rows = read_manifest(folder)
    assert [r["sha1"] for r in rows] == load_images("openclipart", split="train")["sha1"]
    assert verify_manifest(rows) == []
    assert load_autoencoder(folder).config.latent_channels == 4

    weights = folder / "diffusion_pytorch_model.safetensors"
    before = weights.stat().st_mtime_ns
    capsys.readouterr()
    assert trained_autoencoder(TINY_AE, root=tmp_path) == folder
    assert "trained earlier" in capsys.readouterr().out
    assert weights.stat().st_mtime_ns == before
    # Another config is another folder; an interrupted one (no training.json) trains again.
    other = trained_autoencoder(replace(TINY_AE, seed=1), root=tmp_path)
    assert other != folder
    (other / "training.json").unlink()
    trained_autoencoder(replace(TINY_AE, seed=1), root=tmp_path)
    assert (other / "training.json").is_file()
    assert "Training an autoencoder" in capsys.readouterr().out


def test_a_roundtrip_through_the_autoencoder_softens_images_as_a_latent_sample_is() -> None:
    from pddlib.autoencoder import roundtrip
    from pddlib.data import load_images
    from pddlib.data.transforms import as_uint8

    vae = load_autoencoder("pd-ae32")
    held = as_uint8(load_images("openclipart", split="heldout").select(range(16)), size=32)
    out = roundtrip(vae, held)
    assert out.dtype == np.uint8 and out.shape == held.shape
    rms = np.sqrt((((out.astype(float) - held) / 255) ** 2).mean())
    assert 0 < rms < 0.1  # changed (softened), yet the same drawings
    sharp = np.abs(np.diff(held.astype(float), axis=2)).mean()
    soft = np.abs(np.diff(out.astype(float), axis=2)).mean()
    assert soft < sharp  # fewer hard edges: what pixel distance punishes a sample for
