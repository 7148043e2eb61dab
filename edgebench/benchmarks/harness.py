"""The latency harness: first inference, warm-up, then steady-state runs chosen by time, all timed honestly."""

from __future__ import annotations

import gc
import time
from typing import Mapping, Sequence

import numpy as np

from edgebench.benchmarks.stats import DEFAULT_NOISY_IQR_RATIO, summarize
from edgebench.config import BudgetConfig
from edgebench.runtimes.base import Session


class NonFiniteOutput(RuntimeError):
    """A run produced NaN or Inf: the row is runtime_failed, its timings mean nothing."""


def split_clips(inputs: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """{"name": clips x input shape} (the saved parity inputs) or a list of feeds -> a list of feeds."""
    if isinstance(inputs, Mapping):
        counts = {len(a) for a in inputs.values()}
        if len(counts) != 1 or 0 in counts:
            raise ValueError(f"inputs need the same, non-zero number of clips per name, got {sorted(counts)}")
        return [{k: np.ascontiguousarray(a[i]) for k, a in inputs.items()} for i in range(counts.pop())]
    feeds = [dict(f) for f in inputs]
    if not feeds:
        raise ValueError("no input clips")
    return feeds


def check_finite(outputs: Mapping[str, np.ndarray], run: str) -> None:
    for name, value in outputs.items():
        arr = np.asarray(value)
        if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
            bad = "NaN" if np.isnan(arr).any() else "Inf"
            raise NonFiniteOutput(f"non-finite output ({bad}) in '{name}' on the {run}")


def timed_run(session: Session, feed: dict[str, np.ndarray]) -> tuple[int, dict[str, np.ndarray]]:
    """Nanoseconds of one `session.run` and its outputs."""
    start = time.perf_counter_ns()
    out = session.run(feed)
    return time.perf_counter_ns() - start, out


def measure(
    session: Session,
    inputs: Mapping[str, np.ndarray] | Sequence[Mapping[str, np.ndarray]],
    budget: BudgetConfig,
    *,
    batch: int = 1,
    flops: float | None = None,
    noisy_iqr_ratio: float = DEFAULT_NOISY_IQR_RATIO,
) -> dict:
    """Time `session` on the input clips (cycled) under `budget`; stats in ms plus the raw samples.

    Order: one first inference (first_ms), `warmup_runs` untimed-for-stats runs, then steady-state
    runs until at least `min_runs` AND `min_seconds`, or until `max_seconds` of steady state have
    passed (that cap wins over min_runs; the run in flight finishes, and there is always at least
    one run). Every steady-state sample is kept. Outputs of every run are checked for NaN/Inf
    outside the timed region. The garbage collector is paused during the steady state, as timeit
    does. Load time is the caller's to measure.
    """
    feeds = split_clips(inputs)
    n_feeds = len(feeds)
    first_ns, out = timed_run(session, feeds[0])
    check_finite(out, "first run")
    for i in range(budget.warmup_runs):
        _, out = timed_run(session, feeds[(1 + i) % n_feeds])
        check_finite(out, f"warm-up run {i + 1}")

    samples_ns: list[int] = []
    min_ns = int(budget.min_seconds * 1e9)
    max_ns = int(budget.max_seconds * 1e9)
    offset = 1 + budget.warmup_runs
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        phase_start = time.perf_counter_ns()
        while True:
            ns, out = timed_run(session, feeds[(offset + len(samples_ns)) % n_feeds])
            samples_ns.append(ns)
            check_finite(out, f"steady-state run {len(samples_ns)}")
            elapsed = time.perf_counter_ns() - phase_start
            if elapsed >= max_ns:
                stopped_by = "max_seconds"
                break
            if len(samples_ns) >= budget.min_runs and elapsed >= min_ns:
                stopped_by = "min_runs_and_min_seconds"
                break
    finally:
        if gc_was_enabled:
            gc.enable()

    seconds = [ns / 1e9 for ns in samples_ns]
    result = summarize(seconds, batch=batch, flops=flops, noisy_iqr_ratio=noisy_iqr_ratio)
    result.update(
        first_ms=first_ns / 1e6,
        warmup_runs=budget.warmup_runs,
        steady_seconds=elapsed / 1e9,
        stopped_by=stopped_by,
        clips=n_feeds,
        samples_ms=[ns / 1e6 for ns in samples_ns],
    )
    return result
