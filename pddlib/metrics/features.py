"""Feature extraction for the metrics: any image collection -> (N, D) vectors, batched, cached.

Image collections: a `datasets.Dataset` with an "image" column (the common schema), a list of
PIL images, or uint8 arrays / tensors (N, H, W, 3). Feature spaces come by name from the registry
(pddlib.metrics.spaces), among them:
  "pdshape"   the default judge (pddlib.metrics.judge; penultimate layer, 128-d) at 32 px: offline;
  "pdcls"     a second judge, kept to compare (it keys on colour and layout);
  "inception" the standard FID InceptionV3 (pool3, 2048-d): needs its weights in the torch cache;
  "pixel", "pdcopy", "sscd"   the replication spaces (pddlib.metrics.replication).
Features of real sets can be cached on disk, keyed by the images' content and the network.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from pddlib.data.transforms import as_uint8
from pddlib.defaults import DEFAULT_JUDGE
from pddlib.files import atomic_path
from pddlib.metrics.featurespace import Extractor, FeatureSpace
from pddlib.metrics.spaces import get_space
from pddlib.progress import progress_bar


def fingerprint(images_uint8: np.ndarray) -> str:
    """Content hash (16 hex digits) of a uint8 image array: shape and pixels."""
    h = hashlib.sha256(repr(images_uint8.shape).encode())
    h.update(np.ascontiguousarray(images_uint8).tobytes())
    return h.hexdigest()[:16]


def cache_dir() -> Path:
    """Folder for cached features: $PDD_CACHE_DIR, else $XDG_CACHE_HOME/pddlib, else ~/.cache/pddlib."""
    root = os.environ.get("PDD_CACHE_DIR")
    if root:
        return Path(root) / "features"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "pddlib" / "features"


# Loaded feature maps by (space, device): a network is loaded once per process and device.
_EXTRACTORS: dict[tuple[FeatureSpace, str], Extractor] = {}


def get_extractor(features: str = DEFAULT_JUDGE, device: str | torch.device | None = None) -> Extractor:
    """The feature map of the space called `features` (pddlib.metrics.spaces), loaded once per device."""
    space = get_space(features)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if (space, str(dev)) not in _EXTRACTORS:
        _EXTRACTORS[(space, str(dev))] = space.load(dev)
    return _EXTRACTORS[(space, str(dev))]


def extract_features(
    images,
    features: str = DEFAULT_JUDGE,
    *,
    size: int | None = None,
    device: str | torch.device | None = None,
    cache: bool = False,
    progress: bool = True,
) -> np.ndarray:
    """Features (N, D) of an image collection (float32; pixels float64), in batches, with a bar.

    size: bring every image to size x size first (square-padded on white) -- a space with a
    size of its own (the judges' 32 px) always uses that. cache: reuse / store the result under
    cache_dir(), keyed by the pixels' hash and the network (use it for fixed real sets, not for
    fresh samples; spaces without a cache key are never cached).
    """
    ext = get_extractor(features, device)
    arr = as_uint8(images, size=ext.size or size)
    cache = cache and ext.key is not None
    path = cache_dir() / f"{ext.key}-{fingerprint(arr)}.npy"
    if cache and path.is_file():
        return np.load(path, allow_pickle=False)
    out = []
    with progress_bar(total=len(arr), desc=f"features ({features})", unit="img",
                      disable=not progress or len(arr) == 0) as bar:
        for i in range(0, len(arr), ext.batch_size):
            out.append(ext(arr[i:i + ext.batch_size]))
            bar.update(len(out[-1]))
    feats = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
    if cache:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # readers never see half a file
            np.save(fh, feats, allow_pickle=False)
    return feats
