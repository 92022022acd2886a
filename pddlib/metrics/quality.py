"""Sample-quality scores on image collections: FD (FID / FD-<judge>), KID, precision / recall.

Each function takes the real and the generated images (datasets, PIL lists or uint8 arrays),
extracts features in the chosen feature space (a name in pddlib.metrics.spaces with an fd_name)
and computes the score from them. Real images are brought to the generated images' resolution
first (as the training data was), unless `size` says otherwise; the judges always look at 32 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pddlib.data.transforms import as_uint8
from pddlib.defaults import DEFAULT_JUDGE
from pddlib.metrics.anchors import degradation_anchors, noise_images
from pddlib.metrics.features import extract_features
from pddlib.metrics.frechet import FDInfinity, fd_from_features, fd_infinity_from_features
from pddlib.metrics.kid import kid_from_features
from pddlib.metrics.prdc import PrecisionRecall, precision_recall_from_features
from pddlib.metrics.scores import ScoreSettings, formatted, is_spread, label, score_all
from pddlib.metrics.spaces import quality_space


def fd_name(features: str) -> str:
    """What a Frechet distance in this feature space is called: "FID", "FD-<judge>", ..."""
    return quality_space(features).fd_name


def feature_pair(
    real,
    fake,
    features: str = DEFAULT_JUDGE,
    *,
    size: int | None = None,
    device: str | torch.device | None = None,
    cache_real: bool = True,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(real features (N1, D), fake features (N2, D)) at one common resolution."""
    quality_space(features)  # one clear error for a space sample quality is not measured in
    fake = as_uint8(fake, size=size)
    size = size or fake.shape[1]
    f_fake = extract_features(fake, features, size=size, device=device, progress=progress)
    f_real = extract_features(real, features, size=size, device=device, cache=cache_real,
                              progress=progress)
    return f_real, f_fake


def fd(real, fake, features: str = DEFAULT_JUDGE, **kw) -> float:
    """Frechet distance between real and generated images in `features` space (FID or FD-<judge>)."""
    return fd_from_features(*feature_pair(real, fake, features, **kw))


def kid(
    real, fake, features: str = DEFAULT_JUDGE, *, subset_size: int = 1000, n_subsets: int = 100,
    seed: int = 0, **kw,
) -> tuple[float, float]:
    """(mean, std) of the unbiased KID over random subsets of up to subset_size images."""
    f_real, f_fake = feature_pair(real, fake, features, **kw)
    return kid_from_features(f_real, f_fake, subset_size=subset_size, n_subsets=n_subsets, seed=seed)


def precision_recall(
    real, fake, features: str = DEFAULT_JUDGE, *, k: int = 3, seed: int = 0, **kw,
) -> PrecisionRecall:
    """k-NN precision (realism) and recall (coverage) of generated against real images.

    The larger set is subsampled (seeded) to the smaller one's size, as in the paper.
    """
    return precision_recall_from_features(*feature_pair(real, fake, features, **kw), k=k, seed=seed)


def fd_infinity(
    real, fake, features: str = DEFAULT_JUDGE, *, ns: Sequence[int] | None = None, repeats: int = 3,
    seed: int = 0, **kw,
) -> FDInfinity:
    """FD at several sample sizes N of the generated set, and its 1/N extrapolation to N = inf."""
    f_real, f_fake = feature_pair(real, fake, features, **kw)
    return fd_infinity_from_features(f_real, f_fake, ns, repeats=repeats, seed=seed)


@dataclass(frozen=True)
class QualityReport:
    """All scores of one generated set against one real set, from one feature extraction."""

    features: str
    n_real: int
    n_fake: int
    scores: dict[str, float]  # named values (pddlib.metrics.scores): fd, kid, kid_std, ...

    @property
    def fd_name(self) -> str:
        """ "FID" for Inception features, "FD-<judge>" for an offline judge."""
        return fd_name(self.features)

    @property
    def fd(self) -> float:
        """The Frechet distance."""
        return self.scores["fd"]

    @property
    def kid_mean(self) -> float:
        """KID, the mean over subsets."""
        return self.scores["kid"]

    @property
    def kid_std(self) -> float:
        """KID's spread over subsets."""
        return self.scores["kid_std"]

    @property
    def precision(self) -> float:
        """k-NN precision (realism)."""
        return self.scores["precision"]

    @property
    def recall(self) -> float:
        """k-NN recall (coverage)."""
        return self.scores["recall"]

    def __str__(self) -> str:
        parts = []
        for name, value in self.scores.items():
            if is_spread(name, self.scores):
                continue
            title = self.fd_name if name == "fd" else label(name)
            spread = self.scores.get(f"{name}_std")
            parts.append(f"{title} {formatted(name, value)}"
                         + ("" if spread is None else f" +- {formatted(name, spread)}"))
        return (" | ".join(parts) + f" ({self.n_fake} generated vs {self.n_real} real, "
                f"{self.features} features)")


def quality_report(
    real, fake, features: str = DEFAULT_JUDGE, *, k: int = 3, kid_subset_size: int = 1000,
    kid_subsets: int = 100, seed: int = 0, **kw,
) -> QualityReport:
    """Every registered score (pddlib.metrics.scores) of generated against real images, in one pass."""
    f_real, f_fake = feature_pair(real, fake, features, **kw)
    settings = ScoreSettings(k=k, kid_subset_size=kid_subset_size, kid_subsets=kid_subsets,
                             seed=seed)
    return QualityReport(features, len(f_real), len(f_fake), score_all(f_real, f_fake, settings))


def anchor_fds(real, images, features: str = DEFAULT_JUDGE, *, seed: int = 0,
               progress: bool = False) -> dict[str, float]:
    """FD against `real` of `images` as they are (the floor), degraded (mild, then destructive;
    pddlib.metrics.anchors) and replaced by uniform noise (the far ceiling), at 32 px."""
    arr = as_uint8(images, size=32)
    sets = {"real (floor)": arr, **degradation_anchors(arr),
            "uniform noise": noise_images(len(arr), 32, torch.Generator().manual_seed(seed))}
    return {name: fd(real, x, features, size=32, progress=progress) for name, x in sets.items()}
