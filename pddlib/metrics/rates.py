"""A fraction of N images with its 95 % interval, and two fractions compared, for small counts.

The normal-approximation standard error sqrt(p (1 - p) / n) is 0 at 0 of n and too narrow near
0 and 1, where copy rates live; the Wilson score interval is not (Wilson 1927; Brown, Cai and
DasGupta 2001 recommend it for small n).
"""

from __future__ import annotations

import math

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (low, high) of a rate seen k times in n."""
    if n <= 0 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n > 0, got k={k}, n={n}")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(k: int, n: int) -> str:
    """'k/n = p (95 % interval low-high)' for a printout."""
    low, high = wilson_interval(k, n)
    return f"{k}/{n} = {k / n:.3f} (95 % interval {low:.3f}-{high:.3f})"


def compare_rates(k_a: int, n_a: int, k_b: int, n_b: int, z: float = Z95) -> str:
    """'higher', 'lower' or 'within the noise': rate a against rate b, a two-proportion z-test.

    The gap's standard error comes from the pooled rate (no real difference), so it does not
    fall to 0 when one count is 0.
    """
    pooled = (k_a + k_b) / (n_a + n_b)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    gap = k_a / n_a - k_b / n_b
    if se == 0 or abs(gap) <= z * se:
        return "within the noise"
    return "higher" if gap > 0 else "lower"
