"""Synthetic runs (no torch needed unless they write artifact files): the report tests' data, and a report preview."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from edgebench.config import HistoryConfig
from edgebench.records import (
    EXPORT_FAILED,
    PARITY_FAILED,
    PASSED,
    RUNTIME_FAILED,
    SKIPPED,
    Artifact,
    LatencyResult,
    ModelRef,
    ParityResult,
    RunData,
    TensorSpec,
)

# The regression scenarios are sized for a 10 % threshold and 3 noise units (configs/pipeline.yaml has 5 % and 2,
# chosen from the measured error rates; tests/unit/test_error_rates.py covers those)
TEN_PCT_3_NOISE = HistoryConfig(regression_pct=10.0, noise_k=3.0)
START = datetime(2026, 11, 1, 2, 0, tzinfo=timezone.utc)
# (format, precision, runtime) -> p50 ms of the order measured on a 2-core AVX2 host (docs/benchmarks.md)
SERIES_P50 = {
    ("pytorch", "fp32", "torch"): 1270.0,
    ("torchscript", "fp32", "torchscript"): 1240.0,
    ("onnx", "fp32", "onnxruntime"): 1410.0,
    ("tflite", "fp32", "litert"): 2020.0,
    ("coreml", "fp32", "coreml"): None,  # exported, cannot predict on Linux
    ("coreml", "fp16", "coreml"): None,
}
FLOPS = 86.69e9  # mc3_18's FLOPs per clip as torch counts them (edgebench info)
PEAK = {"peaks": {"fp32": {"gmacs": 60.0, "kernel": "synthetic fp32 GEMM"}, "int8": {"gmacs": 240.0, "kernel": "synthetic int8 GEMM"}},
        "threads": 2, "measured_at": "2026-11-01T01:00:00Z", "cached": True}  # a made-up host limit: eager at 57 %, LiteRT at 36 %
OPS = {
    "torchscript": {"aten::conv3d": 18, "aten::relu": 17, "aten::add": 8, "aten::mean": 1, "aten::linear": 1},
    "onnx": {"Conv": 18, "Relu": 17, "Add": 8, "ReduceMean": 1, "Gemm": 1, "Reshape": 1},
    "tflite": {"CONV_3D": 20, "MUL": 20, "ADD": 8, "PAD": 4, "TRANSPOSE": 2, "MEAN": 1, "RESHAPE": 1, "FULLY_CONNECTED": 1},
    "coreml": {"conv": 18, "relu": 17, "add": 8, "reduce_mean": 1, "reshape": 1, "linear": 1},
}


def model_ref(name: str = "resnet_mixed", provenance: str = "random:seed=0") -> ModelRef:
    return ModelRef(name=name, config_path=f"configs/models/{name}.yaml", weights_path=None, provenance=provenance,
                    weights_sha256="0" * 64, config_hash="1" * 64,
                    inputs=(TensorSpec("video", (1, 3, 16, 112, 112)),), outputs=(TensorSpec("logits", (1, 400)),))  # fmt: skip


def synthetic_run(night: int = 0, *, model: str = "resnet_mixed", p50: dict | None = None, overrides: dict | None = None,
                  out_dir: Path | None = None, provenance: str = "random:seed=0", iqr_frac: float = 0.01,
                  start: datetime = START, config: dict | None = None, peak: dict | None = None,
                  paired: bool = False, host: dict | None = None) -> RunData:  # fmt: skip
    """One night's records; `p50` and `overrides` ({(format, precision, runtime): {field: value}}) shape the night.

    Override fields: export_status, export_reason, parity_status, parity_reason, latency_status, latency_reason,
    max_abs_err, top1_agree, iqr_ms, log_text (written to the export log when out_dir is given); with `paired`
    (rows timed interleaved with eager, on `host`, default PAIRED_HOST): ratio (default p50 / eager p50),
    ratio_halfwidth (relative, default 0.02), stability (default 90), foreign_cpu (default 0.01).
    """
    p50 = {**SERIES_P50, **(p50 or {})}
    overrides = overrides or {}
    t0 = start + timedelta(days=night)
    run_id = f"{t0:%Y%m%dT%H%M%SZ}-n{night:02d}"
    out = Path(out_dir) if out_dir else None
    run = RunData(run_id=run_id, started_at=t0.isoformat(), ended_at=(t0 + timedelta(minutes=23, seconds=7)).isoformat(),
                  out_dir=str(out or ""), threads=2, models=[model_ref(model, provenance)],
                  config=config or {"models": [model], "formats": {"torchscript": ["fp32"], "onnx": ["fp32"],
                                                                  "coreml": ["fp32", "fp16"], "tflite": ["fp32"]},
                                     "parity": {"tolerances": {"fp32": {"max_abs_err": 1e-3, "min_top1_agree": 1.0},
                                                               "fp16": {"min_psnr_db": 30.0}}},
                                     "history": {"baseline_nights": 7}}, peak=peak or {},
                  host=host or (PAIRED_HOST if paired else {}))  # fmt: skip
    eager_p50 = p50[("pytorch", "fp32", "torch")]
    for (fmt, precision, runtime), ms in p50.items():
        o = overrides.get((fmt, precision, runtime), {})
        if fmt != "pytorch":
            run.artifacts.append(_artifact(model, fmt, precision, o, out))
            if o.get("export_status", PASSED) != PASSED:
                continue
            run.parity.append(_parity(model, fmt, precision, runtime, ms, o))
        if ms is None and "p50_ms" not in o:
            run.latency.append(LatencyResult(model, fmt, precision, runtime, "local", SKIPPED,
                                             reason="Core ML prediction needs macOS"))  # fmt: skip
            continue
        ms = o.get("p50_ms", ms)
        status = o.get("latency_status", PASSED)
        if status == RUNTIME_FAILED:
            run.latency.append(LatencyResult(model, fmt, precision, runtime, "local", status,
                                             reason=o.get("latency_reason", "killed by SIGSEGV")))  # fmt: skip
            continue
        iqr = o.get("iqr_ms", ms * iqr_frac)
        run.latency.append(LatencyResult(
            model, fmt, precision, runtime, "local", status, reason=o.get("latency_reason", ""),
            load_ms=120.0, first_ms=ms * 1.3, warmup_runs=2, runs=10, min_ms=ms * 0.97, mean_ms=ms * 1.01,
            p50_ms=ms, p90_ms=ms * 1.04, p99_ms=ms * 1.07, std_ms=iqr / 1.35, iqr_ms=iqr, noisy=iqr / ms > 0.1,
            fps=1000.0 / ms, gflops=FLOPS / ms / 1e6, peak_rss_mb=850.0, threads=2, speedup_vs_eager=eager_p50 / ms if fmt != "pytorch" else 1.0,
            **(_paired(o, ms / eager_p50) if paired else {}),
        ))  # fmt: skip
    return run


PAIRED_HOST = {"cpu": "Synthetic Xeon", "isa": ["avx2", "avx512f", "fma"]}


def _paired(o: dict, ratio: float) -> dict:
    """The fields a row timed interleaved with eager has: its ratio with an interval, its stability."""
    ratio = o.get("ratio", ratio)
    half = o.get("ratio_halfwidth", 0.02) * ratio
    return {"ratio_vs_eager": ratio, "ratio_low": ratio - half, "ratio_high": ratio + half,
            "stability": o.get("stability", 90.0), "cv": 0.02, "trimmed_mean_ms": None,
            "foreign_cpu": o.get("foreign_cpu", 0.01)}


def _artifact(model, fmt, precision, o, out: Path | None) -> Artifact:
    status = o.get("export_status", PASSED)
    path, log_path = "", ""
    if out is not None:
        folder = out / "artifacts" / f"{fmt}-{precision}"
        folder.mkdir(parents=True, exist_ok=True)
        log_path = str(folder / "export.log")
        Path(log_path).write_text(o.get("log_text", f"exporting {model} to {fmt} {precision}\ndone\n"))
        if status == PASSED:
            from edgebench.converters.registry import get_converter  # imports torch: only when files are written

            path = str(folder / f"{model}{get_converter(fmt).suffix}")
            Path(path).write_bytes(b"\0" * 64)
    return Artifact(model=model, format=fmt, precision=precision, status=status,
                    reason=o.get("export_reason", "" if status == PASSED else "converter crashed"), path=path,
                    size_bytes=46_780_000 if precision == "fp32" else 23_390_000, sha256="ab" * 32,
                    export_s=20.0 if fmt == "tflite" else 8.0, versions={"torch": "2.14.1"},
                    op_census=OPS.get(fmt, {}) if status == PASSED else {}, log_path=log_path)  # fmt: skip


def _parity(model, fmt, precision, runtime, ms, o) -> ParityResult:
    if ms is None and "parity_status" not in o:
        return ParityResult(model, fmt, precision, runtime, SKIPPED, reason="Core ML prediction needs macOS")
    status = o.get("parity_status", PASSED)
    err = o.get("max_abs_err", 2.7e-7 if fmt == "tflite" else 1.3e-7)
    reason = o.get("parity_reason", f"max abs err {err:.3g} > tolerance 0.001" if status == PARITY_FAILED else "")
    return ParityResult(model, fmt, precision, runtime, status, reason=reason, max_abs_err=err, mean_abs_err=err / 5,
                        cosine=1.0 - err, psnr_db=120.0, top1_agree=o.get("top1_agree", 1.0), top5_agree=1.0,
                        clips=5)  # fmt: skip


def synthetic_history(nights: int = 10, jitter: dict | None = None, **kw) -> list[RunData]:
    """`nights` runs; jitter {(format, precision, runtime): [relative offsets per night]} moves p50 per night."""
    runs = []
    for n in range(nights):
        p50 = {}
        for key, offsets in (jitter or {}).items():
            p50[key] = SERIES_P50[key] * (1.0 + offsets[n % len(offsets)])
        runs.append(synthetic_run(n, p50=p50, **kw))
    return runs


__all__ = ["synthetic_run", "synthetic_history", "model_ref", "EXPORT_FAILED", "PARITY_FAILED", "RUNTIME_FAILED"]
