"""Sample-quality scores on image collections: FD (FID / FD-<judge>), KID, precision / recall.

Each function takes the real and the generated images (datasets, PIL lists or uint8 arrays),
extracts features with the chosen network and computes the score from them. Real images are
brought to the generated images' resolution first (as the training data was), unless `size`
says otherwise; the judges always look at 32 px.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pddlib.data.transforms import as_uint8
from pddlib.defaults import DEFAULT_JUDGE
from pddlib.metrics.anchors import degradation_anchors, noise_images
from pddlib.metrics.features import FD_NAMES, extract_features
from pddlib.metrics.frechet import FDInfinity, fd_from_features, fd_infinity_from_features
from pddlib.metrics.kid import kid_from_features
from pddlib.metrics.prdc import PrecisionRecall, precision_recall_from_features


def fd_name(features: str) -> str:
    """What a Frechet distance on these features is called: "FID" or "FD-<judge>"."""
    return FD_NAMES[features]


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
    fd: float
    kid_mean: float
    kid_std: float
    precision: float
    recall: float

    @property
    def fd_name(self) -> str:
        """ "FID" for Inception features, "FD-<judge>" for an offline judge."""
        return fd_name(self.features)

    def __str__(self) -> str:
        return (f"{self.fd_name} {self.fd:.3f} | KID {self.kid_mean:.4f} +- {self.kid_std:.4f} | "
                f"precision {self.precision:.3f} | recall {self.recall:.3f} "
                f"({self.n_fake} generated vs {self.n_real} real, {self.features} features)")


def quality_report(
    real, fake, features: str = DEFAULT_JUDGE, *, k: int = 3, kid_subset_size: int = 1000,
    kid_subsets: int = 100, seed: int = 0, **kw,
) -> QualityReport:
    """FD, KID and precision / recall of generated against real images, features computed once."""
    f_real, f_fake = feature_pair(real, fake, features, **kw)
    kid_mean, kid_std = kid_from_features(f_real, f_fake, subset_size=kid_subset_size,
                                          n_subsets=kid_subsets, seed=seed)
    pr = precision_recall_from_features(f_real, f_fake, k=k, seed=seed)
    return QualityReport(features, len(f_real), len(f_fake), fd_from_features(f_real, f_fake),
                         kid_mean, kid_std, pr.precision, pr.recall)


def anchor_fds(real, images, features: str = DEFAULT_JUDGE, *, seed: int = 0,
               progress: bool = False) -> dict[str, float]:
    """FD against `real` of `images` as they are (the floor), degraded (mild, then destructive;
    pddlib.metrics.anchors) and replaced by uniform noise (the far ceiling), at 32 px."""
    arr = as_uint8(images, size=32)
    sets = {"real (floor)": arr, **degradation_anchors(arr),
            "uniform noise": noise_images(len(arr), 32, torch.Generator().manual_seed(seed))}
    return {name: fd(real, x, features, size=32, progress=progress) for name, x in sets.items()}
