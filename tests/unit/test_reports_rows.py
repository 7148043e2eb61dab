"""Rows: one per (model, format, precision, runtime, device), merge rules, status precedence, columns."""

from __future__ import annotations

import pandas as pd
import pytest

from edgebench.records import (
    EXPORT_FAILED,
    PARITY_FAILED,
    PASSED,
    RUNTIME_FAILED,
    SKIPPED,
    Artifact,
    LatencyResult,
    ParityResult,
    RunData,
)
from edgebench.reports.rows import COLUMNS, flatten
from tests.synthetic_runs import model_ref, synthetic_run

EXPECTED = ("run_id, started_at, model, weights, format, precision, runtime, device, status, reason, size_mb, "
            "export_s, max_abs_err, mean_abs_err, cosine, psnr_db, top1_agree, top5_agree, parity, load_ms, first_ms, "
            "p50_ms, p90_ms, p99_ms, mean_ms, iqr_ms, runs, noisy, peak_rss_mb, fps, speedup_vs_eager, "
            "baseline_p50_ms, delta_p50_pct, regression").split(", ")  # fmt: skip
EXPECTED += ["top1", "top5", "top1_drop", "top1_drop_ci", "accuracy"]  # evaluation (issue 11)
EXPECTED += ["runtime_options", "layers_npu", "layers_gpu", "layers_cpu", "mem_peak_low_mb", "mem_peak_high_mb",
             "job_url"]  # device backends (issue 13), after the accuracy columns
EXPECTED += ["first_divergent_layer"]  # localization (issue 12)
EXPECTED += ["speedup_vs_fp32", "calibration"]  # reduced precision (issue 10)
EXPECTED += ["gmacs", "pct_of_peak"]  # the host's limit (issue 27)
EXPECTED += ["peak_mb", "failure", "failure_detail"]  # the zoo (issue 28): child memory, failure class
EXPECTED += ["float_layers", "speedup_vs_quantized"]  # repair (issue 24)
EXPECTED += ["ratio_vs_eager", "ratio_low", "ratio_high", "baseline_ratio", "delta_ratio_pct", "cold_start_ms",
             "trimmed_mean_ms", "cv", "stability", "stable", "host_key", "foreign_cpu"]  # paired timing (issue 26)


def _run(**kw) -> RunData:
    return RunData(run_id="r1", started_at="2026-11-20T02:00:00+00:00", ended_at="2026-11-20T02:20:00+00:00",
                   out_dir="", threads=2, models=[model_ref("m", "kinetics400_v1")], **kw)  # fmt: skip


def _row(df: pd.DataFrame, fmt: str, runtime: str, device: str = "local") -> pd.Series:
    sel = df[(df["format"] == fmt) & (df["runtime"] == runtime) & (df["device"] == device)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def test_columns_exactly_in_order():
    df = flatten(synthetic_run(0))
    assert list(df.columns) == EXPECTED == COLUMNS


def test_one_row_per_key_with_eager_baseline_first():
    df = flatten(synthetic_run(0))
    keys = list(zip(df["model"], df["format"], df["precision"], df["runtime"], df["device"]))
    assert len(keys) == len(set(keys)) == 6
    eager = df.iloc[0]
    assert (eager["format"], eager["precision"], eager["runtime"]) == ("pytorch", "fp32", "torch")
    assert eager["status"] == PASSED and eager["parity"] == "" and eager["speedup_vs_eager"] == 1.0
    assert set(df["weights"]) == {"random:seed=0"}


def test_parity_and_latency_merge_on_key_parity_only_local():
    run = _run(
        artifacts=[Artifact("m", "tflite", "fp32", PASSED, size_bytes=2 * 2**20, export_s=3.0)],
        parity=[ParityResult("m", "tflite", "fp32", "litert", PASSED, max_abs_err=2e-7, top1_agree=1.0)],
        latency=[LatencyResult("m", "tflite", "fp32", "litert", "local", PASSED, p50_ms=100.0, iqr_ms=2.0, runs=10),
                 LatencyResult("m", "tflite", "fp32", "litert", "galaxy-s24", PASSED, p50_ms=20.0),
                 LatencyResult("m", "pytorch", "fp32", "torch", "local", PASSED, p50_ms=50.0)],
    )  # fmt: skip
    df = flatten(run)
    assert len(df) == 3
    local, hub = _row(df, "tflite", "litert"), _row(df, "tflite", "litert", "galaxy-s24")
    assert local["max_abs_err"] == 2e-7 and local["parity"] == "passed" and local["p50_ms"] == 100.0
    assert local["size_mb"] == pytest.approx(2.0) and local["export_s"] == 3.0 and local["runs"] == 10
    assert local["speedup_vs_eager"] == pytest.approx(0.5)  # filled from the eager row on the same device
    assert pd.isna(hub["max_abs_err"]) and hub["parity"] == "" and hub["p50_ms"] == 20.0
    assert pd.isna(hub["speedup_vs_eager"])  # no eager baseline on the phone
    assert hub["size_mb"] == pytest.approx(2.0) and hub["weights"] == "kinetics400_v1"


def test_export_failed_gives_one_row_per_runtime_that_could_run_it():
    run = _run(artifacts=[Artifact("m", "onnx", "fp32", EXPORT_FAILED, reason="Unsupported op aten::foo")])
    df = flatten(run, runtimes_for={"onnx": ["onnxruntime", "qnn"]})
    assert list(df["runtime"]) == ["onnxruntime", "qnn"]
    assert set(df["status"]) == {EXPORT_FAILED}
    assert all("aten::foo" in r for r in df["reason"])
    # a callable works too (the runtime registry's runtimes_for returns Runtime objects with .name)
    named = type("R", (), {"name": "onnxruntime"})()
    assert list(flatten(run, runtimes_for=lambda f: [named])["runtime"]) == ["onnxruntime"]


def test_export_failed_without_runtime_list_is_one_row_with_empty_runtime():
    run = _run(artifacts=[Artifact("m", "onnx", "fp32", EXPORT_FAILED, reason="boom")])
    df = flatten(run)
    assert len(df) == 1 and df["runtime"].iat[0] == "" and df["status"].iat[0] == EXPORT_FAILED
    assert df["reason"].iat[0] == "export: boom"


def test_export_failed_borrows_runtimes_seen_for_the_same_format():
    run = synthetic_run(0, overrides={("coreml", "fp16", "coreml"): {"export_status": EXPORT_FAILED}})
    row = _row(flatten(run)[lambda d: d["precision"] == "fp16"], "coreml", "coreml")
    assert row["status"] == EXPORT_FAILED


@pytest.mark.parametrize(
    "parity, latency, expected",
    [
        (PASSED, PASSED, PASSED),
        (SKIPPED, PASSED, PASSED),  # a skipped part does not hide one that ran
        (PASSED, SKIPPED, PASSED),  # coreml-mil: parity only, no latency
        (SKIPPED, SKIPPED, SKIPPED),
        (PARITY_FAILED, SKIPPED, PARITY_FAILED),
        (PARITY_FAILED, RUNTIME_FAILED, RUNTIME_FAILED),
        (RUNTIME_FAILED, PASSED, RUNTIME_FAILED),
        (PASSED, RUNTIME_FAILED, RUNTIME_FAILED),
    ],
)
def test_status_precedence(parity, latency, expected):
    run = _run(
        artifacts=[Artifact("m", "onnx", "fp32", PASSED)],
        parity=[ParityResult("m", "onnx", "fp32", "onnxruntime", parity, reason=f"p-{parity}" if parity != PASSED else "")],
        latency=[LatencyResult("m", "onnx", "fp32", "onnxruntime", "local", latency,
                               reason=f"l-{latency}" if latency != PASSED else "")],
    )  # fmt: skip
    row = flatten(run).iloc[0]
    assert row["status"] == expected
    assert row["parity"] == {PASSED: "passed", PARITY_FAILED: "failed"}.get(parity, "")
    if expected != PASSED:  # the decisive reason comes first
        assert row["reason"].split(": ", 1)[1].startswith(("p-" if parity == expected else "l-") + expected)


def test_export_failed_beats_everything():
    run = _run(
        artifacts=[Artifact("m", "onnx", "fp32", EXPORT_FAILED, reason="no")],
        latency=[LatencyResult("m", "onnx", "fp32", "onnxruntime", "local", PASSED, p50_ms=1.0)],
    )
    assert flatten(run)["status"].iat[0] == EXPORT_FAILED


def test_same_reason_from_parity_and_latency_said_once():
    df = flatten(synthetic_run(0))
    row = _row(df[df["precision"] == "fp32"], "coreml", "coreml")
    assert row["status"] == SKIPPED
    assert row["reason"] == "parity, latency: Core ML prediction needs macOS"


def test_artifact_no_runtime_ran_is_skipped_with_reason():
    df = flatten(_run(artifacts=[Artifact("m", "onnx", "fp32", PASSED)]))
    assert df["status"].iat[0] == SKIPPED and "no runtime ran" in df["reason"].iat[0]
