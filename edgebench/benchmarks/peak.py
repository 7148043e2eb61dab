"""This host's limit: the best matrix-multiply rate (GMAC/s) per precision over the runtimes' own kernels, cached.

The limit belongs to the host, not to a run: it is cached per (CPU model, ISA flags, threads, kernel
library versions) in a host-wide folder (`$EDGEBENCH_PEAK_DIR`, else `~/.cache/edgebench/peak`), so
only the first run on a host (or after an upgrade) spends the few seconds of measuring. It is
measured in a child process holding the local device lock (no benchmark of another run shares the
cores meanwhile), and a failing kernel only drops that candidate.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from edgebench.benchmarks.gemm_kernels import KERNELS, SIZE
from edgebench.benchmarks.local import device_lock
from edgebench.errors import reason_of
from edgebench.host import cpu_isa, cpu_model
from edgebench.isolation import IsolatedFailure, run_isolated
from edgebench.packages import package_version
from edgebench.records import write_json_atomic

SCHEMA = 1  # bump when the measurement changes: older cache files are then ignored
LIBRARIES = ("torch", "onnxruntime", "ai-edge-litert", "numpy")
MIN_SECONDS, MIN_PRODUCTS = 0.3, 3  # per kernel, after one warm-up product: the best product counts
# The peak a row's precision is held against: weight-only w8 and w8a16 dequantize to float and compute in fp32
# on the CPU runtimes; fp16 and bf16 fall back to fp32 on a host without native kernels for them.
PEAK_OF = {"fp32": "fp32", "fp16": "fp16", "bf16": "bf16", "int8": "int8", "w8": "fp32", "w8a16": "fp32"}


def peak_dir() -> Path:
    return Path(os.environ.get("EDGEBENCH_PEAK_DIR") or Path.home() / ".cache" / "edgebench" / "peak")


def host_key(threads: int) -> dict:
    """What the limit depends on: CPU model, kernel ISA flags, threads, the kernels' library versions."""
    return {"schema": SCHEMA, "cpu": cpu_model(), "isa": cpu_isa(), "threads": threads, "size": SIZE,
            "versions": {name: package_version(name) for name in LIBRARIES}}


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return peak_dir() / f"peak-{digest}.json"


def _best_rate(product, macs: int, min_seconds: float) -> float:
    """GMAC/s of the fastest of at least MIN_PRODUCTS products over at least `min_seconds` (one warm-up first)."""
    product()
    best, spent, count = float("inf"), 0.0, 0
    while count < MIN_PRODUCTS or spent < min_seconds:
        start = time.perf_counter()
        product()
        seconds = time.perf_counter() - start
        best, spent, count = min(best, seconds), spent + seconds, count + 1
    return macs / best / 1e9


def measure(threads: int, size: int = SIZE, min_seconds: float = MIN_SECONDS) -> dict:
    """Every kernel the host's ISA allows, each at size^3 MACs: {"candidates": [...], "peaks": {precision: best}}."""
    isa, candidates = set(cpu_isa()), []
    for kernel in KERNELS:
        if kernel.needs and not isa & set(kernel.needs):
            continue
        try:
            gmacs = _best_rate(kernel.build(size, threads), size ** 3, min_seconds)
            candidates.append({"precision": kernel.precision, "kernel": kernel.name, "gmacs": round(gmacs, 1)})
        except Exception as e:  # noqa: BLE001 - a kernel this host or library version lacks drops out, saying why
            candidates.append({"precision": kernel.precision, "kernel": kernel.name, "error": reason_of(e)})
    peaks: dict[str, dict] = {}
    for c in candidates:
        if "gmacs" in c and c["gmacs"] > peaks.get(c["precision"], {}).get("gmacs", 0.0):
            peaks[c["precision"]] = {"gmacs": c["gmacs"], "kernel": c["kernel"]}
    return {"candidates": candidates, "peaks": peaks}


def _measure_locked(threads: int) -> dict:
    """measure() holding the local device lock (in the child process)."""
    with device_lock("local"):
        return measure(threads)


def host_peak(threads: int, refresh: bool = False, log_path: str | Path | None = None, timeout_s: float = 300) -> dict:
    """The cached limit of this host at `threads` (measured in a child when absent or `refresh`).

    Returns the cache record: the key's fields, `peaks`, `candidates`, `measured_at`, `cached`; or
    {"error": reason} when the child failed (the run goes on without a limit).
    """
    key = host_key(threads)
    path = cache_path(key)
    if path.exists() and not refresh:
        try:
            return {**json.loads(path.read_text()), "cached": True}
        except (OSError, ValueError):
            pass  # a damaged cache file is measured again
    log = Path(log_path) if log_path else path.with_suffix(".log")
    result = run_isolated(_measure_locked, (threads,), timeout_s, log)
    if isinstance(result, IsolatedFailure):
        return {"error": f"peak measurement failed: {result.reason}"}
    record = {**key, **result, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_json_atomic(path, record)
    return {**record, "cached": False}


def peak_for(peak: dict | None, precision: str) -> tuple[str, dict] | None:
    """(peak name, {"gmacs", "kernel"}) a row of `precision` is held against, or None without a limit."""
    peaks = (peak or {}).get("peaks") or {}
    name = PEAK_OF.get(precision)
    if name not in peaks:
        name = "fp32" if name else None
    return (name, peaks[name]) if name in peaks else None


def describe_limit(peak: dict) -> str:
    """One line on a run's limit: each precision's peak GMAC/s and the kernel that reached it, when and how."""
    if not peak:
        return "not measured (no row was timed on this host)"
    if "error" in peak:
        return peak["error"]
    parts = [f"{name} {p['gmacs']:,.0f} GMAC/s ({p['kernel']})" for name, p in peak.get("peaks", {}).items()]
    when = f"measured {peak.get('measured_at', '?')}{', cached' if peak.get('cached') else ''}, {peak.get('threads', '?')} threads"
    return f"{' · '.join(parts)} · {when}"
