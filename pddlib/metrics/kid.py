"""Kernel Inception Distance: unbiased MMD^2 with a cubic polynomial kernel, over subsets.

Binkowski et al. (2018): k(x, y) = (x . y / D + 1)^3. Unlike FD it has an unbiased estimator,
so two samples of one distribution give ~0 at any N, and its spread over subsets is reported.
"""

from __future__ import annotations

import numpy as np


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / D + 1)^3 between rows of x (N, D) and y (M, D) -> (N, M) float64."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 between samples x (m, D) and y (m', D) under the polynomial kernel."""
    m, n = len(x), len(y)
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    # Diagonal terms k(x_i, x_i) are dropped: they are what biases the plain estimator.
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
                 + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.mean())


def kid_from_features(
    real: np.ndarray,
    fake: np.ndarray,
    *,
    subset_size: int = 1000,
    n_subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """(mean, std) of unbiased MMD^2 over `n_subsets` random subsets; features (N1, D), (N2, D)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 real and 2 fake samples, got {len(real)}, {len(fake)}")
    rng = np.random.default_rng(seed)
    vals = np.array([
        mmd2_unbiased(real[rng.choice(len(real), size, replace=False)],
                      fake[rng.choice(len(fake), size, replace=False)])
        for _ in range(n_subsets)
    ])
    return float(vals.mean()), float(vals.std())


def class_kid(real: np.ndarray, real_labels, fake: np.ndarray, fake_labels) -> dict:
    """Class-conditional KID: unbiased MMD^2 between real and fake features of each class, averaged.

    Like intra-class FID (Miyato & Koyama 2018), but unbiased, so a class's handful of real images
    is enough: samples drawn for the wrong class are far from that class's real images even where
    the pooled sets match. A model that draws one prototype a class is charged for the spread it
    lacks. Returns mean, se (over classes), per_class {label: value}. Every fake class needs 2 or
    more images of its own and of the real set's.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    real_labels, fake_labels = np.asarray(real_labels), np.asarray(fake_labels)
    per_class = {}
    for c in np.unique(fake_labels):
        r, f = real[real_labels == c], fake[fake_labels == c]
        if len(r) < 2 or len(f) < 2:
            raise ValueError(f"class {c.item()!r} has {len(r)} real and {len(f)} generated images: "
                             "class KID needs at least 2 of each")
        per_class[c.item()] = mmd2_unbiased(r, f)
    values = np.array(list(per_class.values()))
    se = float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else float("nan")
    return {"mean": float(values.mean()), "se": se, "per_class": per_class}
