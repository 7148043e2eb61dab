"""Summary statistics of per-run latencies: every sample counts, outliers are counted, never dropped."""

from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

DEFAULT_NOISY_IQR_RATIO = 0.10
OUTLIER_IQR_FACTOR = 1.5
TRIM = 0.10  # the trimmed mean drops this share at each end: ExecuTorch's benchmark apps average the middle 80 %
STABILITY_BLOCKS = 5  # a night's repeated results: its samples in this many consecutive blocks


def summarize(
    seconds: Sequence[float],
    batch: int = 1,
    flops: float | None = None,
    noisy_iqr_ratio: float = DEFAULT_NOISY_IQR_RATIO,
) -> dict:
    """Latency stats in ms (keys named like LatencyResult fields) from per-run wall times in seconds.

    Percentiles use linear interpolation between order statistics (numpy's default). std is the
    sample standard deviation (ddof=1; 0 for one run). IQR = p75 - p25. A run is an outlier when it
    lies beyond 1.5 x IQR outside [p25, p75] (Tukey's fences). The series is noisy when
    IQR / median > noisy_iqr_ratio. fps = batch / p50 (clips per second); gflops = flops / p50 / 1e9,
    the achieved GFLOP/s at the median latency (flops = model FLOPs of one inference). cv = std / mean;
    stability: `block_stability` of the samples in their order.
    """
    x = np.asarray(list(seconds), dtype=np.float64)
    if x.size == 0:
        raise ValueError("no latency samples to summarize")
    if not np.all(np.isfinite(x)) or np.any(x < 0):
        raise ValueError("latency samples must be finite and non-negative")
    q25, p50, q75, p90, p99 = np.percentile(x, [25, 50, 75, 90, 99])
    iqr = q75 - q25
    lo, hi = q25 - OUTLIER_IQR_FACTOR * iqr, q75 + OUTLIER_IQR_FACTOR * iqr
    outliers = int(np.count_nonzero((x < lo) | (x > hi)))
    std = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
    ms = 1e3
    return {
        "runs": int(x.size),
        "min_ms": float(x.min() * ms),
        "mean_ms": float(x.mean() * ms),
        "p50_ms": float(p50 * ms),
        "p90_ms": float(p90 * ms),
        "p99_ms": float(p99 * ms),
        "std_ms": std * ms,
        "iqr_ms": float(iqr * ms),
        "noisy": bool(p50 > 0 and iqr / p50 > noisy_iqr_ratio),
        "outliers": outliers,
        "fps": float(batch / p50) if p50 > 0 else None,
        "gflops": float(flops / p50 / 1e9) if flops and p50 > 0 else None,
        "trimmed_mean_ms": trimmed_mean(x) * ms,
        "cv": std / float(x.mean()) if x.mean() > 0 else None,
        "stability": block_stability(x),
    }


def trimmed_mean(x: np.ndarray, trim: float = TRIM) -> float:
    """The mean of the sorted samples without the lowest and highest `trim` share (all of them when few)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    cut = int(len(x) * trim)
    return float(x[cut: len(x) - cut].mean())


def stability_score(x: np.ndarray) -> float:
    """ExecuTorch's stability score, 0-100 (higher is steadier), from its analyze_benchmark_stability.py:
    0.5 x (100 - 10 x CV in %) + 0.25 x (100 - 50 x (max/min - 1)) + 0.25 x (100 - 100 x (p99/p50 - 1)),
    each part floored at 0 (a CV of 10 %, a max/min of 3 or a p99/p50 of 2 scores 0). Below 60 it rates "Poor"."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 2 or x.min() <= 0:
        return 0.0 if x.size and x.min() <= 0 else 100.0
    cv_pct = float(np.std(x, ddof=1) / x.mean() * 100)
    p50, p99 = np.percentile(x, [50, 99])
    parts = (max(0.0, 100 - cv_pct * 10), max(0.0, 100 - (x.max() / x.min() - 1) * 50),
             max(0.0, 100 - (p99 / p50 - 1) * 100))
    return float(0.5 * parts[0] + 0.25 * parts[1] + 0.25 * parts[2])


def block_stability(values: Sequence[float], blocks: int = STABILITY_BLOCKS) -> float:
    """ExecuTorch's stability score of a night's repeated results: the values (in their order) cut into
    `blocks` consecutive blocks, each block's median one result. ExecuTorch scores repeated benchmark
    results (each a mean over many iterations), not single iterations: one inference slowed 3x by a
    neighbour (seen here) would floor a per-iteration score while the night's median stands. Fewer than
    two values per block: the values themselves are scored."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size < 2 * blocks:
        return stability_score(x)
    return stability_score(np.array([np.median(b) for b in np.array_split(x, blocks)]))


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(median, low, high): a distribution-free interval of the median from order statistics.

    [x_(k), x_(n-k+1)] with the largest k for which Binomial(n, 1/2) puts at most (1 - confidence) / 2
    below k; covers the median with at least `confidence` whatever the distribution. With too few
    values for that (n < 6 at 95 %) the interval is [min, max].
    """
    x = np.sort(np.asarray(list(values), dtype=np.float64))
    if x.size == 0:
        raise ValueError("no values for a median interval")
    n, k = x.size, _median_rank(x.size, confidence)
    low, high = (x[k - 1], x[n - k]) if k >= 1 else (x[0], x[-1])
    return float(np.median(x)), float(low), float(high)


@functools.lru_cache(maxsize=1024)
def _median_rank(n: int, confidence: float) -> int:
    """The k of median_interval: the largest with P(Binomial(n, 1/2) <= k - 1) <= (1 - confidence) / 2 (0: none)."""
    k, below = 0, 1  # below: 2^n x P(Binomial(n, 1/2) <= k), exact in integers
    while below / 2**n <= (1 - confidence) / 2:
        k += 1
        below += math.comb(n, k)
    return k

