"""Nearest training images of query images in a feature space, a training image and its mirror as one.

The vectors come from the space's feature map (pddlib.metrics.spaces); distances are the space's
("rms" or "cosine", pddlib.metrics.featurespace); a space marked `centre` is first centred on
the training set's mean vector. The trainer flips at random, so a mirrored copy is still a copy:
each training row counts at the closer of itself and its mirror image.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import numpy as np
import torch

from pddlib.metrics.features import extract_features
from pddlib.metrics.spaces import get_space


@dataclass(frozen=True)
class Neighbours:
    """The k nearest distinct training images of each query: arrays (N, k), nearest first."""

    space: str
    index: np.ndarray  # training rows
    distance: np.ndarray  # 0 = identical; pixel: RMS difference, features: 1 - cosine
    flipped: np.ndarray  # bool: the mirror image of the training row was the closer one

    def in_rows(self, rows: np.ndarray) -> Neighbours:
        """The same neighbours with training indices mapped through rows (a subset's own rows)."""
        return replace(self, index=rows[self.index])

    @property
    def similarity(self) -> np.ndarray:
        """Similarity to the nearest training image (N,): 1 - distance."""
        return 1.0 - self.distance[:, 0]

    @property
    def ratio(self) -> np.ndarray:
        """Nearest / second-nearest distance (N,); 0 for an exact copy, nan with one training image."""
        if self.distance.shape[1] < 2:
            return np.full(len(self.distance), np.nan)
        d1, d2 = self.distance[:, 0], self.distance[:, 1]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(d1 == 0, 0.0, d1 / d2)


def distinct_rows(images: np.ndarray, flips: bool = True) -> np.ndarray:
    """Rows of the first of each group of identical images (N, H, W, 3); with flips, mirrors too.

    A training set that holds an image twice would make its nearest and second-nearest match
    the same picture (ratio 1) and count each copy as the other's near-duplicate, so the
    replication scores compare against distinct images only.
    """
    seen: set[bytes] = set()
    keep = []
    for i, im in enumerate(images):
        key = hashlib.sha1(im.tobytes()).digest()
        if key in seen:
            continue
        seen.add(key)
        if flips:
            seen.add(hashlib.sha1(np.ascontiguousarray(im[:, ::-1]).tobytes()).digest())
        keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def take(images, rows: list[int]):
    """The given rows of an image collection (dataset, list or array), in that order."""
    if hasattr(images, "select") and hasattr(images, "column_names"):
        return images.select(rows)
    if isinstance(images, (np.ndarray, torch.Tensor)):
        return images[rows]
    return [images[r] for r in rows]


def flip_uint8(images: np.ndarray) -> np.ndarray:
    """Mirror images (N, H, W, 3) left-right."""
    return np.ascontiguousarray(images[:, :, ::-1])


def rms_distances(queries: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """L2 / sqrt(D) between rows of (N, D) and (M, D): (N, M)."""
    d2 = (queries.square().sum(1, keepdim=True) + train.square().sum(1)[None]
          - 2 * queries @ train.T)
    return d2.clamp_min(0).sqrt() / queries.shape[1] ** 0.5


def cosine_distances(queries: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity between rows of (N, D) and (M, D): (N, M)."""
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    t = torch.nn.functional.normalize(train.double(), dim=1)
    return (1 - q @ t.T).clamp_min(0)


DISTANCE_FNS = {"rms": rms_distances, "cosine": cosine_distances}


def nearest(distances: torch.Tensor, distances_flipped: torch.Tensor | None, k: int,
            exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, distance, flipped) (N, k) of the k nearest training rows; a row and its mirror are one."""
    d = distances if distances_flipped is None else torch.minimum(distances, distances_flipped)
    flipped = (torch.zeros_like(d, dtype=torch.bool) if distances_flipped is None
               else distances_flipped < distances)
    if exclude_self:  # background: query i is training row i
        d = d.clone()
        d.fill_diagonal_(float("inf"))
    k = min(k, d.shape[1] - int(exclude_self))
    dist, idx = torch.topk(d, k, dim=1, largest=False)
    return idx.numpy(), dist.float().numpy(), torch.gather(flipped, 1, idx).numpy()


def space_vectors(space: str, images_uint8: np.ndarray, *, cache: bool, progress: bool) -> torch.Tensor:
    """The vectors distances are measured between in `space`: (N, D)."""
    return torch.from_numpy(extract_features(images_uint8, space, cache=cache, progress=progress))


def background_neighbours(space: str, t: torch.Tensor, tf: torch.Tensor | None, rows: np.ndarray,
                          k: int) -> Neighbours:
    """Nearest other training images of training rows `rows` (never the row itself or its mirror)."""
    distance = DISTANCE_FNS[get_space(space).distance]
    tb = t[rows]
    d, df = distance(tb, t), None if tf is None else distance(tb, tf)
    # Exclude each background row itself (and its mirror): put it on the diagonal first.
    order = np.concatenate([rows, np.setdiff1d(np.arange(len(t)), rows)])
    d = d[:, order]
    df = df[:, order] if df is not None else None
    idx, dist, fl = nearest(d, df, k, exclude_self=True)
    return Neighbours(space, order[idx], dist, fl)


def neighbours_in(space: str, queries: np.ndarray, train: np.ndarray, *, flips: bool, k: int,
                  background_rows: np.ndarray | None, progress: bool
                  ) -> tuple[Neighbours, Neighbours | None]:
    """Nearest training images of queries, and of training rows background_rows, in one space."""
    fs = get_space(space)
    distance = DISTANCE_FNS[fs.distance]
    q = space_vectors(space, queries, cache=False, progress=progress)
    t = space_vectors(space, train, cache=True, progress=progress)
    tf = space_vectors(space, flip_uint8(train), cache=True, progress=progress) if flips else None
    if fs.centre:
        # Features that are all of one sign (post-ReLU averages) give any two images a high
        # cosine; centring on the training mean spreads them out.
        mean = t.mean(0) if tf is None else torch.cat([t, tf]).mean(0)
        q, t, tf = q - mean, t - mean, None if tf is None else tf - mean
    nb = Neighbours(space, *nearest(distance(q, t), distance(q, tf) if flips else None, k))
    bg = None
    if background_rows is not None and len(train) > 1:
        bg = background_neighbours(space, t, tf, background_rows, k)
    return nb, bg
