"""Does a model copy its training images? Nearest-neighbour replication scores.

For each generated image we find its nearest training images (pddlib.metrics.neighbours: a
training image and its mirror count as one) in feature spaces from the registry
(pddlib.metrics.spaces) marked for replication; the built-in ones:
  "pixel"  distance = L2 / sqrt(D) on [0, 1] values (the RMS pixel difference, in [0, 1]);
  "pdcopy" distance = 1 - cosine of the in-project copy-detection descriptors
           (pddlib.metrics.copydetect: trained so that an image and its fainter, softer,
           shifted or recoloured copies land together; offline): the copy guard's space;
  "pdcls"  distance = 1 - cosine of the in-project classifier's features, centred on the
           training set's mean feature (offline; it encodes the class more than the drawing);
  "sscd"   distance = 1 - cosine of SSCD copy-detection descriptors (only when its weights are
           already in the local torch cache; never downloaded here).
Similarity is 1 - distance in every space. Two scores per space:
  - the fraction of samples whose nearest / second-nearest distance ratio is below 1/3, the
    memorisation criterion of Gu et al. (2023, "On memorization in diffusion models");
  - the fraction whose nearest similarity is above a threshold, next to the same fraction for
    training images against the rest of the training set: the "background" that says how close
    images of this collection come to each other anyway (Somepalli et al. 2023, CVPR).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from pddlib.data.transforms import as_uint8
from pddlib.metrics.neighbours import Neighbours, distinct_rows, neighbours_in, take
from pddlib.metrics.spaces import get_space, replication_spaces

RATIO = 1 / 3  # Gu et al.: nearest / second-nearest distance below this counts as memorised
# A space without a fixed threshold (FeatureSpace.threshold None) is calibrated on each training
# set, as the similarity that only this share of its images exceed to their nearest other image:
# so new real images are flagged about as often as the collection's own near-duplicates.
BACKGROUND_RATE = 0.1
DEFAULT_SPACES = ("pixel", "pdcopy", "sscd")  # sscd only when its weights are cached


@dataclass(frozen=True)
class ClosestPairs:
    """What a figure of the closest pairs needs: every query, and only the training rows shown."""

    queries: np.ndarray  # uint8 (N, S, S, 3)
    shown: np.ndarray  # uint8 (R, S, S, 3): the nearest training images of the closest queries
    index: np.ndarray  # (N,) row of `shown` of each query's match (0 for queries not shown)
    distance: np.ndarray  # (N,) distance to the nearest training image
    flipped: np.ndarray  # (N,) bool: the match is the mirror image
    rows: np.ndarray  # (N,) the match's row in the whole training set


@dataclass(frozen=True)
class SpaceReport:
    """Replication scores of generated images in one space, with the train-to-train background."""

    space: str
    threshold: float  # similarity threshold of `above_fraction`
    neighbours: Neighbours  # samples -> training set
    background: Neighbours | None  # training images -> the rest of the training set

    @property
    def ratio_fraction(self) -> float:
        """Fraction of samples with nearest / second-nearest distance below 1/3 (Gu et al.)."""
        return float(np.mean(self.neighbours.ratio < RATIO))

    @property
    def above_fraction(self) -> float:
        """Fraction of samples more similar than `threshold` to some training image."""
        return float(np.mean(self.neighbours.similarity > self.threshold))

    @property
    def background_ratio_fraction(self) -> float:
        """ratio_fraction of training images against the rest of the training set (nan: none)."""
        return float(np.mean(self.background.ratio < RATIO)) if self.background else float("nan")

    @property
    def background_above_fraction(self) -> float:
        """above_fraction of training images against the rest of the training set (nan: none)."""
        if self.background is None:
            return float("nan")
        return float(np.mean(self.background.similarity > self.threshold))

    def summary(self) -> dict:
        """The scores as a plain JSON-able dict (what model cards record)."""
        sim = self.neighbours.similarity
        return {"n": len(sim), "threshold": self.threshold,
                "ratio_fraction": self.ratio_fraction, "above_fraction": self.above_fraction,
                "median_similarity": float(np.median(sim)), "max_similarity": float(sim.max()),
                "background_ratio_fraction": self.background_ratio_fraction,
                "background_above_fraction": self.background_above_fraction}

    def closest(self, n: int = 8) -> np.ndarray:
        """Indices of the n samples closest to a training image, closest first."""
        return np.argsort(self.neighbours.distance[:, 0], kind="stable")[:n]

    def closest_pairs(self, samples, train, n: int = 8) -> ClosestPairs:
        """The n closest pairs' images, for pddlib.viz.replication_grid to draw."""
        nb = self.neighbours
        samples = as_uint8(samples)
        # Decode only the training images shown: decoding a whole dataset is the slow part.
        rows = sorted({int(nb.index[i, 0]) for i in self.closest(n)})
        shown = as_uint8(take(train, rows), size=samples.shape[1])
        where = {r: j for j, r in enumerate(rows)}
        index = np.array([where.get(int(r), 0) for r in nb.index[:, 0]])
        return ClosestPairs(samples, shown, index, nb.distance[:, 0], nb.flipped[:, 0],
                            np.asarray(nb.index[:, 0]))


@dataclass(frozen=True)
class ReplicationReport:
    """Replication scores per space; `skipped` says which spaces were not measured and why."""

    spaces: dict[str, SpaceReport]
    skipped: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0  # training rows identical to an earlier one (or its mirror): not compared

    def __getitem__(self, space: str) -> SpaceReport:
        if space not in self.spaces:
            why = self.skipped.get(space, f"it was not requested (spaces: {list(self.spaces)})")
            raise KeyError(f"no {space!r} scores: {why}")
        return self.spaces[space]

    def summary(self) -> dict:
        """{space: scores} plus the skipped spaces, JSON-able."""
        out: dict = {s: r.summary() for s, r in self.spaces.items()}
        if self.duplicates:
            out["duplicate_training_rows"] = self.duplicates
        if self.skipped:
            out["skipped"] = dict(self.skipped)
        return out

    def __str__(self) -> str:
        lines = [(f"{'space':6s} {'n':>5s} {'ratio<1/3':>10s} {'sim>thr':>8s} {'thr':>5s} "
                 f"{'background ratio<1/3':>21s} {'background sim>thr':>19s}")]
        for s, r in self.spaces.items():
            lines.append(f"{s:6s} {len(r.neighbours.distance):5d} {r.ratio_fraction:10.3f} "
                         f"{r.above_fraction:8.3f} {r.threshold:5.2f} "
                         f"{r.background_ratio_fraction:21.3f} {r.background_above_fraction:19.3f}")
        lines += [f"{s}: skipped ({why})" for s, why in self.skipped.items()]
        if self.duplicates:
            lines.append(f"{self.duplicates} training rows repeat an earlier image (or its "
                         "mirror) and were compared once")
        return "\n".join(lines)


def calibrated_threshold(background: Neighbours, rate: float = BACKGROUND_RATE) -> float:
    """The similarity that only `rate` of the training images exceed to their nearest other one."""
    return float(np.quantile(background.similarity, 1 - rate))


def chosen_spaces(spaces: Sequence[str] | None) -> tuple[str, ...]:
    """The spaces asked for, checked; default: DEFAULT_SPACES that can run here."""
    if spaces is None:
        return tuple(s for s in DEFAULT_SPACES if get_space(s).missing() is None)
    unknown = [s for s in spaces if s not in replication_spaces()]
    if unknown:
        raise ValueError(f"unknown spaces {unknown}: choose from {replication_spaces()}")
    return tuple(spaces)


def background_rows(n_train: int, limit: int | None, seed: int) -> np.ndarray:
    """The training rows scored against the rest: all, or a seeded sample of `limit`."""
    rows = np.arange(n_train)
    if limit is not None and n_train > limit:
        g = torch.Generator().manual_seed(seed)
        rows = np.sort(torch.randperm(n_train, generator=g)[:limit].numpy())
    return rows


def replication(
    samples,
    train,
    *,
    spaces: Sequence[str] | None = None,
    flips: bool = True,
    k: int = 2,
    thresholds: dict[str, float] | None = None,
    background: bool = True,
    background_max: int | None = 2000,
    seed: int = 0,
    progress: bool = False,
) -> ReplicationReport:
    """Nearest training images of each generated image and the replication scores, per space.

    samples: generated images (a list of PIL images, uint8 (N, S, S, 3), or a dataset); all the
    same size S. train: the training images (any collection), compared at S x S (square-padded
    on white, as the trainer sees them). spaces: default "pixel" and "pdcopy", plus "sscd" when
    its weights are cached; a space asked for that cannot run here (sscd not cached) is skipped
    with the reason in `report.skipped`. thresholds: {space: similarity} instead of the space's
    own. background: also score up to background_max training images (a seeded sample) against
    the rest of the training set. Training rows that repeat an earlier image exactly (or its
    mirror, with flips) are compared once (`report.duplicates` counts them); indices in the
    report are rows of the whole training set.
    """
    queries = as_uint8(samples)
    if len(queries) == 0:
        raise ValueError("replication() needs at least one generated image.")
    train_u8 = as_uint8(train, size=queries.shape[1])
    distinct = distinct_rows(train_u8, flips)
    if len(distinct) < 2:
        raise ValueError("replication() needs at least two distinct training images (nearest "
                         "and second).")
    spaces = chosen_spaces(spaces)
    thr = {s: get_space(s).threshold for s in spaces} | (thresholds or {})
    calibrate = any(thr.get(s) is None for s in spaces)
    rows = background_rows(len(distinct), background_max, seed) if background or calibrate else None
    reports, skipped = {}, {}
    for space in spaces:
        missing = get_space(space).missing()
        if missing is not None:
            skipped[space] = missing
            warnings.warn(f"{space.upper()} skipped: {missing}", stacklevel=2)
            continue
        nb, bg = neighbours_in(space, queries, train_u8[distinct], flips=flips, k=k,
                               background_rows=rows, progress=progress)
        nb, bg = nb.in_rows(distinct), bg.in_rows(distinct) if bg is not None else None
        threshold = calibrated_threshold(bg) if thr.get(space) is None else thr[space]
        reports[space] = SpaceReport(space, threshold, nb, bg if background else None)
    return ReplicationReport(reports, skipped, len(train_u8) - len(distinct))
