"""Does a model copy its training images? Nearest-neighbour replication scores.

For each generated image we find its nearest training images, counting a training image and its
mirror image as one (the trainer flips at random, so a mirrored copy is still a copy), in up to
four spaces:
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
from pddlib.defaults import DEFAULT_GUIDANCE, DEFAULT_SCHEDULER, DEFAULT_STEPS
from pddlib.pixels import uint8_to_unit

SPACES = ("pixel", "pdcopy", "pdcls", "sscd")
RATIO = 1 / 3  # Gu et al.: nearest / second-nearest distance below this counts as memorised
# Similarity above which a sample counts as a copy. None: calibrated on each training set, as
# the similarity that only BACKGROUND_RATE of its images exceed to their nearest other image
# (calibrated_threshold). A fixed pdcopy threshold cannot serve 16 images and a thousand alike:
# on the course's known cases (benchmarks/copy_guard.py, RESULTS.md) this rule flags most
# samples of the 16-image model and new real images at the background rate. pixel and pdcls
# catch only near-exact copies; sscd: Somepalli et al.'s 0.5.
THRESHOLDS: dict[str, float | None] = {"pixel": 0.95, "pdcopy": None, "pdcls": 0.99,
                                       "sscd": 0.5}
BACKGROUND_RATE = 0.1  # the share of training images a calibrated threshold lets through


@dataclass(frozen=True)
class Neighbours:
    """The k nearest distinct training images of each query: arrays (N, k), nearest first."""

    space: str
    index: np.ndarray  # training rows
    distance: np.ndarray  # 0 = identical; pixel: RMS difference, features: 1 - cosine
    flipped: np.ndarray  # bool: the mirror image of the training row was the closer one

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

    def grid(self, samples, train, n: int = 8, title: str | None = None,
             query_name: str = "sample"):
        """Figure of the n closest pairs: samples on top, their nearest training images below."""
        from pddlib.viz import closest_pairs

        nb = self.neighbours
        samples = as_uint8(samples)
        # Decode only the training images shown (decoding a whole dataset takes seconds).
        rows = sorted({int(nb.index[i, 0]) for i in self.closest(n)})
        shown = as_uint8(take(train, rows), size=samples.shape[1])
        where = {r: j for j, r in enumerate(rows)}
        index = np.array([where.get(int(r), 0) for r in nb.index[:, 0]])
        labels = np.asarray(nb.index[:, 0])
        return closest_pairs(samples, shown, index, nb.distance[:, 0], flipped=nb.flipped[:, 0],
                             n=n, title=title or f"closest pairs ({self.space})",
                             train_labels=labels, query_name=query_name)


@dataclass(frozen=True)
class ReplicationReport:
    """Replication scores per space; `skipped` says which spaces were not measured and why."""

    spaces: dict[str, SpaceReport]
    skipped: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, space: str) -> SpaceReport:
        if space not in self.spaces:
            why = self.skipped.get(space, f"it was not requested (spaces: {list(self.spaces)})")
            raise KeyError(f"no {space!r} scores: {why}")
        return self.spaces[space]

    def summary(self) -> dict:
        """{space: scores} plus the skipped spaces, JSON-able."""
        out: dict = {s: r.summary() for s, r in self.spaces.items()}
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
        return "\n".join(lines)


# ---------------------------------------------------------------- nearest neighbours


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


def pixel_vectors(images_uint8: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float64 (N, D) in [0, 1] (float64: an exact copy gets distance 0)."""
    return uint8_to_unit(images_uint8.reshape(len(images_uint8), -1), torch.float64)


def pixel_distances(queries: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """L2 / sqrt(D) between rows of (N, D) and (M, D): (N, M)."""
    d2 = (queries.square().sum(1, keepdim=True) + train.square().sum(1)[None]
          - 2 * queries @ train.T)
    return d2.clamp_min(0).sqrt() / queries.shape[1] ** 0.5


def cosine_distances(queries: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity between rows of (N, D) and (M, D): (N, M)."""
    q = torch.nn.functional.normalize(queries.double(), dim=1)
    t = torch.nn.functional.normalize(train.double(), dim=1)
    return (1 - q @ t.T).clamp_min(0)


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
    if space == "pixel":
        return pixel_vectors(images_uint8)
    if space == "pdcopy":
        from pddlib.metrics.copydetect import copy_descriptors

        return torch.from_numpy(copy_descriptors(images_uint8))
    if space == "pdcls":
        from pddlib.metrics.features import extract_features

        return torch.from_numpy(extract_features(images_uint8, "pdcls", cache=cache,
                                                 progress=progress))
    if space == "sscd":
        from pddlib.metrics.sscd import sscd_features

        return torch.from_numpy(sscd_features(images_uint8, progress=progress))
    raise ValueError(f"space must be one of {SPACES}, got {space!r}")


def neighbours_in(space: str, queries: np.ndarray, train: np.ndarray, *, flips: bool, k: int,
                  background_rows: np.ndarray | None, progress: bool
                  ) -> tuple[Neighbours, Neighbours | None]:
    """Nearest training images of queries, and of training rows background_rows, in one space."""
    distance = pixel_distances if space == "pixel" else cosine_distances
    q = space_vectors(space, queries, cache=False, progress=progress)
    t = space_vectors(space, train, cache=True, progress=progress)
    tf = space_vectors(space, flip_uint8(train), cache=True, progress=progress) if flips else None
    if space == "pdcls":
        # The classifier's features are post-ReLU averages, all positive, so raw cosines of any
        # two images are high (median ~0.95); centring on the training mean spreads them out.
        mean = t.mean(0) if tf is None else torch.cat([t, tf]).mean(0)
        q, t, tf = q - mean, t - mean, None if tf is None else tf - mean
    nb = Neighbours(space, *nearest(distance(q, t), distance(q, tf) if flips else None, k))
    bg = None
    if background_rows is not None and len(train) > 1:
        tb = t[background_rows]
        d, df = distance(tb, t), distance(tb, tf) if flips else None
        # Exclude each background row itself (and its mirror): put it on the diagonal first.
        order = np.concatenate([background_rows, np.setdiff1d(np.arange(len(train)), background_rows)])
        d = d[:, order]
        df = df[:, order] if df is not None else None
        idx, dist, fl = nearest(d, df, k, exclude_self=True)
        bg = Neighbours(space, order[idx], dist, fl)
    return nb, bg


def calibrated_threshold(background: Neighbours, rate: float = BACKGROUND_RATE) -> float:
    """The similarity that only `rate` of the training images exceed to their nearest other one."""
    return float(np.quantile(background.similarity, 1 - rate))


def sscd_available() -> bool:
    """True when the SSCD weights are in the local torch cache (nothing is downloaded)."""
    from pddlib.metrics.sscd import find_weights

    return find_weights() is not None


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
    its weights are cached; an "sscd" asked for but not cached is skipped with the reason in
    `report.skipped`. background: also score up to background_max training images (a seeded
    sample) against the rest of the training set.
    """
    queries = as_uint8(samples)
    if len(queries) == 0:
        raise ValueError("replication() needs at least one generated image.")
    train_u8 = as_uint8(train, size=queries.shape[1])
    if len(train_u8) < 2:
        raise ValueError("replication() needs at least two training images (nearest and second).")
    if spaces is None:
        spaces = ("pixel", "pdcopy") + (("sscd",) if sscd_available() else ())
    unknown = [s for s in spaces if s not in SPACES]
    if unknown:
        raise ValueError(f"unknown spaces {unknown}: choose from {SPACES}")
    thr = {**THRESHOLDS, **(thresholds or {})}
    rows = None
    if background or any(thr[s] is None for s in spaces):  # a calibrated threshold needs it
        rows = np.arange(len(train_u8))
        if background_max is not None and len(rows) > background_max:
            g = torch.Generator().manual_seed(seed)
            rows = np.sort(torch.randperm(len(rows), generator=g)[:background_max].numpy())
    reports, skipped = {}, {}
    for space in spaces:
        if space == "sscd" and not sscd_available():
            from pddlib.metrics.sscd import missing_message

            skipped[space] = missing_message()
            warnings.warn(f"SSCD skipped: {skipped[space]}", stacklevel=2)
            continue
        nb, bg = neighbours_in(space, queries, train_u8, flips=flips, k=k, background_rows=rows,
                               progress=progress)
        threshold = calibrated_threshold(bg) if thr[space] is None else thr[space]
        reports[space] = SpaceReport(space, threshold, nb, bg if background else None)
    return ReplicationReport(reports, skipped)


# ---------------------------------------------------------------- the guard


@dataclass(frozen=True)
class CopyCheck:
    """Which generated images come closer to a training image than the threshold."""

    space: str
    threshold: float  # similarity
    flagged: np.ndarray  # (N,) bool
    index: np.ndarray  # (N,) nearest training row
    similarity: np.ndarray  # (N,)

    @property
    def ok(self) -> bool:
        """True when no sample is flagged."""
        return not bool(self.flagged.any())

    def __str__(self) -> str:
        bad = np.flatnonzero(self.flagged)
        if not len(bad):
            return (f"no near-copies: all {len(self.flagged)} samples have {self.space} "
                    f"similarity <= {self.threshold} to every training image")
        pairs = ", ".join(f"sample {i} ~ training row {self.index[i]} ({self.similarity[i]:.3f})"
                          for i in bad[:10])
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        return (f"{len(bad)} of {len(self.flagged)} samples are near-copies of training images "
                f"({self.space} similarity > {self.threshold}): {pairs}{more}")


def check_copies(images, train, *, space: str = "pdcopy", threshold: float | None = None,
                 flips: bool = True) -> CopyCheck:
    """Flag generated images more similar than `threshold` to a training image (or its mirror).

    The guard to run before sharing samples: `check = check_copies(pipe(...).images, train)`,
    then keep `[im for im, bad in zip(images, check.flagged) if not bad]`. threshold: default
    the space's THRESHOLDS entry; pdcopy's is calibrated on `train` (calibrated_threshold).
    """
    report = replication(images, train, spaces=(space,), flips=flips, k=2, background=False,
                         thresholds=None if threshold is None else {space: threshold})
    r = report[space]
    sim = r.neighbours.similarity
    return CopyCheck(space, r.threshold, sim > r.threshold, r.neighbours.index[:, 0], sim)


# ---------------------------------------------------------------- a model folder


def record_replication(model_dir, report: ReplicationReport, *, n: int, steps: int,
                       guidance: float, seed: int, scheduler: str = DEFAULT_SCHEDULER) -> None:
    """Merge a report's summary, and how its samples were drawn, into the folder's metrics.json."""
    from pddlib.provenance import record_metrics

    record_metrics(model_dir, {"replication": {
        **report.summary(), "samples": {"n": n, "steps": steps, "guidance": guidance,
                                        "scheduler": scheduler, "seed": seed}}})


def measure_replication(model_dir, train=None, *, n: int = 200, steps: int = DEFAULT_STEPS,
                        guidance: float = DEFAULT_GUIDANCE, seed: int = 0,
                        spaces: Sequence[str] | None = None,
                        record: bool = True, progress: bool = True) -> ReplicationReport:
    """Sample a trained model folder n times and score replication against its training images.

    train: the training images; default: the images its provenance manifest lists, from the
    embedded set. record: merge the summary into the folder's metrics.json (the model card's).
    """
    from pddlib.metrics.evaluate import generate_samples
    from pddlib.pipeline import PDDiffusionPipeline
    from pddlib.provenance import training_images

    if train is None:
        train = training_images(model_dir)
    pipe = PDDiffusionPipeline.from_run(model_dir).with_scheduler(DEFAULT_SCHEDULER)
    images, _ = generate_samples(pipe, n, steps=steps, guidance=guidance, seed=seed,
                                 progress=progress)
    report = replication(images, train, spaces=spaces, seed=seed, progress=progress)
    if record:
        record_replication(model_dir, report, n=n, steps=steps, guidance=guidance, seed=seed)
    return report
