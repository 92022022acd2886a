"""Feature extraction for the metrics: any image collection -> (N, D) features, batched, cached.

Image collections: a `datasets.Dataset` with an "image" column (the common schema), a list of
PIL images, or uint8 arrays / tensors (N, H, W, 3). Feature networks:
  "pdshape"   the default judge (pddlib.metrics.judge; penultimate layer, 128-d) at 32 px: offline;
  "pdcls"     the course's first judge, kept to compare (it keys on colour and layout);
  "inception" the standard FID InceptionV3 (pool3, 2048-d): needs its weights in the torch cache.
Features of real sets can be cached on disk, keyed by the images' content and the network.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pddlib.data.transforms import as_uint8
from pddlib.defaults import DEFAULT_JUDGE
from pddlib.files import atomic_path
from pddlib.metrics import judge
from pddlib.pixels import to_model

FEATURES = (*judge.JUDGES, "inception")
# Which name a Frechet distance on each feature set is reported under: FID only for Inception.
FD_NAMES = {**{name: f"FD-{name}" for name in judge.JUDGES}, "inception": "FID"}


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


@dataclass
class Extractor:
    """A feature network: uint8 (N, H, W, 3) at `size` (None: any) -> float features (N, D)."""

    name: str
    key: str  # identifies the network and its weights, for the cache
    size: int | None
    batch_size: int
    model: torch.nn.Module
    device: torch.device

    @torch.no_grad()
    def __call__(self, batch_uint8: np.ndarray) -> np.ndarray:
        """Features (N, D) float32 of one batch."""
        if self.name in judge.JUDGES:
            out = self.model.features(to_model(batch_uint8).to(self.device))
        else:  # Inception takes uint8 (N, 3, H, W) and normalises itself
            x = torch.from_numpy(np.ascontiguousarray(batch_uint8)).to(self.device)
            out = self.model(x.permute(0, 3, 1, 2).contiguous())
        return out.float().cpu().numpy()


_EXTRACTORS: dict[tuple[str, str], Extractor] = {}


def get_extractor(features: str = DEFAULT_JUDGE, device: str | torch.device | None = None) -> Extractor:
    """The feature network called `features` (a judge or "inception"), loaded once per device."""
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}: choose one of {', '.join(FEATURES)}.")
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if (features, str(dev)) not in _EXTRACTORS:
        if features in judge.JUDGES:
            meta = judge.info(features)
            weights = judge.weights_file(features)
            key = f"{features}-" + hashlib.sha256(weights.read_bytes()).hexdigest()[:8]
            ext = Extractor(features, key, meta.image_size, 256, judge.load_judge(features).to(dev), dev)
        else:
            from pddlib.metrics import inception

            model = inception.load_fid_inception(dev)
            ext = Extractor("inception", f"inception-{inception.SHA256_PREFIX}-tf1resize", None,
                            32 if dev.type == "cpu" else 128, model, dev)
        _EXTRACTORS[(features, str(dev))] = ext
    return _EXTRACTORS[(features, str(dev))]


def extract_features(
    images,
    features: str = DEFAULT_JUDGE,
    *,
    size: int | None = None,
    device: str | torch.device | None = None,
    cache: bool = False,
    progress: bool = True,
) -> np.ndarray:
    """Features (N, D) float32 of an image collection, in batches with a progress bar.

    size: bring every image to size x size first (square-padded on white) -- judges always
    works at its own 32 px. cache: reuse / store the result under cache_dir(), keyed by the
    pixels' hash and the network (use it for fixed real sets, not for fresh samples).
    """
    from tqdm.auto import tqdm

    ext = get_extractor(features, device)
    arr = as_uint8(images, size=ext.size or size)
    path = cache_dir() / f"{ext.key}-{fingerprint(arr)}.npy"
    if cache and path.is_file():
        return np.load(path, allow_pickle=False)
    out = []
    with tqdm(total=len(arr), desc=f"features ({features})", unit="img",
              disable=not progress or len(arr) == 0) as bar:
        for i in range(0, len(arr), ext.batch_size):
            out.append(ext(arr[i:i + ext.batch_size]))
            bar.update(len(out[-1]))
    feats = np.concatenate(out) if out else np.zeros((0, 1), np.float32)
    if cache:
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # readers never see half a file
            np.save(fh, feats, allow_pickle=False)
    return feats
