"""Local latency benchmarks: one fresh child process per (artifact, runtime), one benchmark per device at a time.

Why a child: the measurement starts from fresh memory (no allocator or thread-pool state left by
export or parity), peak RSS belongs to this row alone, and a crash or hang in a native runtime
becomes a `runtime_failed` row with a reason instead of taking the run down.

Why a lock: two benchmarks on one device would share its cores and caches and both numbers would
be wrong. `device_lock` takes an exclusive `fcntl.flock` on `<lock dir>/<device>.lock` for the
whole child; any other benchmark of that device, from this run, another task or another run on the
same host, waits. The default lock dir is host-wide (`$EDGEBENCH_LOCK_DIR`, else
`<tmp>/edgebench-locks`) because concurrent runs with different out dirs share the same CPU.
The kernel drops the lock when the holder dies, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgebench.benchmarks.harness import measure
from edgebench.benchmarks.stats import DEFAULT_NOISY_IQR_RATIO
from edgebench.catalogue import EAGER
from edgebench.child_memory import own_peak_mb
from edgebench.config import BudgetConfig
from edgebench.isolation import run_child
from edgebench.models.inputs import load_inputs, random_clips
from edgebench.records import PASSED, RUNTIME_FAILED, SKIPPED, Artifact, LatencyResult, ModelRef
from edgebench.runtimes.base import NotSupported, Runtime, resolve_threads
from edgebench.runtimes.registry import get_runtime

log = logging.getLogger(__name__)

STAGE_MARK = "[edgebench-bench] stage:"
MAX_SAMPLES_KEPT = 5000


# ---------------------------------------------------------------- device lock


def lock_dir_default() -> Path:
    return Path(os.environ.get("EDGEBENCH_LOCK_DIR") or Path(tempfile.gettempdir()) / "edgebench-locks")


def device_key(device: str) -> str:
    """The device a benchmark occupies: `local` is this host's cores, or only the cores this process is pinned
    to (`local@cpus0-3`: fleet workers pinned to their own cores measure side by side)."""
    if device != "local" or not hasattr(os, "sched_getaffinity"):
        return device
    mine = sorted(os.sched_getaffinity(0))
    if len(mine) == os.cpu_count():
        return device
    return f"{device}@cpus{mine[0]}-{mine[-1]}" if mine == list(range(mine[0], mine[-1] + 1)) else \
        f"{device}@cpus{'_'.join(map(str, mine))}"


@contextmanager
def device_lock(device: str = "local", lock_dir: str | Path | None = None) -> Iterator[Path]:
    """Hold an exclusive flock for `device` (its cores: device_key) until the block ends; yields the lock file path."""
    d = Path(lock_dir) if lock_dir else lock_dir_default()
    d.mkdir(parents=True, exist_ok=True)
    path = d / (re.sub(r"[^A-Za-z0-9_.@-]+", "_", device_key(device)) + ".lock")
    with open(path, "a+") as f:
        start = time.perf_counter()
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        waited = time.perf_counter() - start
        if waited > 1:
            log.info("waited %.1f s for the %s benchmark lock", waited, device)
        try:
            yield path
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


# ---------------------------------------------------------------- child side


def mark_stage(name: str) -> None:
    """Mark in the child's log where it is, so a crash or a timeout can name its stage."""
    print(f"{STAGE_MARK} {name}", flush=True)


def bench_inputs(ref: ModelRef, inputs_path: str | None) -> dict:
    """The run's saved clips, or three seeded random ones without a file."""
    if inputs_path:
        return load_inputs(Path(inputs_path))

    return {ref.inputs[0].name: random_clips(ref, 3, 0)}


def _bench_child(
    artifact: Artifact,
    runtime_name: str,
    runtime: Runtime | None,
    ref: ModelRef,
    inputs_path: str | None,
    budget: BudgetConfig,
    threads: int,
    flops: float | None,
    noisy_iqr_ratio: float,
) -> dict:
    """Runs in the child: resolve the runtime, load (timed), measure, report peak RSS."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    mark_stage("resolve runtime")
    if runtime is None:
        runtime = get_runtime(runtime_name)
    reason = runtime.unavailable_reason()
    if reason:
        return {"status": SKIPPED, "reason": reason}
    if artifact.format not in runtime.formats:
        return {"status": SKIPPED, "reason": f"{runtime.name} cannot run format {artifact.format}"}
    version = runtime.version()
    mark_stage("load inputs")
    inputs = bench_inputs(ref, inputs_path)
    try:
        mark_stage("load")
        start = time.perf_counter_ns()
        session = runtime.load(artifact, ref, threads)
        load_ms = (time.perf_counter_ns() - start) / 1e6
        try:
            mark_stage("measure")

            batch = ref.inputs[0].shape[0] if ref.inputs and ref.inputs[0].shape else 1
            stats = measure(session, inputs, budget, batch=batch, flops=flops, noisy_iqr_ratio=noisy_iqr_ratio)
            options = {**runtime.describe(), **dict(getattr(session, "options", {}) or {})}
        finally:
            session.close()
    except NotSupported as e:
        return {"status": SKIPPED, "reason": f"{runtime.name} does not support this artifact: {e}"}
    mark_stage("done")
    return {
        "status": PASSED,
        "load_ms": load_ms,
        "stats": stats,
        "peak_rss_mb": own_peak_mb(),
        "runtime_version": version,
        "runtime_options": options,
    }


# ---------------------------------------------------------------- parent side


def last_stage(log_path: Path) -> str:
    """The last stage a child's log names ("" if none)."""
    try:
        lines = Path(log_path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    marks = [ln[len(STAGE_MARK):].strip() for ln in lines if ln.startswith(STAGE_MARK)]
    return marks[-1] if marks else ""


def bench_local(
    artifact: Artifact,
    runtime_name: str,
    ref: ModelRef,
    inputs_path: str | Path | None,
    budget: BudgetConfig,
    threads: int,
    flops: float | None,
    timeout_s: float,
    log_path: str | Path,
    *,
    noisy_iqr_ratio: float = DEFAULT_NOISY_IQR_RATIO,
    device: str = "local",
    lock_dir: str | Path | None = None,
    runtime: Runtime | None = None,
) -> LatencyResult:
    """Benchmark one artifact on one local runtime in a fresh child; never raises for runtime trouble.

    `runtime` (a picklable Runtime instance) overrides the registry lookup of `runtime_name`; tests
    use it for synthetic runtimes. A crash, hang (timeout_s) or exception -> runtime_failed with the
    reason and the stage it happened in; an unavailable runtime or a missing artifact -> skipped.
    """
    name = runtime.name if runtime is not None else runtime_name
    threads = resolve_threads(threads)
    row = LatencyResult(
        model=artifact.model, format=artifact.format, precision=artifact.precision,
        runtime=name, device=device, status=SKIPPED, threads=threads,
    )
    if not artifact.ok:
        row.reason = f"no artifact ({artifact.status}: {artifact.reason})" if artifact.reason else f"no artifact ({artifact.status})"
        return row
    if runtime is None:
        unavailable = get_runtime(runtime_name).unavailable_reason()
        if unavailable:  # said without starting a child
            row.reason = unavailable
            return row
    log_path = Path(log_path)
    row.extra["log_path"] = str(log_path)
    args = (artifact, runtime_name, runtime, ref, str(inputs_path) if inputs_path else None,
            budget, threads, flops, noisy_iqr_ratio)
    with device_lock(device, lock_dir):
        done = run_child(_bench_child, args, timeout_s, log_path)
    if done.failure:
        stage = last_stage(log_path)
        row.status = done.failure.status(RUNTIME_FAILED)
        row.peak_rss_mb = done.memory.peak_mb
        reason = done.failure.reason
        row.reason = f"{reason} (during {stage})" if stage and stage != "done" else reason
        log.warning("%s/%s/%s on %s: %s (log: %s)", artifact.model, artifact.format, name, device, row.reason, log_path)
        return row
    out = done.value
    row.status = out["status"]
    row.reason = out.get("reason", "")
    if row.status != PASSED:
        return row
    stats = dict(out["stats"])
    for key in ("stopped_by", "steady_seconds", "clips"):
        row.extra[key] = stats.pop(key)
    samples = stats.pop("samples_ms")
    if len(samples) <= MAX_SAMPLES_KEPT:  # every sample is in the stats; the raw list only when small
        row.extra["samples_ms"] = [round(v, 4) for v in samples]
    for key, value in stats.items():
        setattr(row, key, value)
    row.load_ms = out["load_ms"]
    row.peak_rss_mb = out["peak_rss_mb"]
    row.runtime_version = out["runtime_version"]
    row.runtime_options = out["runtime_options"]
    return row


def add_speedups(results: list[LatencyResult]) -> list[LatencyResult]:
    """speedup_vs_eager: 1 / ratio_vs_eager for a row timed interleaved with eager, else eager p50 / row p50
    for the same model on the same device (in place; also returned).

    The eager row is runtime "torch", format "pytorch", passed. A device without one (a phone) gets
    None: a speed-up across two devices would mix the devices' speeds with the formats'. Rows without
    a p50 (failed, skipped) get None too. The one rule: results.csv (reports.rows) applies it as well.
    """
    eager: dict[tuple[str, str], float] = {}
    for r in results:
        if r.runtime == EAGER.runtime and r.format == EAGER.format and r.status == PASSED and r.p50_ms:
            eager.setdefault((r.model, r.device), r.p50_ms)
    for r in results:
        base = eager.get((r.model, r.device))
        if r.status == PASSED and r.ratio_vs_eager:
            r.speedup_vs_eager = 1.0 / r.ratio_vs_eager
        else:
            r.speedup_vs_eager = base / r.p50_ms if base and r.status == PASSED and r.p50_ms else None
    return results
