"""Small, dependency-free statistics for the timing loop (it runs inside the worker, per forward).

The median's confidence interval is the distribution-free one from order statistics: for ``n``
sorted samples, ``[x_(j), x_(n+1-j)]`` covers the true median with probability
``1 - 2 P(Binomial(n, 1/2) <= j - 1)``; ``j`` is the largest rank keeping that at >= 95%. It
assumes nothing about the shape of the timing distribution (which is skewed: preemptions only ever
add time), so a few slow outliers widen it by at most a rank instead of dragging a mean.
"""

from __future__ import annotations

import math
from functools import lru_cache
from statistics import fmean, median, stdev
from typing import Sequence


@lru_cache(maxsize=512)
def median_ci_ranks(n: int, confidence: float = 0.95) -> tuple[int, int]:
    """0-based ranks ``(lo, hi)`` of the order-statistic CI of the median of ``n`` samples.

    With fewer than 6 samples no pair of ranks reaches 95%; the widest (min, max) is returned.
    """
    if n < 1:
        raise ValueError("need at least one sample")
    alpha = (1.0 - confidence) / 2
    total = 2**n
    j, cdf = 0, 0
    # largest j (1-based) with P(B <= j - 1) <= alpha
    while j < n // 2:
        nxt = cdf + math.comb(n, j)
        if nxt / total > alpha:
            break
        cdf, j = nxt, j + 1
    lo = max(j - 1, 0)
    return lo, n - 1 - lo


def median_ci(samples: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """``(median, lower, upper)``."""
    xs = sorted(samples)
    lo, hi = median_ci_ranks(len(xs), confidence)
    return median(xs), xs[lo], xs[hi]


def ci_within(samples: Sequence[float], rel: float) -> bool:
    """True when the 95% CI of the median lies within ``+-rel`` of the median."""
    med, lo, hi = median_ci(samples)
    return med > 0 and lo >= med * (1 - rel) and hi <= med * (1 + rel)


def cv(samples: Sequence[float]) -> float:
    """Coefficient of variation (sample standard deviation / mean) of all samples."""
    if len(samples) < 2:
        return 0.0
    m = fmean(samples)
    return stdev(samples) / m if m > 0 else 0.0
