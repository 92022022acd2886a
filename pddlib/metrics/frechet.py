"""The Frechet distance between two Gaussians, and FD-infinity (its 1/N extrapolation).

d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1 S2)^(1/2))

The trace of the matrix square root is computed without `scipy.linalg.sqrtm`: the eigenvalues
of S1 S2 are those of the symmetric PSD matrix A S2 A with A = S1^(1/2), so
tr((S1 S2)^(1/2)) = sum(sqrt(eigvalsh(A S2 A))). Two symmetric eigendecompositions in float64
stay real and finite when the covariances are singular (fewer samples than feature
dimensions, the usual case at CPU sample sizes), where sqrtm returns complex noise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of features (N, D)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N >= 2, D), got {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix (negative round-off clipped to 0)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """Squared Frechet distance between N(mu1, sigma1) and N(mu2, sigma2); means (D,), covs (D, D)."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    # Symmetrise: np.cov output is symmetric only up to round-off, and eigh reads one triangle.
    s1, s2 = (s1 + s1.T) / 2, (s2 + s2.T) / 2
    a = _sqrt_psd(s1)
    m = a @ s2 @ a
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean
    # A squared distance is never negative; tiny negatives are round-off (identical inputs).
    return float(max(d2, 0.0))


def fd_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """Frechet distance between the Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*gaussian_stats(real), *gaussian_stats(fake))


@dataclass(frozen=True)
class FDInfinity:
    """FD measured at several sample sizes and its linear fit in 1/N (Chong & Forsyth, 2020)."""

    ns: tuple[int, ...]
    fds: tuple[float, ...]
    fd_inf: float  # intercept: the FD an infinite sample would give
    slope: float  # FD(N) ~= fd_inf + slope / N

    def predict(self, n: float) -> float:
        """FD the fit predicts at sample size n."""
        return self.fd_inf + self.slope / n


def fd_infinity_from_features(
    real: np.ndarray,
    fake: np.ndarray,
    ns: Sequence[int] | None = None,
    *,
    repeats: int = 1,
    seed: int = 0,
    fd_fn: Callable[[np.ndarray, np.ndarray], float] = fd_from_features,
) -> FDInfinity:
    """Fit FD(N) = fd_inf + slope / N on random fake subsets of size N against all real features.

    FD is biased upwards at small N (the covariance of N samples is noisy); the bias is
    ~ c / N, so the intercept of a line in 1/N estimates the unbiased value.
    """
    fake = np.asarray(fake)
    if ns is None:
        top = len(fake)
        ns = sorted({max(2, round(top * f)) for f in (0.2, 0.3, 0.4, 0.6, 0.8, 1.0)})
    ns = tuple(int(n) for n in ns)
    if len(ns) < 2 or max(ns) > len(fake) or min(ns) < 2:
        raise ValueError(f"need >= 2 sample sizes in [2, {len(fake)}], got {ns}")
    rng = np.random.default_rng(seed)
    fds = []
    for n in ns:
        vals = [fd_fn(real, fake[rng.choice(len(fake), n, replace=False)]) for _ in range(repeats)]
        fds.append(float(np.mean(vals)))
    slope, intercept = np.polyfit(1.0 / np.asarray(ns, np.float64), np.asarray(fds), 1)
    return FDInfinity(ns, tuple(fds), float(intercept), float(slope))
