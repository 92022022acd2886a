"""Resumable checkpoints: safetensors (weights, EMA, optimizer tensors) plus JSON, never pickles.

A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves
half of one; `pddlib.runs.checkpoints` lists only complete ones (those with their state file).
Each records the size and SHA-256 of its files (pddlib.checksums), so a copy that was cut short
or altered shows: resume starts from the newest checkpoint that proves whole, says which when
it skips newer ones, and refuses in one line when none is. A checkpoint written before records
were kept is checked on its parts and safetensors headers alone.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import torch
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from pddlib.checksums import files_under, write_record
from pddlib.files import atomic_dir
from pddlib.folders import DamagedFolder, check_checkpoint
from pddlib.runs import (
    CHECKPOINT_STATE,
    CHECKPOINTS,
    EMA_WEIGHTS,
    OPTIMIZER_STATE,
    UNET,
    UNET_WEIGHTS,
    checkpoint_dir,
)


def save_checkpoint(run: Path, step: int, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
                    ema: EMAModel, state: dict, keep: int) -> Path:
    """Write checkpoints/step-NNNNNN atomically (pddlib.files.atomic_dir); prune old ones."""
    final = checkpoint_dir(run, step)
    with atomic_dir(final) as tmp:
        unet.save_pretrained(tmp / UNET)  # raw weights, safetensors
        names = [name for name, _ in unet.named_parameters()]
        save_file({n: s.detach().cpu().contiguous() for n, s in zip(names, ema.shadow_params, strict=True)},
                  tmp / EMA_WEIGHTS)
        opt = optimizer.state_dict()
        save_file({f"{i}.{k}": v.detach().cpu().contiguous() for i, st in opt["state"].items()
                   for k, v in st.items()}, tmp / OPTIMIZER_STATE)
        ema_meta = {k: v for k, v in ema.state_dict().items() if k != "shadow_params"}
        state = {**state, "step": step, "ema": ema_meta,
                 "optimizer": {"param_groups": opt["param_groups"]}}
        (tmp / CHECKPOINT_STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        # Last: it vouches for every file above.
        write_record(tmp, files_under(tmp, [UNET, EMA_WEIGHTS, OPTIMIZER_STATE, CHECKPOINT_STATE]))
    found = sorted((Path(run) / CHECKPOINTS).glob("step-*"))
    older = [p for p in found if p.name <= final.name]
    # A newer one was passed over as damaged when this run resumed: kept, it would crowd out an
    # intact one from the `keep` newest.
    for old in [p for p in found if p.name > final.name] + older[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(ckpt: Path) -> dict:
    """A checkpoint's state.json."""
    return json.loads((ckpt / CHECKPOINT_STATE).read_text(encoding="utf-8"))


class DamagedCheckpointWarning(UserWarning):
    """Resuming passed over newer checkpoints that are damaged (named, with what is wrong)."""


def checkpoint_folders(run: str | Path) -> list[Path]:
    """Every step-NNNNNN folder of a run, complete or not, oldest first."""
    return sorted(p for p in (Path(run) / CHECKPOINTS).glob("step-*") if p.is_dir())


def newest_intact(run: str | Path) -> Path:
    """The newest checkpoint that proves whole (hashes, or headers when it has no record).

    Warns (DamagedCheckpointWarning) naming each newer one passed over; refuses in one line
    when none is intact.
    """
    damaged: list[DamagedFolder] = []
    for ckpt in reversed(checkpoint_folders(run)):
        try:
            check_checkpoint(ckpt, full=True)
        except DamagedFolder as e:
            damaged.append(e)
            continue
        if damaged:
            warnings.warn(DamagedCheckpointWarning(
                f"{run}: passed over {len(damaged)} damaged checkpoint(s) ({said(damaged)}); "
                f"resuming from {ckpt.name}, the newest intact one (the next checkpoint written "
                "deletes them)."), stacklevel=2)
        return ckpt
    raise ValueError(f"Cannot resume {run}: none of its checkpoints is intact ({said(damaged)}). "
                     "Re-copy the run folder from where it came, or train into a new output "
                     "folder.")


def said(damaged: list[DamagedFolder]) -> str:
    """What is wrong with each damaged checkpoint, on one line."""
    return "; ".join(f"{e.folder.name}: {e.part} {e.problem}" for e in damaged)


def load_checkpoint(ckpt: Path, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
                    ema: EMAModel) -> dict:
    """Restore weights, optimizer and EMA from a checkpoint folder; return its state.json."""
    check_checkpoint(ckpt, full=False)  # whole and of this shape before torch reads a byte
    state = read_state(ckpt)
    unet.load_state_dict(load_file(ckpt / UNET_WEIGHTS))
    shadow = load_file(ckpt / EMA_WEIGHTS)
    names = [name for name, _ in unet.named_parameters()]
    ema.load_state_dict({**state["ema"], "shadow_params": [shadow[n] for n in names]})
    opt_state: dict[int, dict] = {}
    for key, value in load_file(ckpt / OPTIMIZER_STATE).items():
        i, name = key.split(".", 1)
        opt_state.setdefault(int(i), {})[name] = value
    groups = state["optimizer"]["param_groups"]
    for g in groups:
        g["betas"] = tuple(g["betas"])
    optimizer.load_state_dict({"state": opt_state, "param_groups": groups})
    return state
