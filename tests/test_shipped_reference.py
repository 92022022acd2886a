"""The reference model shipped in pddlib/weights/pd-reference, as a user gets it: the real weights."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pddlib.card import read_card_metadata
from pddlib.cli import main as cli
from pddlib.data import load_images
from pddlib.data.unlabelled import outside, with_unlabelled
from pddlib.models import CLASS_NAMES_KEY
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.provenance import (
    EMBEDDED_SETS,
    manifest_rows,
    read_manifest,
    read_metrics,
    verify_manifest,
    verify_provenance,
)
from pddlib.reference import check_shipped, release_tag, shipped_folder, working_copy
from pddlib.runs import UNET_WEIGHTS

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 10 * 2**20  # the shipped UNet may not exceed 10 MB


@pytest.fixture
def offline_runs(tmp_path, monkeypatch) -> Path:
    """No network, and runs/ (where the working copy goes) in a temporary folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PDD_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def sample(pipe: PDDiffusionPipeline, seed: int) -> torch.Tensor:
    return pipe(2, class_labels=["fruit", "flag"], guidance_scale=2.0, num_inference_steps=2,
                generator=torch.Generator().manual_seed(seed), output_type="pt").images


def test_the_weights_are_fp16_safetensors_under_the_size_limit() -> None:
    unet = shipped_folder() / UNET_WEIGHTS
    assert unet.stat().st_size <= LIMIT
    assert {t.dtype for t in load_file(unet).values()} == {torch.float16}
    assert not [p for p in shipped_folder().rglob("*") if p.suffix in (".bin", ".pt", ".pkl")]


def test_it_loads_offline_by_name_and_samples_reproducibly(offline_runs) -> None:
    pipe = PDDiffusionPipeline.from_run("reference")
    assert pipe.class_names == load_images("openclipart", split="train").features["label"].names
    made = [p.name for p in offline_runs.iterdir()]  # the working copy, outside the package
    assert made == [f"pd-reference-{release_tag(shipped_folder())}"]
    first, again = sample(pipe, 0), sample(PDDiffusionPipeline.from_run("reference"), 0)
    assert torch.equal(first, again) and not torch.equal(first, sample(pipe, 1))
    assert first.shape == (2, 3, 32, 32) and 0 <= first.min() and first.max() <= 1


def test_euler_ancestral_gives_finite_images_at_every_short_step_count(offline_runs) -> None:
    """Its first step from a huge sigma once cancelled to NaN in float32 (3 steps, cosine schedule)."""
    pipe = PDDiffusionPipeline.from_run("reference").with_scheduler("euler-a")
    for steps in (2, 3, 4):
        images = pipe(2, class_labels=["fruit", "flag"], guidance_scale=4.0, num_inference_steps=steps,
                      generator=torch.Generator().manual_seed(0), output_type="pt").images
        assert torch.isfinite(images).all() and images.dtype == torch.float32, steps


def test_a_release_that_changes_only_its_card_gets_a_fresh_working_copy(tmp_path) -> None:
    shipped = tmp_path / "pd-reference"
    shutil.copytree(shipped_folder(), shipped)
    first = working_copy(shipped, tmp_path / "runs")
    assert working_copy(shipped, tmp_path / "runs") == first  # made once
    (shipped / "README.md").write_text("# a corrected card\n", encoding="utf-8")
    second = working_copy(shipped, tmp_path / "runs")
    assert second != first and (second / "README.md").read_text(encoding="utf-8") == "# a corrected card\n"


def test_the_shipped_files_prove_whole_against_their_record(offline_runs, capsys) -> None:
    checked = check_shipped(shipped_folder())  # and the autoencoder it names, pd-ae32
    assert checked.recorded == 5 and checked.hashed
    assert cli(["check", "--model", "reference"]) == 0
    shipped, copy = capsys.readouterr().out.splitlines()
    assert shipped == (f"{shipped_folder()}: shipped weights, a pipeline: its parts, configs and "
                       "weight headers check out, and the 5 files its record lists match in size "
                       "and SHA-256")
    assert copy.startswith(f"{offline_runs}/pd-reference-") and "the 9 files" in copy  # vae/ holds pd-ae32 with its manifest
    assert cli(["check", "--model", str(shipped_folder())]) == 0
    assert capsys.readouterr().out.splitlines() == [shipped]


def test_its_manifest_is_the_train_split_then_the_corpus_unlabelled_every_row_public_domain() -> None:
    rows = read_manifest(shipped_folder())
    workshop = load_images("openclipart")
    expected = with_unlabelled(load_images("openclipart", split="train"),
                               outside(load_images("pdcorpus"), workshop))
    assert rows == manifest_rows(expected)  # `pddlib train --unlabelled pdcorpus`'s data
    assert not verify_manifest(rows)
    # No held-out image among them (outside() also dropped every workshop image's twins and mirrors).
    held = load_images("openclipart", split="heldout")
    assert not {r["sha1"] for r in rows} & set(held["sha1"])
    # Its images' hashes recomputed, its data fingerprint, and pd-ae32's manifest (issue 37).
    assert verify_provenance(shipped_folder(), EMBEDDED_SETS) == []


def test_the_card_names_the_licence_the_data_and_the_measurements_truthfully() -> None:
    folder = shipped_folder()
    meta = read_card_metadata(folder / "README.md")
    assert meta["license"] == "cc0-1.0"
    card = (folder / "README.md").read_text("utf-8")
    rows = read_manifest(folder)
    assert f"{len(rows)} " in card and "public domain" in card.lower()
    metrics = read_metrics(folder)
    judged = metrics["FD-pdshape"]
    unet_config = json.loads((folder / "unet" / "config.json").read_text())
    assert judged["n_generated"] >= 256 and set(judged["per_class"]) == set(
        unet_config[CLASS_NAMES_KEY])
    assert f"{judged['value']:.3f}" in card and "replication" in metrics
    assert "## Looked at, class by class" in card and "autoencoder `pd-ae32`" in card
    config = json.loads((folder / "train_config.json").read_text())
    assert f"--max-steps {config['max_steps']}" in card or "cpu-reference" in card


def test_the_command_line_samples_and_judges_it_offline(offline_runs, tmp_path, capsys) -> None:
    before = read_metrics(shipped_folder())
    grid = tmp_path / "grid.png"
    assert cli(["sample", "--model", "reference", "--n", "2", "--steps", "2", "--out", str(grid)]) == 0
    assert grid.stat().st_size > 0
    capsys.readouterr()
    assert cli(["eval", "--model", "reference", "--n", "16", "--steps", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["per_class"]) >= {"fruit", "flag"} and result["n"] == 16
    assert read_metrics(shipped_folder()) == before  # measured into the working copy only


def test_the_wheel_colab_installs_carries_every_shipped_file(tmp_path) -> None:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "pddlib", src / "pddlib", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp_path / "dist"), str(src)], check=True)
    wheel = zipfile.ZipFile(next((tmp_path / "dist").glob("pddlib-*.whl")))
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "pddlib" / "weights").rglob("*")
               if p.is_file()}
    assert shipped - set(wheel.namelist()) == set()
    assert "pddlib/weights/pd-reference/unet/diffusion_pytorch_model.safetensors" in shipped
