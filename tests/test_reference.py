"""Shipping a run as reference weights and rebuilding a run folder from them (tiny models)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pddlib.card import read_card_metadata
from pddlib.data import load_images
from pddlib.folders import DamagedFolder
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.provenance import read_manifest, read_metrics, verify_manifest
from pddlib.recipes import tiny_latent_config
from pddlib.reference import check_shipped, ship, working_copy
from pddlib.runs import UNET_WEIGHTS
from pddlib.training import train
from scripts.ship_reference import main as ship_reference


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny latent model trained on 24 images of the embedded set's train split."""
    out = tmp_path_factory.mktemp("run") / "latent"
    train(tiny_latent_config(max_steps=4, checkpoint_every=4, sample_every=4),
          load_images("openclipart", split="train").select(range(24)), out)
    return out


def sample(pipe: PDDiffusionPipeline, seed: int = 0) -> torch.Tensor:
    return pipe(4, class_labels=[0, 1, 0, 1], guidance_scale=2.0, num_inference_steps=2,
                generator=torch.Generator().manual_seed(seed), output_type="pt").images


def test_shipped_form_is_fp16_without_checkpoints_or_autoencoder(run, tmp_path) -> None:
    shipped = ship(run, tmp_path / "pd-test")
    assert {p.name for p in shipped.iterdir()} == {"model_index.json", "unet", "scheduler",
                                                   "train_config.json", "loss.jsonl", "samples",
                                                   "provenance", "checksums.json"}
    assert {t.dtype for t in load_file(shipped / UNET_WEIGHTS).values()} == {torch.float16}
    raw = (run / UNET_WEIGHTS).stat().st_size
    assert (shipped / UNET_WEIGHTS).stat().st_size < 0.55 * raw
    assert [p.name for p in tmp_path.iterdir()] == ["pd-test"]  # no partial folder left


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


def test_a_working_copy_is_made_only_from_shipped_files_that_prove_whole(run, tmp_path) -> None:
    shipped = ship(run, tmp_path / "pd-test")
    checked = check_shipped(shipped)
    assert checked.recorded == 5 and checked.hashed  # index, configs and the fp16 UNet
    weights = shipped / UNET_WEIGHTS
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # same size, same header: only the shipped SHA-256 tells
    weights.write_bytes(bytes(data))
    with pytest.raises(DamagedFolder) as refused:
        working_copy(shipped, tmp_path / "runs")
    assert str(refused.value) == (
        f"{shipped}: {UNET_WEIGHTS} differs from the file that was written (its SHA-256 does not "
        "match checksums.json); reinstall pddlib (or re-clone its repository) to get the shipped "
        "files back.")
    assert not list((tmp_path / "runs").glob("*"))  # nothing copied
    shipped = ship(run, tmp_path / "pd-test")
    copy = working_copy(shipped, tmp_path / "runs")
    (copy / "vae" / "config.json").write_text("{")
    with pytest.raises(DamagedFolder, match=rf"^{copy}: vae/config.json is not valid JSON .*; "
                                            rf"delete {copy}, and the next use makes it again.$"):
        working_copy(shipped, tmp_path / "runs")
    shutil.rmtree(copy)
    assert working_copy(shipped, tmp_path / "runs") == copy


def test_ship_script_measures_the_fp16_weights_and_writes_a_truthful_card(run, tmp_path,
                                                                           capsys) -> None:
    out = tmp_path / "pd-test"
    assert ship_reference([str(run), "--out", str(out), "--n", "16", "--steps", "2",
                           "--looked", "**Recognisable:** circles."]) == 0
    assert "shipped" in capsys.readouterr().out
    metrics = read_metrics(out)
    assert {"FD-pdshape", "replication"} <= set(metrics)
    rows = read_manifest(out)
    assert len(rows) == 24 and not verify_manifest(rows)
    meta = read_card_metadata(out / "README.md")
    assert meta["license"] == "cc0-1.0"
    card = (out / "README.md").read_text("utf-8")
    assert "24" in card and "public domain" in card.lower()
    assert card.startswith("---") and "# pd-reference" in card  # named as shipped, not as the copy
    assert "## Reproduce" in card and "--max-steps 4 --seed 0" in card
    assert "## Looked at, class by class\n\n**Recognisable:** circles." in card
    # The shipped folder has no vae/: the snippet loads it by name, autoencoder and all.
    assert 'pipe = PDDiffusionPipeline.from_run("reference")' in card
    assert "from_pretrained" not in card and "`vae/`" not in card
    # After a look at the grid: a new verdict, the card rewritten, nothing measured again.
    assert ship_reference([str(run), "--out", str(out), "--card-only",
                           "--looked", "**Partly:** squares."]) == 0
    after = read_metrics(out)
    assert after.pop("looked")["text"] == "**Partly:** squares."  # the verdict is recorded
    assert after == {k: v for k, v in metrics.items() if k != "looked"}
    assert "**Partly:** squares." in (out / "README.md").read_text()


def test_notebooks_explore_your_model_else_the_reference(run, tmp_path, capsys) -> None:
    from pddlib.trained import explore_model

    shipped = ship(run, tmp_path / "pd-test")
    runs = tmp_path / "runs"
    pipe, folder = explore_model(fast=True, root=runs, reference=shipped)
    assert folder == working_copy(shipped, runs)
    assert "Exploring the reference model" in capsys.readouterr().out
    assert torch.equal(sample(pipe), sample(PDDiffusionPipeline.from_run(folder)))
    # Without shipped weights the course model is trained; once it is finished it wins.
    _, yours = explore_model(fast=True, root=runs, reference=tmp_path / "none")
    assert yours.name.startswith("course-") and "Exploring your course model" in capsys.readouterr().out
    _, again = explore_model(fast=True, root=runs, reference=shipped)
    assert again == yours
