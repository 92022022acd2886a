"""Weights files in the torch hub cache: where each belongs, and the one explicit download step.

pddlib loads third-party weights (FID Inception, SSCD) only from this cache and never downloads
them by itself; `download` is what `pddlib eval --prefetch-weights` and friends call online.
"""

from __future__ import annotations

from pathlib import Path

import torch


def hub_checkpoint(filename: str) -> Path:
    """<torch hub dir>/checkpoints/<filename> ($TORCH_HOME/hub, by default ~/.cache/torch/hub)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / filename


def download(url: str, filename: str, *, hash_prefix: str | None = None,
             progress: bool = True) -> Path:
    """Download url into the hub cache as filename (checking the sha256 prefix); return the path."""
    path = hub_checkpoint(filename)
    path.parent.mkdir(parents=True, exist_ok=True)
    # download_url_to_file writes to a temporary file and checks the hash before moving it.
    torch.hub.download_url_to_file(url, str(path), hash_prefix=hash_prefix, progress=progress)
    return path
