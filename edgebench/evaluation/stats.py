"""The top-1 drop against eager with a paired 95 % bootstrap interval, and its verdict against a bound."""

from __future__ import annotations

import numpy as np

PASS, FAIL, UNSURE = "passed", "failed", "not enough videos"


def paired_drop(eager_correct: np.ndarray, correct: np.ndarray, resamples: int = 10000, seed: int = 0,
                level: float = 0.95) -> tuple[float, float, float]:
    """(drop, low, high) in points: eager top-1 minus this top-1 over the same videos, with a percentile interval.

    Resampling videos with replacement only changes how many of them fall in each of three kinds
    (only eager right, only this right, the same), so drawing those counts from a multinomial is the
    paired bootstrap exactly, in constant time per resample.
    """
    eager_correct, correct = np.asarray(eager_correct, bool), np.asarray(correct, bool)
    if eager_correct.shape != correct.shape or not len(correct):
        raise ValueError(f"paired results need the same videos: {eager_correct.shape} vs {correct.shape}")
    n = len(correct)
    lost = int(np.sum(eager_correct & ~correct))  # eager right, this wrong
    won = int(np.sum(~eager_correct & correct))
    drop = 100.0 * (lost - won) / n
    draws = np.random.default_rng(seed).multinomial(n, [lost / n, won / n, 1 - (lost + won) / n], size=resamples)
    boot = 100.0 * (draws[:, 0] - draws[:, 1]) / n
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(boot, [tail, 100 - tail])
    return drop, float(low), float(high)


def verdict(low: float, high: float, bound: float | None) -> str:
    """failed only when the whole interval is beyond the bound; passed when all of it is within; else unsure."""
    if bound is None:
        return ""
    if low > bound + 1e-9:
        return FAIL
    if high <= bound + 1e-9:
        return PASS
    return UNSURE


def ci_text(low: float | None, high: float | None) -> str:
    """The interval as results.csv shows it: "[-1.20, +3.40]" (points)."""
    if low is None or high is None:
        return ""
    return f"[{low:+.2f}, {high:+.2f}]"
