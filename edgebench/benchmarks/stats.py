"""Summary statistics of per-run latencies: every sample counts, outliers are counted, never dropped."""

from __future__ import annotations

from typing import Sequence

import numpy as np

DEFAULT_NOISY_IQR_RATIO = 0.10
OUTLIER_IQR_FACTOR = 1.5


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
    the achieved GFLOP/s at the median latency (flops = model FLOPs of one inference).
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
    }

