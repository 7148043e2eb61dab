"""Flatten a run's records into one row per (model, format, precision, runtime, device)."""

from __future__ import annotations

import json
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from edgebench.benchmarks.local import add_speedups
from edgebench.benchmarks.peak import peak_for
from edgebench.catalogue import EAGER
from edgebench.config import base_precision
from edgebench.config import DEFAULT_MIN_STABILITY
from edgebench.devices.registry import report_cells, report_columns
from edgebench.evaluation.stats import ci_text
from edgebench.records import (
    ACCURACY_FAILED,
    EXPORT_FAILED,
    OUT_OF_MEMORY,
    PARITY_FAILED,
    PASSED,
    REPAIR_FAILED,
    RUNTIME_FAILED,
    SKIPPED,
    Artifact,
    LatencyResult,
    AccuracyResult,
    ParityResult,
    RunData,
)
from edgebench.reports.failures import classify
from edgebench.reports.runinfo import host_key

SERIES = ["model", "format", "precision", "runtime", "device", "runtime_options"]  # one history series
DEVICE_COLUMNS = report_columns()  # what each device backend adds (AI Hub: layers per compute unit, memory, job)
COLUMNS = [
    "run_id", "started_at", "model", "weights", "format", "precision", "runtime", "device",
    "status", "reason", "size_mb", "export_s",
    "max_abs_err", "mean_abs_err", "cosine", "psnr_db", "top1_agree", "top5_agree", "parity",
    "load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "iqr_ms", "runs", "noisy",
    "peak_rss_mb", "fps", "speedup_vs_eager", "baseline_p50_ms", "delta_p50_pct", "regression",
    "top1", "top5", "top1_drop", "top1_drop_ci", "accuracy",
    "runtime_options", *DEVICE_COLUMNS,
    "first_divergent_layer",
    "speedup_vs_fp32", "calibration",
    "gmacs", "pct_of_peak",
    "peak_mb", "failure", "failure_detail",
    "float_layers", "speedup_vs_quantized",
    "ratio_vs_eager", "ratio_low", "ratio_high", "baseline_ratio", "delta_ratio_pct",
    "cold_start_ms", "trimmed_mean_ms", "cv", "stability", "stable", "host_key", "foreign_cpu",
]  # fmt: skip
STRING_COLUMNS = ["run_id", "started_at", "model", "weights", "format", "precision", "runtime",
                  "device", "status", "reason", "parity", "top1_drop_ci", "accuracy"]  # fmt: skip
STRING_COLUMNS += ["runtime_options"]  # the configured options, canonical JSON
STRING_COLUMNS += ["first_divergent_layer"]  # module where a parity failure's error first jumps (parity.localize)
STRING_COLUMNS += ["failure", "failure_detail"]  # a failed row's class and what it names (reports.failures)
STRING_COLUMNS += ["calibration"]  # what a calibrated artifact calibrated on: "video:<files> x8 minmax <sha>", "random ..."
STRING_COLUMNS += ["host_key"]  # CPU model, ISA flags and threads of the host that timed a local row (hashed)
STRING_COLUMNS += [c for c, kind in DEVICE_COLUMNS.items() if kind == "str"]
STRING_COLUMNS += ["float_layers"]  # an <precision>-mixed row's layers kept in higher precision, `;`-separated
INT_COLUMNS = ["runs", *(c for c, kind in DEVICE_COLUMNS.items() if kind == "int")]
BOOL_COLUMNS = ["noisy", "regression", "stable"]
FLOAT_COLUMNS = [c for c in COLUMNS if c not in STRING_COLUMNS + INT_COLUMNS + BOOL_COLUMNS]

_DTYPES = {**{c: "float64" for c in FLOAT_COLUMNS}, **{c: "Int64" for c in INT_COLUMNS},
           **{c: "boolean" for c in BOOL_COLUMNS}}  # fmt: skip

LOCAL = "local"
FAILED_STATUSES = (EXPORT_FAILED, OUT_OF_MEMORY, REPAIR_FAILED, RUNTIME_FAILED, PARITY_FAILED, ACCURACY_FAILED)
# Lower wins when a row's parts disagree: the most severe status names the row.
STATUS_RANK = {EXPORT_FAILED: 0, OUT_OF_MEMORY: 0, REPAIR_FAILED: 0, RUNTIME_FAILED: 1, PARITY_FAILED: 2,
               ACCURACY_FAILED: 2, SKIPPED: 3, PASSED: 4}  # fmt: skip
NO_FILE = (EXPORT_FAILED, OUT_OF_MEMORY, REPAIR_FAILED)  # an artifact record without a file: its own status names the row
MIB = 1024 * 1024  # sizes in MiB, as torchvision publishes them ("44.7 MB" for mc3_18)

_PARITY_FIELDS = ["max_abs_err", "mean_abs_err", "cosine", "psnr_db", "top1_agree", "top5_agree"]
_LATENCY_FIELDS = ["load_ms", "first_ms", "p50_ms", "p90_ms", "p99_ms", "mean_ms", "iqr_ms", "runs",
                   "noisy", "peak_rss_mb", "fps", "trimmed_mean_ms", "cv", "stability",
                   "ratio_vs_eager", "ratio_low", "ratio_high", "foreign_cpu"]  # fmt: skip

# format -> runtime names that can execute it: a mapping, or a callable such as
# lambda f: [r.name for r in edgebench.runtimes.registry.runtimes_for(f)]
RuntimesFor = Mapping[str, Iterable[str]] | Callable[[str], Iterable]


def flatten(run: RunData, history: pd.DataFrame | None = None, runtimes_for: RuntimesFor | None = None) -> pd.DataFrame:
    """The rows without the history columns (history only tells which runtimes a failed export would have met)."""
    add_speedups(run.latency)  # the one speed-up rule; finish_run applied it already, a rebuilt run may not have
    rows = [_row(run, key, parts) for key, parts in _join(run, history, runtimes_for).items()]
    _fill_speedup_vs_fp32(rows)
    rank = {f: i for i, f in enumerate(format_order(run))}
    rows.sort(key=lambda r: (r["model"], rank.get(r["format"], len(rank)), r["format"], *(r[c] for c in SERIES[2:])))
    return frame(rows)


def frame(records: list[dict]) -> pd.DataFrame:
    """A typed DataFrame with COLUMNS, in order, from plain dicts (missing keys are missing values)."""
    data = {}
    for c in COLUMNS:
        values = [r.get(c) for r in records]
        if c in STRING_COLUMNS:
            data[c] = pd.array(["" if _missing(v) else str(v) for v in values], dtype="str")
        elif c in FLOAT_COLUMNS:
            data[c] = np.array([_float(v) for v in values], dtype="float64")
        elif c in INT_COLUMNS:
            data[c] = pd.array([None if _missing(v) else int(float(v)) for v in values], dtype="Int64")
        else:
            data[c] = pd.array([None if _missing(v) else _to_bool(v) for v in values], dtype="boolean")
    return pd.DataFrame(data, columns=COLUMNS)


def coerce(df: pd.DataFrame) -> pd.DataFrame:
    """Every column of COLUMNS present, in order, with stable dtypes (extra columns kept after them)."""
    if (list(df.columns[: len(COLUMNS)]) == COLUMNS and all(str(df.dtypes[c]) == t for c, t in _DTYPES.items())
            and not df[STRING_COLUMNS].isna().to_numpy().any()):  # fmt: skip
        return df.reset_index(drop=True)  # already typed: pandas per-column work is slow, skip it
    out = frame(df.to_dict("records"))
    extra = [c for c in df.columns if c not in COLUMNS]
    for c in extra:
        out[c] = df[c].to_numpy()
    return out


def _float(v) -> float:
    if _missing(v):
        return np.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _missing(v) -> bool:
    if v is None or v is pd.NA:
        return True
    if isinstance(v, float):
        return v != v
    if isinstance(v, str):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def format_order(run: RunData) -> list[str]:
    """pytorch first, then the formats in config order."""
    return [EAGER.format, *list((run.config or {}).get("formats", {}) or {})]


def _to_bool(v) -> bool | None:
    if isinstance(v, str):
        t = v.strip().lower()
        if t in ("", "nan", "none", "<na>"):
            return None
        return t in ("true", "1", "yes")
    return bool(v)


def _join(run: RunData, history, runtimes_for) -> dict[tuple, dict]:
    """Group the records by row key: {key: {"artifact": ..., "parity": ..., "latency": ...}}."""
    joined: dict[tuple, dict] = {}
    for lr in run.latency:
        joined.setdefault((lr.model, lr.format, lr.precision, lr.runtime, lr.device or LOCAL), {})["latency"] = lr
    for pr in run.parity:
        joined.setdefault((pr.model, pr.format, pr.precision, pr.runtime, pr.device or LOCAL), {})["parity"] = pr
    for ar in getattr(run, "accuracy", None) or []:
        joined.setdefault((ar.model, ar.format, ar.precision, ar.runtime, LOCAL), {})["accuracy"] = ar
    for art in run.artifacts:
        prefix = (art.model, art.format, art.precision)
        keys = [k for k in joined if k[:3] == prefix]
        if not keys:
            targets = _expand(run, art, history, runtimes_for)
            keys = [(*prefix, r, d) for r, d in targets]
        for k in keys:
            joined.setdefault(k, {})["artifact"] = art
    return joined


def _expand(run: RunData, art: Artifact, history, runtimes_for) -> list[tuple[str, str]]:
    """(runtime, device) pairs for an artifact no runtime reported on (usually a failed export)."""
    if not art.ok:
        names = _runtime_names(runtimes_for, art.format)
        if names:
            return [(r, LOCAL) for r in names]
        seen = {(r.runtime, getattr(r, "device", LOCAL) or LOCAL) for r in [*run.latency, *run.parity]
                if r.model == art.model and r.format == art.format}  # fmt: skip
        if not seen and history is not None and len(history):
            h = history[(history["model"] == art.model) & (history["format"] == art.format)
                        & (history["precision"] == art.precision) & (history["runtime"] != "")]  # fmt: skip
            seen = set(zip(h["runtime"], h["device"]))
        if seen:
            return sorted(seen)
    return [("", LOCAL)]


def _runtime_names(runtimes_for, fmt: str) -> list[str]:
    """Names from a {format: [names]} mapping or a callable format -> names (or Runtime objects)."""
    if not runtimes_for:
        return []
    found = runtimes_for(fmt) if callable(runtimes_for) else runtimes_for.get(fmt, ())
    return [getattr(r, "name", r) for r in found or ()]


def _row(run: RunData, key: tuple, parts: dict) -> dict:
    model, fmt, precision, runtime, device = key
    art: Artifact | None = parts.get("artifact")
    pr: ParityResult | None = parts.get("parity")
    lr: LatencyResult | None = parts.get("latency")
    ar: AccuracyResult | None = parts.get("accuracy")
    status, reason = _status(art, pr, lr, ar)
    row = {c: None for c in COLUMNS}
    peaks = [p.peak_mb for p in (art, pr, ar) if p is not None and p.peak_mb] + ([lr.peak_rss_mb] if lr and lr.peak_rss_mb else [])
    row.update(run_id=run.run_id, started_at=run.started_at, model=model, weights=_weights(run, model),
               format=fmt, precision=precision, runtime=runtime, device=device, status=status, reason=reason,
               peak_mb=max(peaks) if peaks else None)  # the largest child of the row: export, check or benchmark
    if failure := classify(art, pr, lr, ar):
        row.update(failure=failure.kind, failure_detail=failure.detail)
    if art is not None:
        row.update(size_mb=art.size_bytes / MIB if art.size_bytes else None, export_s=art.export_s or None,
                   calibration=art.calibration, float_layers=";".join(art.float_layers))
    if pr is not None:
        row.update({f: getattr(pr, f) for f in _PARITY_FIELDS})
        row["parity"] = {PASSED: "passed", PARITY_FAILED: "failed"}.get(pr.status, "")
        row["first_divergent_layer"] = pr.first_divergent_layer
    if lr is not None:
        row.update({f: getattr(lr, f) for f in _LATENCY_FIELDS})
        row["runs"] = lr.runs or None
        row["speedup_vs_eager"] = lr.speedup_vs_eager
        row["runtime_options"] = json.dumps(lr.runtime_options, sort_keys=True, default=str) if lr.runtime_options else ""
        row.update(report_cells(lr))
        row.update(_limit_fields(lr, run.peak, device))
        row.update(_steadiness(run, lr))
    if ar is not None:
        row.update(top1=ar.top1, top5=ar.top5, top1_drop=ar.top1_drop,
                   top1_drop_ci=ci_text(ar.top1_drop_low, ar.top1_drop_high), accuracy=ar.verdict)
    return row


def _limit_fields(lr: LatencyResult, peak: dict, device: str) -> dict:
    """gmacs: the model's MACs (as `edgebench info` counts them) per second at p50, in billions; pct_of_peak:
    that against this host's peak for the row's precision (benchmarks.peak.PEAK_OF), for rows timed on this host."""
    if not lr.gflops:
        return {}
    gmacs = lr.gflops / 2  # a multiply-add is 2 FLOPs
    limit = peak_for(peak, lr.precision) if device == LOCAL else None
    return {"gmacs": gmacs, "pct_of_peak": 100.0 * gmacs / limit[1]["gmacs"] if limit else None}


def _steadiness(run: RunData, lr: LatencyResult) -> dict:
    """Cold start (load + first inference), whether the row is stable enough to be a baseline, and, for a row
    timed on this host, the host key its ratio belongs to (a baseline holds only for the same key)."""
    minimum = ((run.config or {}).get("benchmark") or {}).get("min_stability", DEFAULT_MIN_STABILITY)
    here = lr.device in ("", LOCAL) and bool(run.host)
    return {"cold_start_ms": lr.load_ms + lr.first_ms if lr.load_ms is not None and lr.first_ms is not None else None,
            "stable": lr.stability >= minimum if lr.stability is not None else None,
            "host_key": host_key(run.host, run.threads) if here else ""}


def _status(art, pr, lr, ar=None) -> tuple[str, str]:
    """The most severe status of the row's parts, with every part's reason, the decisive one first."""
    parts = [("export", art), ("parity", pr), ("latency", lr), ("accuracy", ar)]
    parts = [(name, p) for name, p in parts if p is not None]
    if art is not None and art.status in NO_FILE:
        status = art.status
    else:
        statuses = [p.status for name, p in parts if name != "export"]
        ran = [s for s in statuses if s != SKIPPED]  # a skipped part (coreml-mil has no latency) does not hide one that ran
        status = min(ran, key=lambda s: STATUS_RANK.get(s, 3)) if ran else SKIPPED
    by_text: dict[str, list[str]] = {}  # the same reason from parity and latency is said once
    for name, p in sorted(parts, key=lambda np_: np_[1].status != status):  # the decisive part first
        if p.reason:
            by_text.setdefault(p.reason, []).append(name)
    reason = " | ".join(f"{', '.join(names)}: {text}" for text, names in by_text.items())
    if status == SKIPPED and not reason and pr is None and lr is None and ar is None:
        reason = "export: no runtime ran this artifact"
    return status, reason


def _weights(run: RunData, model: str) -> str:
    for ref in run.models:
        if ref.name == model:
            return ref.provenance
    return ""


def _fill_speedup_vs_fp32(rows: list[dict]) -> None:
    """speedup_vs_fp32 = p50 of the same format's fp32 row on the same runtime and device / this row's p50;
    a <precision>-mixed row's speedup_vs_quantized, the same against the fully quantized <precision> row."""
    p50 = {(r["model"], r["format"], r["runtime"], r["device"], r["precision"]): r["p50_ms"] for r in rows if r["p50_ms"]}
    for r in rows:
        if not r["p50_ms"] or r["p50_ms"] <= 0:
            continue
        series = (r["model"], r["format"], r["runtime"], r["device"])
        for column, base in (("speedup_vs_fp32", "fp32"), ("speedup_vs_quantized", base_precision(r["precision"]))):
            if r["precision"] != base and (b := p50.get((*series, base))):
                r[column] = b / r["p50_ms"]
