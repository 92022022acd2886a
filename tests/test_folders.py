"""Model folders and checkpoints as untrusted input, on real folders on disk: every damaged or
partial folder is refused in one line naming the folder, the part and what to do, before
diffusers reads it; checkpoints and pipeline folders carry a record that proves them whole."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pddlib import cli
from pddlib.autoencoder import autoencoder_folder, load_autoencoder
from pddlib.checkpoint import DamagedCheckpointWarning
from pddlib.folders import (
    DamagedFolder,
    check_checkpoint,
    check_folder,
    check_pipeline,
    loaded,
)
from pddlib.pipeline import PDDiffusionPipeline
from pddlib.recipes import tiny_config, tiny_latent_config
from pddlib.runs import read_loss_log
from pddlib.training import train

UNET_WEIGHTS = "unet/diffusion_pytorch_model.safetensors"
STEP2, STEP4 = "checkpoints/step-000002", "checkpoints/step-000004"


@pytest.fixture(scope="module")
def latent(data, tmp_path_factory) -> Path:
    """A tiny latent model (on the shipped autoencoder) trained 2 steps: the course's kind."""
    out = tmp_path_factory.mktemp("runs") / "latent"
    train(tiny_latent_config(max_steps=2, checkpoint_every=2, batch_size=4), data, out)
    return out


@pytest.fixture(scope="module")
def four_steps(data, tmp_path_factory) -> Path:
    """A tiny pixel run of 4 steps with checkpoints at steps 2 and 4."""
    out = tmp_path_factory.mktemp("runs") / "four"
    train(tiny_config(max_steps=4, checkpoint_every=2, batch_size=4), data, out)
    return out


def copy(run: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(run, tmp_path / name))


def cut(path: Path, keep: float = 0.5) -> None:
    """Cut a file short, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def edit_json(path: Path, **changes) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=2))


def refused_by_the_cli(folder: Path, tmp_path: Path, capsys, *command: str) -> str:
    """Run `pddlib sample` (or `command`) on folder; assert one error line and no output."""
    grid = tmp_path / "grid.png"
    argv = list(command) or ["sample", "--n", "1", "--steps", "1", "--out", str(grid)]
    capsys.readouterr()
    assert cli.main([*argv, "--model", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "trust_remote_code" not in err
    assert not grid.exists()
    return err


def other_unet_config(folder: Path) -> None:
    """The UNet's config of another model (wider), beside these weights."""
    edit_json(folder / "unet" / "config.json",
              block_out_channels=[2 * c for c in json.loads(
                  (folder / "unet" / "config.json").read_text())["block_out_channels"]])


DAMAGE = {
    "a part missing": (lambda f: (f / UNET_WEIGHTS).unlink(), f"{UNET_WEIGHTS} is missing"),
    "a part cut short": (lambda f: cut(f / UNET_WEIGHTS), f"{UNET_WEIGHTS} is cut short"),
    "the autoencoder cut short": (lambda f: cut(f / "vae" / "diffusion_pytorch_model.safetensors"),
                                  "vae/diffusion_pytorch_model.safetensors is cut short"),
    "a header cut short": (lambda f: cut(f / UNET_WEIGHTS, 0.0001),
                           f"{UNET_WEIGHTS} is cut short"),
    "a malformed config": (lambda f: (f / "unet" / "config.json").write_text('{"in_channels": 4,'),
                           "unet/config.json is not valid JSON"),
    "a malformed index": (lambda f: cut(f / "model_index.json"), "model_index.json is not valid JSON"),
    "a malformed scheduler": (lambda f: (f / "scheduler" / "scheduler_config.json").write_text("["),
                              "scheduler/scheduler_config.json is not valid JSON"),
    "a latent model without its autoencoder": (
        lambda f: shutil.rmtree(f / "vae"), "vae/ is missing: this latent model needs its autoencoder"),
    "an index leaving the autoencoder out": (
        lambda f: edit_json(f / "model_index.json", vae=[None, None]),
        "model_index.json leaves out the autoencoder this latent model needs ('pd-ae32'"),
    "weights of another model": (other_unet_config,
                                 f"{UNET_WEIGHTS} holds weights of another shape than "
                                 "unet/config.json describes"),
    "a Git LFS pointer": (lambda f: (f / UNET_WEIGHTS).write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n"),
        f"{UNET_WEIGHTS} is a Git LFS pointer, not the weights; fetch the weights with `git lfs"),
}


@pytest.mark.parametrize("case", DAMAGE)
def test_a_damaged_or_partial_folder_is_refused_in_one_line_before_diffusers_reads_it(
        case, latent, tmp_path, capsys) -> None:
    damage, said = DAMAGE[case]
    folder = copy(latent, tmp_path)
    damage(folder)
    with pytest.raises(DamagedFolder) as refused:
        PDDiffusionPipeline.from_run(folder)
    message = str(refused.value)
    assert message.startswith(f"{folder}: {said}") and "\n" not in message
    assert "LFS" in case or message.endswith("re-copy the folder from where it came, or train "
                                             "it again.")
    assert refused.value.__cause__ is None  # refused by the check, not by a failed load
    err = refused_by_the_cli(folder, tmp_path, capsys)
    assert err == f"pddlib sample: error: {message}\n"
    assert refused_by_the_cli(folder, tmp_path, capsys, "check").startswith(
        f"pddlib check: error: {folder}: {said}")
    assert refused_by_the_cli(folder, tmp_path, capsys, "card") == f"pddlib card: error: {message}\n"


def test_a_run_records_its_files_and_a_copy_proves_whole(latent, tmp_path, capsys) -> None:
    folder = copy(latent, tmp_path)
    record = json.loads((folder / "checksums.json").read_text())["files"]
    assert set(record) == {"model_index.json", "train_config.json", "scheduler/scheduler_config.json",
                           "unet/config.json", UNET_WEIGHTS, "vae/config.json",
                           "vae/diffusion_pytorch_model.safetensors", "vae/training.json",
                           "vae/provenance/manifest.jsonl"}  # pd-ae32's own training images
    weights = (folder / UNET_WEIGHTS).read_bytes()
    assert record[UNET_WEIGHTS] == {"size": len(weights),
                                    "sha256": hashlib.sha256(weights).hexdigest()}
    ckpt = json.loads((folder / STEP2 / "checksums.json").read_text())["files"]
    assert set(ckpt) == {"state.json", "ema.safetensors", "optimizer.safetensors",
                         "unet/config.json", UNET_WEIGHTS}
    assert cli.main(["check", "--model", str(folder)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{folder}: a pipeline: its parts, configs and weight headers check out, and "
                   "the 9 files its record lists match in size and SHA-256",
                   f"{folder / STEP2}: a checkpoint: its parts, configs and weight headers check "
                   "out, and the 5 files its record lists match in size and SHA-256"]
    assert check_folder(folder / STEP2).kind == "checkpoint"
    assert check_folder(folder / "vae").kind == "autoencoder"


def test_every_load_compares_sizes_and_only_check_compares_hashes(model, tmp_path,
                                                                    capsys) -> None:
    folder = copy(model, tmp_path)
    path = folder / UNET_WEIGHTS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit-pattern in the last weight: same size, same header
    path.write_bytes(bytes(data))
    assert check_pipeline(folder).recorded == 5  # the fast check reads headers and sizes only
    PDDiffusionPipeline.from_run(folder)
    err = refused_by_the_cli(folder, tmp_path, capsys, "check")
    assert err == (f"pddlib check: error: {folder}: {UNET_WEIGHTS} differs from the file that was "
                   "written (its SHA-256 does not match checksums.json); re-copy the folder from "
                   "where it came, or train it again.\n")
    (folder / "train_config.json").write_text("{}")  # a changed size shows on every load
    with pytest.raises(DamagedFolder, match=r"train_config.json holds 2 of the \d+ bytes it was "
                                            r"written with \(cut short, or changed since\)"):
        PDDiffusionPipeline.from_run(folder)


def test_an_old_folder_without_records_loads_resumes_and_says_what_was_checked(
        data, model, tmp_path, capsys) -> None:
    folder = copy(model, tmp_path)
    for record in folder.rglob("checksums.json"):
        record.unlink()
    assert PDDiffusionPipeline.from_run(folder).class_names
    assert cli.main(["check", "--model", str(folder)]) == 0
    assert "it keeps no record of its files" in capsys.readouterr().out
    config = tiny_config(max_steps=4, checkpoint_every=2, batch_size=4)
    old = copy(folder, tmp_path, "old")
    assert train(config, data, old, resume=True).resumed_from == 2
    # Without a record a checkpoint is still checked: its safetensors headers and shapes.
    cut(folder / STEP2 / "ema.safetensors")
    with pytest.raises(ValueError, match=r"none of its checkpoints is intact \(step-000002: "
                                         r"ema.safetensors is cut short"):
        train(config, data, folder, resume=True)


def test_resume_passes_over_a_checkpoint_cut_short_bit_identically(data, four_steps,
                                                                   tmp_path) -> None:
    config = tiny_config(max_steps=4, checkpoint_every=2, batch_size=4)
    damaged, direct = copy(four_steps, tmp_path, "damaged"), copy(four_steps, tmp_path, "direct")
    cut(damaged / STEP4 / "optimizer.safetensors", 0.9)
    shutil.rmtree(direct / STEP4)  # resuming from step 2 directly
    with pytest.warns(DamagedCheckpointWarning) as warned:
        assert train(config, data, damaged, resume=True).resumed_from == 2
    said = str(warned[0].message)
    assert said.startswith(f"{damaged}: passed over 1 damaged checkpoint(s) (step-000004: "
                           "optimizer.safetensors is cut short (")
    assert said.endswith("); resuming from step-000002, the newest intact one (the next "
                         "checkpoint written deletes them).")
    assert train(config, data, direct, resume=True).resumed_from == 2
    for name in (UNET_WEIGHTS, f"{STEP4}/ema.safetensors", f"{STEP4}/optimizer.safetensors"):
        a, b = load_file(damaged / name), load_file(direct / name)
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert [r["loss"] for r in read_loss_log(damaged)] == [r["loss"] for r in read_loss_log(direct)]
    assert check_checkpoint(damaged / STEP4).recorded == 5  # written again, whole


def test_a_checkpoint_copied_without_its_state_is_passed_over(data, four_steps,
                                                              tmp_path) -> None:
    folder = copy(four_steps, tmp_path)
    (folder / STEP4 / "state.json").unlink()
    with pytest.warns(DamagedCheckpointWarning, match=r"step-000004: state.json is missing\); "
                                                      "resuming from step-000002"):
        train(tiny_config(max_steps=4, checkpoint_every=2, batch_size=4), data, folder,
              resume=True)


def test_resume_refuses_in_one_line_when_no_checkpoint_is_intact(data, four_steps,
                                                                 tmp_path) -> None:
    folder = copy(four_steps, tmp_path)
    cut(folder / STEP4 / UNET_WEIGHTS)
    (folder / STEP2 / "state.json").write_text('{"step": 2')
    log = (folder / "loss.jsonl").read_text()
    with pytest.raises(ValueError) as refused:
        train(tiny_config(max_steps=6, checkpoint_every=2, batch_size=4), data, folder,
              resume=True)
    message = str(refused.value)
    assert message.startswith(f"Cannot resume {folder}: none of its checkpoints is intact "
                              f"(step-000004: {UNET_WEIGHTS} is cut short")
    assert "step-000002: state.json is not valid JSON" in message and "\n" not in message
    assert message.endswith("Re-copy the run folder from where it came, or train into a new "
                            "output folder.")
    assert (folder / "loss.jsonl").read_text() == log  # nothing trained, nothing rewritten
    assert check_pipeline(folder, full=True).recorded == 5


def test_raw_weights_come_only_from_a_whole_checkpoint(four_steps, tmp_path, capsys) -> None:
    folder = copy(four_steps, tmp_path)
    PDDiffusionPipeline.from_run(folder, weights="raw")
    cut(folder / STEP4 / "ema.safetensors")
    PDDiffusionPipeline.from_run(folder)  # the EMA pipeline is whole
    with pytest.raises(DamagedFolder, match=rf"^{folder / STEP4}: ema.safetensors is cut short"):
        PDDiffusionPipeline.from_run(folder, weights="raw")
    # `pddlib check`: the model itself is whole; the damaged checkpoint is named on stderr.
    capsys.readouterr()
    assert cli.main(["check", "--model", str(folder)]) == 1
    captured = capsys.readouterr()
    assert f"{folder}: a pipeline" in captured.out and f"{folder / STEP2}: a checkpoint" in captured.out
    assert captured.err.startswith(f"pddlib check: warning: {folder / STEP4}: ")
    assert captured.err.count("\n") == 1


AE_DAMAGE = {
    "cut short": (lambda f: cut(f / "diffusion_pytorch_model.safetensors"),
                  "diffusion_pytorch_model.safetensors is cut short"),
    "a malformed config": (lambda f: (f / "config.json").write_text("{]"),
                           "config.json is not valid JSON"),
    "a malformed record": (lambda f: (f / "training.json").write_text("{"),
                           "training.json is not valid JSON"),
    "another model's config": (lambda f: edit_json(f / "config.json", latent_channels=8),
                               "diffusion_pytorch_model.safetensors holds weights of another shape"),
}


@pytest.mark.parametrize("case", AE_DAMAGE)
def test_a_damaged_autoencoder_folder_is_refused_in_one_line(case, tmp_path) -> None:
    damage, said = AE_DAMAGE[case]
    folder = Path(shutil.copytree(autoencoder_folder("pd-ae32"), tmp_path / "ae"))
    assert load_autoencoder(folder).config.latent_channels == 4
    damage(folder)
    with pytest.raises(DamagedFolder) as refused:
        load_autoencoder(folder)
    assert str(refused.value).startswith(f"{folder}: {said}")
    assert str(refused.value).endswith("re-copy the folder from where it came, or train it again.")


def test_what_diffusers_still_refuses_is_one_line_that_never_advises_running_code(
        tmp_path) -> None:
    def load() -> None:  # what diffusers says of a folder with custom code
        raise ValueError("The repository for x contains custom code which must be executed to "
                         "correctly load the model.\nPlease pass the argument "
                         "`trust_remote_code=True` to allow custom code to be run.")

    with pytest.raises(DamagedFolder) as refused:
        loaded(tmp_path, load)
    assert str(refused.value) == (f"{tmp_path}: could not be loaded by diffusers (ValueError: it "
                                  "asks to run code that came with the folder); re-copy the "
                                  "folder from where it came, or train it again.")
