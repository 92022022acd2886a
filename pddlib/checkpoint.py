"""Resumable checkpoints: safetensors (weights, EMA, optimizer tensors) plus JSON, never pickles.

A checkpoint is written to a temporary folder and renamed into place, so a crash never leaves
half of one; `pddlib.runs.checkpoints` lists only complete ones (those with their state file).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from diffusers import UNet2DModel
from diffusers.training_utils import EMAModel
from safetensors.torch import load_file, save_file

from pddlib.files import atomic_dir
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
    for old in sorted((Path(run) / CHECKPOINTS).glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(ckpt: Path) -> dict:
    """A checkpoint's state.json."""
    return json.loads((ckpt / CHECKPOINT_STATE).read_text(encoding="utf-8"))


def load_checkpoint(ckpt: Path, unet: UNet2DModel, optimizer: torch.optim.Optimizer,
                    ema: EMAModel) -> dict:
    """Restore weights, optimizer and EMA from a checkpoint folder; return its state.json."""
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
