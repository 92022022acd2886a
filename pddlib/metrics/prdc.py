"""Precision and recall of generated samples with k-nearest-neighbour manifolds.

Kynkaanniemi et al. (2019): each real feature vector gets a ball reaching its k-th nearest real
neighbour; precision is the fraction of fakes inside some real ball (are samples realistic?),
recall the fraction of reals inside some fake ball (is the data's variety covered?).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class PrecisionRecall:
    """Fractions in [0, 1]; k is the neighbourhood size used."""

    precision: float
    recall: float
    k: int


def _pairwise(a: np.ndarray, b: np.ndarray) -> torch.Tensor:
    """Euclidean distances (N, M) between rows of a (N, D) and b (M, D), float64."""
    return torch.cdist(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64))


def knn_radii(x: np.ndarray, k: int) -> torch.Tensor:
    """Distance from each row of x (N, D) to its k-th nearest other row -> (N,)."""
    if len(x) <= k:
        raise ValueError(f"k={k} needs more than {k} samples, got {len(x)}")
    # k + 1: the nearest "neighbour" of each point is the point itself at distance 0.
    return _pairwise(x, x).kthvalue(k + 1, dim=1).values


def coverage_fraction(manifold: np.ndarray, queries: np.ndarray, k: int) -> float:
    """Fraction of queries (M, D) inside the union of k-NN balls around manifold (N, D)."""
    radii = knn_radii(manifold, k)
    inside = _pairwise(queries, manifold) <= radii[None, :]
    return float(inside.any(dim=1).double().mean())


def precision_recall_from_features(
    real: np.ndarray, fake: np.ndarray, k: int = 3, *, balance: bool = True, seed: int = 0
) -> PrecisionRecall:
    """Improved precision and recall of fake (M, D) against real (N, D) features.

    balance: randomly subsample the larger set to the smaller one's size first. Ball radii
    shrink as a set grows, so with unequal sizes the two fractions are not on the same footing
    (the paper uses equal sizes).
    """
    if balance and len(real) != len(fake):
        rng = np.random.default_rng(seed)
        n = min(len(real), len(fake))
        real = real[np.sort(rng.choice(len(real), n, replace=False))] if len(real) > n else real
        fake = fake[np.sort(rng.choice(len(fake), n, replace=False))] if len(fake) > n else fake
    return PrecisionRecall(coverage_fraction(real, fake, k), coverage_fraction(fake, real, k), k)
