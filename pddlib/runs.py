"""The layout of a model folder, in one place: every file name a run folder holds is spelled here.

    <run>/model_index.json, unet/, scheduler/   the EMA pipeline (diffusers `from_pretrained`)
    <run>/vae/ (+ training.json)                a latent model's autoencoder and its record
    <run>/train_config.json                     the TrainConfig as JSON
    <run>/loss.jsonl                            one line per optimizer step: step, loss, lr, seconds
    <run>/checkpoints/step-NNNNNN/              resumable state (pddlib.checkpoint): unet/,
                                                ema.safetensors, optimizer.safetensors, state.json
    <run>/samples/step-NNNNNN.png               the trainer's sample grids
    <run>/provenance/manifest.jsonl, compute.jsonl   training images and licences; compute
    <run>/metrics.json, README.md               measurements, model card
    <run>/checksums.json, <checkpoint>/checksums.json   size and SHA-256 of the files written
                                                (pddlib.checksums): a copy can prove it is whole

A test (tests/test_structure.py) fails when one of these names is spelled outside this module.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pddlib.files import atomic_write

PIPELINE_INDEX = "model_index.json"
UNET = "unet"
SCHEDULER = "scheduler"
VAE = "vae"
UNET_WEIGHTS = f"{UNET}/diffusion_pytorch_model.safetensors"  # in a run and in a checkpoint
TRAINING_RECORD = "training.json"  # how an autoencoder folder was made
CONFIG_FILE = "train_config.json"
LOSS_LOG = "loss.jsonl"
CHECKPOINTS = "checkpoints"
CHECKPOINT_STATE = "state.json"  # written last: a checkpoint folder with it is complete
EMA_WEIGHTS = "ema.safetensors"
OPTIMIZER_STATE = "optimizer.safetensors"
SAMPLES = "samples"
PROVENANCE = "provenance"
MANIFEST = f"{PROVENANCE}/manifest.jsonl"
COMPUTE = f"{PROVENANCE}/compute.jsonl"
DATASET_RECORD = f"{PROVENANCE}/dataset.json"  # the trainer's fingerprint of its data
METRICS = "metrics.json"
CARD = "README.md"
CHECKSUMS = "checksums.json"  # size and SHA-256 of each file, written with them
# Weight files in pickle-based formats: unpickling runs code from the file, so none is loaded.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
# Files that are code: a model folder holding one is refused whole, and nothing of it is imported.
CODE_SUFFIXES = (".py", ".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib")


def runs_dir() -> Path:
    """Where course runs live: $PDD_RUNS, else runs/ at the repository root, else ./runs."""
    if os.environ.get("PDD_RUNS"):
        return Path(os.environ["PDD_RUNS"])
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "notebooks").is_dir() and (folder / "pddlib").is_dir():
            return folder / "runs"
    return Path("runs")


def step_name(step: int) -> str:
    """The folder / file stem of a step: step-000200."""
    return f"step-{step:06d}"


def step_of(path: str | Path) -> int:
    """The step a checkpoint folder or sample grid belongs to (inverse of step_name)."""
    stem = Path(path).name.split(".")[0]
    if not stem.startswith("step-") or not stem[5:].isdigit():
        raise ValueError(f"{path} is not named like a training step (step-NNNNNN).")
    return int(stem[5:])


def checkpoint_dir(run: str | Path, step: int) -> Path:
    """Where the checkpoint of `step` lives."""
    return Path(run) / CHECKPOINTS / step_name(step)


def checkpoints(run: str | Path) -> list[Path]:
    """The complete checkpoint folders of a run, oldest first (a complete one has state.json)."""
    return [p.parent for p in sorted((Path(run) / CHECKPOINTS).glob(f"step-*/{CHECKPOINT_STATE}"))]


def latest_checkpoint(run: str | Path) -> Path | None:
    """The newest complete checkpoint folder of a run, or None."""
    done = checkpoints(run)
    return done[-1] if done else None


def trained_steps(run: str | Path) -> int:
    """Steps of the newest complete checkpoint (0 when there is none)."""
    ckpt = latest_checkpoint(run)
    return step_of(ckpt) if ckpt else 0


def sample_grid_path(run: str | Path, step: int) -> Path:
    """Where the trainer saves its sample grid of `step`."""
    return Path(run) / SAMPLES / f"{step_name(step)}.png"


def sample_grids(run: str | Path) -> list[Path]:
    """The trainer's sample grids, oldest first."""
    return sorted((Path(run) / SAMPLES).glob("step-*.png"))


def has_pipeline(run: str | Path) -> bool:
    """Whether the folder holds a saved pipeline (written at the first checkpoint)."""
    return (Path(run) / PIPELINE_INDEX).is_file()


def write_config(run: str | Path, config: dict) -> Path:
    """Write train_config.json."""
    return atomic_write(Path(run) / CONFIG_FILE, json.dumps(config, indent=1))


def read_config(run: str | Path) -> dict:
    """The run's train_config.json as a dict."""
    path = Path(run) / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{run} is not a model folder written by `pddlib train` "
                                f"(no {CONFIG_FILE}); point at the folder `--out` named.")
    return json.loads(path.read_text("utf-8"))


def read_loss_log(run: str | Path) -> list[dict]:
    """The loss log of a run: [{"step", "loss", "lr", "seconds"}, ...]."""
    path = Path(run) / LOSS_LOG
    if not path.is_file():
        return []
    return [json.loads(ln) for ln in path.read_text("utf-8").splitlines() if ln.strip()]


def trim_loss_log(run: str | Path, step: int) -> None:
    """Drop log lines past `step` (a resumed run recomputes them)."""
    kept = [json.dumps(r) for r in read_loss_log(run) if r["step"] <= step]
    atomic_write(Path(run) / LOSS_LOG, "".join(ln + "\n" for ln in kept))


def training_seconds(run: str | Path, upto: int | None = None) -> float:
    """Seconds spent in training steps (up to step `upto`), summed over resumed sessions."""
    total, last = 0.0, 0.0
    for row in read_loss_log(run):
        if upto is not None and row["step"] > upto:
            break
        if row["seconds"] < last:  # each resumed session restarts its clock
            total += last
        last = row["seconds"]
    return total + last
