"""The export-and-benchmark flow under prefect_test_harness, on a small input: every format, a
converter that raises without stopping the flow, and the artifact cache on the second run."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from prefect.testing.utilities import prefect_test_harness

from edgebench.flows.export_and_benchmark import export_and_benchmark

pytestmark = pytest.mark.slow

CONFIG = """
formats: {torchscript: [fp32], onnx: [fp32], coreml: [fp32, fp16], tflite: [fp32], fault: [fp32]}
runtimes: [torch, torchscript, onnxruntime, litert, coreml, coreml-mil]
parity: {random_clips: 2}
repair: {enabled: true}
benchmark:
  quick: {warmup_runs: 0, min_runs: 2, min_seconds: 0, max_seconds: 5, timeout_s: 300}
"""


@pytest.fixture(scope="module")
def harness():
    with prefect_test_harness(server_startup_timeout=180):
        yield


def run(tmp_path, **params) -> pd.DataFrame:
    config = tmp_path / "pipeline.yaml"
    config.write_text(CONFIG)
    state = export_and_benchmark(models=["resnet_mixed"], budget="quick", out=str(tmp_path / "out"),
                                 config_path=str(config), input_shape=[1, 3, 4, 32, 32], return_state=True, **params)
    assert state.is_completed(), state.message
    html = state.result()
    assert html.endswith("report.html")
    return pd.read_csv(tmp_path / "out" / "latest" / "results.csv", keep_default_na=False)


def test_flow_exports_everything_and_survives_a_failing_converter(harness, fault_formats, tmp_path):
    rows = run(tmp_path)
    fault = rows[rows["format"] == "fault"]
    assert list(fault["status"]) == ["export_failed"]
    assert "RuntimeError: converter exploded on purpose" in fault["reason"].iloc[0]
    passed = rows[rows["status"] == "passed"]
    assert {("torchscript", "torchscript"), ("onnx", "onnxruntime"), ("tflite", "litert"),
            ("coreml", "coreml-mil"), ("pytorch", "torch")} <= set(zip(passed["format"], passed["runtime"]))
    assert set(rows.loc[rows["runtime"] == "coreml", "status"]) == {"skipped"}
    timed = passed[passed["runtime"] != "coreml-mil"]
    assert (timed["p50_ms"].astype(float) > 0).all()
    assert (timed["ratio_vs_eager"].astype(float) > 0).all()  # every local row timed interleaved with eager
    assert (timed["ratio_low"].astype(float) <= timed["ratio_vs_eager"].astype(float)).all()
    assert (tmp_path / "out" / "latest" / "timing" / "resnet_mixed-local.json").exists()  # the rounds, for resampling
    repairs = json.loads((tmp_path / "out" / "latest" / "run.json").read_text())["records"]["repairs"]
    assert [(r["format"], r["precision"], r["status"]) for r in repairs] == [("coreml", "fp16", "not_needed")]

    again = run(tmp_path, runtimes=["torch", "onnxruntime"])  # the second night: exports come from the cache
    exported = again[again["format"].isin(["torchscript", "onnx", "coreml", "tflite"])]
    assert not exported.empty
    run_json = json.loads((tmp_path / "out" / "latest" / "run.json").read_text())
    artifacts = [a for a in run_json["records"]["artifacts"] if a["status"] == "passed"]
    assert len(artifacts) == 5 and all(a["cached"] for a in artifacts)
