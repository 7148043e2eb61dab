"""Paired timing: every row of one device timed in rounds next to the eager reference, a ratio per round.

This host's speed moves by tens of percent between minutes (eager 575 ms in one run, 363 ms in the
next), so p50s taken one row after the other compare the minutes as much as the runtimes. Here each
(artifact, runtime) row gets one resident child that loads its session once (load and first inference
timed alone, nothing else running); then, round after round, every live row runs one inference, in an
order rotated by one each round, with a short pause before each call. Host drift hits every row of a
round alike, so the median over rounds of (row / that round's eager) is what a night says about a
format, with a distribution-free 95 % interval. The per-round samples are kept (`Rounds`): the
error-rate script resamples them.

Budget (benchmark.full / quick): `warmup_runs` interleaved rounds first, not counted; then rounds until
at least `min_runs` rounds AND `min_seconds` of rounds, or until `max_seconds` (the cap wins; at least
one round). `timeout_s` bounds a child's start (imports, load, first run) and each of its inferences.
"""

from __future__ import annotations

import gc
import itertools
import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.benchmarks import hostload
from edgebench.benchmarks.harness import check_finite, split_clips, timed_run
from edgebench.benchmarks.local import bench_inputs, device_lock, last_stage, mark_stage
from edgebench.benchmarks.stats import block_stability, median_interval, summarize
from edgebench.catalogue import EAGER
from edgebench.child_memory import own_peak_mb
from edgebench.config import BudgetConfig
from edgebench.isolation import ChildFailed, Resident, stopping
from edgebench.records import PASSED, RUNTIME_FAILED, SKIPPED, Artifact, LatencyResult, ModelRef, write_json_atomic
from edgebench.runtimes.base import NotSupported, Runtime

log = logging.getLogger(__name__)

PAUSE_S = 0.05  # before each call: the previous runtime's worker threads stop spinning (measured: without it 1.22-1.41x, with 1.14x)


@dataclass(frozen=True)
class PairedRow:
    """One row to time: an artifact on a runtime (picklable; `name` is the row's, a variant's own name), its log."""

    artifact: Artifact
    name: str
    runtime: Runtime
    log_path: Path

    @property
    def label(self) -> str:
        return f"{self.artifact.format} {self.artifact.precision} {self.name}"

    @property
    def is_eager(self) -> bool:
        return self.artifact.format == EAGER.format and self.name == EAGER.runtime


@dataclass
class Rounds:
    """The per-round samples of one paired session, in ms (NaN where a row was not timed); saved in the run folder."""

    labels: list[str]
    ms: np.ndarray  # rounds x rows
    eager: int | None  # column of the eager reference
    threads: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    def ratios(self, column: int) -> np.ndarray:
        """Row / eager for every round in which both were timed."""
        if self.eager is None:
            return np.array([])
        r = self.ms[:, column] / self.ms[:, self.eager]
        return r[np.isfinite(r)]

    def save(self, path: Path) -> None:
        write_json_atomic(path, {"labels": self.labels, "eager": self.eager, "threads": self.threads, "meta": self.meta,
                                 "ms": [[None if math.isnan(v) else round(float(v), 4) for v in row] for row in self.ms]})

    @classmethod
    def load(cls, path: Path) -> "Rounds":
        d = json.loads(Path(path).read_text())
        ms = np.array([[np.nan if v is None else v for v in row] for row in d["ms"]], dtype=np.float64)
        return cls(d["labels"], ms.reshape(len(d["ms"]), len(d["labels"])), d["eager"], d.get("threads", 0),
                   d.get("meta", {}))


# ---------------------------------------------------------------- the child


def serve_row(artifact: Artifact, runtime: Runtime, ref: ModelRef, inputs_path: str | None,
              threads: int) -> tuple[dict, Any]:  # fmt: skip
    """In the child: load (timed) and one first inference (timed); then one timed inference per "run" request."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    mark_stage("load inputs")
    feeds = split_clips(bench_inputs(ref, inputs_path))
    mark_stage("load")
    start = time.perf_counter_ns()
    try:
        session = runtime.load(artifact, ref, threads)
    except NotSupported as e:
        return {"status": SKIPPED, "reason": f"{runtime.name} does not support this artifact: {e}"}, None
    load_ms = (time.perf_counter_ns() - start) / 1e6
    mark_stage("first run")
    first_ns, out = timed_run(session, feeds[0])
    check_finite(out, "first run")
    mark_stage("measure")
    gc.collect()
    gc.disable()  # as timeit does: no collection inside a timed call
    counter = itertools.count(1)

    def answer(message: str):
        if message == "stop":
            session.close()
            mark_stage("done")
            return {"peak_rss_mb": own_peak_mb()}
        i = next(counter)
        ns, result = timed_run(session, feeds[i % len(feeds)])
        check_finite(result, f"run {i + 1}")
        return ns

    ready = {"status": PASSED, "load_ms": load_ms, "first_ms": first_ns / 1e6, "runtime_version": runtime.version(),
             "session_options": {**runtime.describe(), **dict(getattr(session, "options", {}) or {})}}
    return ready, answer


# ---------------------------------------------------------------- the parent


def time_rows(rows: list[PairedRow], ref: ModelRef, inputs_path: str | None, budget: BudgetConfig, threads: int,
              flops: float | None, noisy_iqr_ratio: float, device: str = "local", lock_dir: str | Path | None = None
              ) -> tuple[list[LatencyResult], Rounds]:  # fmt: skip
    """Time `rows` interleaved on this host (one LatencyResult each, in order) and keep the rounds.

    A row whose child cannot start, crashes, hangs or returns NaN is runtime_failed with the reason and
    its stage; an unavailable runtime or an unsupported artifact is skipped; the other rows go on.
    """
    results = [LatencyResult(r.artifact.model, r.artifact.format, r.artifact.precision, r.name, device, SKIPPED,
                             threads=threads) for r in rows]  # fmt: skip
    ms = np.full((0, len(rows)), np.nan)
    with device_lock(device, lock_dir):
        children = {i: _start(row, results[i], ref, inputs_path, budget, threads) for i, row in enumerate(rows)}
        children = {i: c for i, c in children.items() if c is not None}
        try:
            ms, meta = _rounds(rows, results, children, budget)
        finally:
            for i, child in children.items():
                _stop(child, results[i], budget.timeout_s)
    eager = next((i for i, r in enumerate(rows) if r.is_eager and results[i].status == PASSED), None)
    rounds = Rounds([r.label for r in rows], ms, eager, threads, meta)
    batch = ref.inputs[0].shape[0] if ref.inputs and ref.inputs[0].shape else 1
    for i, row in enumerate(results):
        if row.status == PASSED:
            _fill(row, ms[:, i], rounds.ratios(i) if i != eager else np.array([]), batch, flops, noisy_iqr_ratio,
                  rounds.meta)
    if eager is not None:  # the reference against itself
        results[eager].ratio_vs_eager = results[eager].ratio_low = results[eager].ratio_high = 1.0
    return results, rounds


def _start(row: PairedRow, result: LatencyResult, ref, inputs_path, budget: BudgetConfig, threads: int
           ) -> Resident | None:  # fmt: skip
    """The row's loaded child, or None with the row saying why (skipped, runtime_failed)."""
    a, runtime = row.artifact, row.runtime
    if not a.ok:
        result.reason = f"no artifact ({a.status}: {a.reason})" if a.reason else f"no artifact ({a.status})"
        return None
    if a.format not in runtime.formats:
        result.reason = f"{runtime.name} cannot run format {a.format}"
        return None
    if reason := runtime.unavailable_reason():  # said without starting a child
        result.reason = reason
        return None
    result.extra["log_path"] = str(row.log_path)
    args = (a, runtime, ref, str(inputs_path) if inputs_path else None, threads)
    try:
        child = Resident(serve_row, args, row.log_path, budget.timeout_s)
    except ChildFailed as e:
        _failed(row, result, str(e))
        return None
    ready = child.ready
    if ready["status"] != PASSED:
        result.reason = ready["reason"]
        child.close()
        return None
    result.status = PASSED
    result.load_ms, result.first_ms = ready["load_ms"], ready["first_ms"]
    result.runtime_version = ready["runtime_version"]
    result.extra["session_options"] = ready["session_options"]
    return child


def _rounds(rows, results, children: dict[int, Resident], budget: BudgetConfig) -> tuple[np.ndarray, dict]:
    """Warm-up rounds, then timed rounds under the budget: rounds x rows ms, and what stopped them, when,
    and the share of the host's CPU other processes took meanwhile (benchmarks.hostload)."""
    timed: list[np.ndarray] = []
    ours = [os.getpid(), *(child.proc.pid for child in children.values())]
    start, cpu = time.perf_counter(), None
    for n in itertools.count(-budget.warmup_runs):
        if n == 0:
            start, cpu = time.perf_counter(), hostload.snapshot(ours)
        stopped_by = "no row left" if not children else ""
        if children:
            sample = _round(rows, results, children, budget, n)
            if n >= 0:  # a warm-up round is run, not kept
                timed.append(sample)
            elapsed = time.perf_counter() - start
            if n >= 0 and elapsed >= budget.max_seconds:
                stopped_by = "max_seconds"
            elif n >= 0 and len(timed) >= budget.min_runs and elapsed >= budget.min_seconds:
                stopped_by = "min_runs_and_min_seconds"
        if stopped_by:
            share = hostload.foreign_share(cpu, hostload.snapshot(ours)) if timed else None
            return np.array(timed).reshape(len(timed), len(rows)), {
                "stopped_by": stopped_by, "seconds": round(time.perf_counter() - start, 3),
                "warmup_rounds": budget.warmup_runs, "foreign_cpu": None if share is None else round(share, 4)}
    raise AssertionError("unreachable")


def _round(rows, results, children: dict[int, Resident], budget: BudgetConfig, n: int) -> np.ndarray:
    """One inference of every live row, in the order rotated by `n`; a row that fails leaves the session."""
    sample = np.full(len(rows), np.nan)
    for i in np.roll(np.arange(len(rows)), n):
        if i not in children:
            continue
        time.sleep(PAUSE_S)
        try:
            sample[i] = children[i].ask("run", budget.timeout_s) / 1e6
        except ChildFailed as e:
            _failed(rows[i], results[i], str(e))
            del children[i]
    return sample


def _stop(child: Resident, result: LatencyResult, timeout_s: float) -> None:
    """Ask for the child's peak memory, then let it end (at once when the run is stopping)."""
    if stopping():
        child.close()
        return
    try:
        result.peak_rss_mb = child.ask("stop", timeout_s)["peak_rss_mb"]
    except ChildFailed as e:
        log.warning("%s/%s/%s: no peak memory (%s)", result.model, result.format, result.runtime, e)
    finally:
        child.close()


def _failed(row: PairedRow, result: LatencyResult, reason: str) -> None:
    where = last_stage(row.log_path)
    result.status = RUNTIME_FAILED
    result.reason = f"{reason} (during {where})" if where and where != "done" else reason
    log.warning("%s/%s/%s on %s: %s (log: %s)", result.model, result.format, result.runtime, result.device,
                result.reason, row.log_path)


def _fill(row: LatencyResult, ms: np.ndarray, ratios: np.ndarray, batch: int, flops, noisy_iqr_ratio: float,
          meta: dict) -> None:  # fmt: skip
    """A passed row's statistics from its own samples, and its ratio to eager from the rounds both ran."""
    samples = ms[np.isfinite(ms)]
    if samples.size == 0:
        row.status, row.reason = RUNTIME_FAILED, "no timed round"
        return
    for key, value in summarize(samples / 1e3, batch=batch, flops=flops, noisy_iqr_ratio=noisy_iqr_ratio).items():
        setattr(row, key, value)
    row.warmup_runs = meta["warmup_rounds"]
    row.foreign_cpu = meta["foreign_cpu"]
    row.extra.update(stopped_by=meta["stopped_by"], steady_seconds=meta["seconds"], paired=True,
                     samples_ms=[round(float(v), 4) for v in samples])
    if ratios.size:
        row.ratio_vs_eager, row.ratio_low, row.ratio_high = median_interval(ratios)
        row.stability = block_stability(ratios)  # the steadiness of what is judged, host drift removed
