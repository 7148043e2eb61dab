"""The coverage scorecard: a cell per model x format/precision, and what changed since the previous night."""

from __future__ import annotations

import pandas as pd
import pytest

from edgebench.reports.rows import flatten
from edgebench.reports.scorecard import cells, changes, latency_bucket, markdown, scorecard
from edgebench.reports.writer import write_run_reports
from tests.synthetic_runs import synthetic_run

FORMATS = {"torchscript": ["fp32"], "onnx": ["fp32"], "coreml": ["fp32", "fp16"], "tflite": ["fp32"]}
LEGALIZE = "RuntimeError: error: failed to legalize operation 'tfl.add' that was explicitly marked illegal"


def night(n, model="resnet_mixed", **kw):
    return flatten(synthetic_run(n, model=model, **kw))


def test_one_cell_per_model_and_format_precision():
    df = pd.concat([night(0), night(0, model="s3d", overrides={
        ("tflite", "fp32", "litert"): {"export_status": "export_failed", "export_reason": LEGALIZE}})])
    card = scorecard(df, FORMATS, anchors={"resnet_mixed": "model-1", "s3d": "model-2"})
    assert card["columns"] == [("eager", "fp32"), ("torchscript", "fp32"), ("onnx", "fp32"), ("coreml", "fp32"),
                               ("coreml", "fp16"), ("tflite", "fp32")]  # the config's order
    words = {r["model"]: [c["word"] for c in r["cells"]] for r in card["rows"]}
    assert words["resnet_mixed"] == ["pass", "pass", "pass", "skipped", "skipped", "pass"]  # Core ML: no macOS here
    assert words["s3d"][-1] == "unsupported"
    s3d = card["rows"][1]
    assert s3d["href"] == "#model-2" and s3d["cells"][-1]["title"].startswith("tfl.add in ")
    assert s3d["peak_mb"] == 850.0  # the benchmark children's resident peak
    onnx = card["rows"][0]["cells"][2]
    assert onnx["state"] == "passed" and "p50 1,410.0 ms on onnxruntime" in onnx["title"] and onnx["figure"] == "1,410 ms"


def test_a_failing_runtime_fails_the_cell_even_when_another_passed():
    df = night(0, overrides={("onnx", "fp32", "onnxruntime"): {"parity_status": "parity_failed", "max_abs_err": 0.4}})
    cell = cells(df)[("resnet_mixed", "onnx", "fp32")]
    assert cell.state == "numerics" and cell.failed and cell.word == "numerics"


def test_new_passes_new_failures_and_latency_buckets():
    before = night(0, overrides={("tflite", "fp32", "litert"): {"export_status": "export_failed",
                                                                 "export_reason": LEGALIZE}})
    now = night(1, p50={("onnx", "fp32", "onnxruntime"): 1410.0 * 1.7, ("torchscript", "fp32", "torchscript"): 1240 / 2.5},
                overrides={("pytorch", "fp32", "torch"): {},
                           ("torchscript", "fp32", "torchscript"): {},
                           ("coreml", "fp32", "coreml"): {}})
    now_fail = night(1, overrides={("onnx", "fp32", "onnxruntime"): {"latency_status": "runtime_failed"}})
    got = changes(now, before)
    assert got.new_passes == ["resnet_mixed · tflite fp32 (was unsupported)"]
    assert got.latency == {"1.5x-2x slower": ["resnet_mixed · onnx fp32 on onnxruntime: 1,410.0 → 2,397.0 ms"],
                           "2x-5x faster": ["resnet_mixed · torchscript fp32 on torchscript: 1,240.0 → 496.0 ms"]}
    assert changes(now_fail, night(0)).new_failures == [
        "resnet_mixed · onnx fp32 (crash: onnxruntime killed by SIGSEGV)"]


def test_no_change_and_no_history_say_nothing():
    """Negative controls: the same night twice, and a first night."""
    same = changes(night(1), night(0))
    assert not same.any and same.compared == 1
    assert not changes(night(0), None).any and changes(night(0), None).compared == 0


@pytest.mark.parametrize("ratio, bucket", [(1.05, None), (1 / 1.05, None), (1.1, "1.1x-1.5x slower"),
                                           (1.6, "1.5x-2x slower"), (4.9, "2x-5x slower"), (7, ">5x slower"),
                                           (1 / 1.2, "1.1x-1.5x faster"), (0.1, ">5x faster")])
def test_latency_buckets_as_ai_hub(ratio, bucket):
    assert latency_bucket(ratio) == bucket


def test_markdown_table_has_a_word_per_cell():
    text = markdown(scorecard(night(0), FORMATS))
    assert text.splitlines()[0] == ("| model | eager fp32 | torchscript fp32 | onnx fp32 | coreml fp32 | coreml fp16 | "
                                    "tflite fp32 | peak child MB |")
    assert text.splitlines()[2] == ("| resnet_mixed | pass 1,270 ms | pass 1,240 ms | pass 1,410 ms | skipped | skipped |"
                                    " pass 2,020 ms | 850 |")


def test_the_report_opens_on_the_scorecard(tmp_path):
    write_run_reports(synthetic_run(0, overrides={("tflite", "fp32", "litert"): {
        "export_status": "export_failed", "export_reason": LEGALIZE}}), tmp_path, publish_prefect=False)
    page = (tmp_path / "latest" / "report.html").read_text()
    assert page.index('id="scorecard"') < page.index('id="regressions"') < page.index('id="model-1"')
    assert 'class="sc sc-unsupported_op" title="tfl.add in torch' in page
    assert "No earlier night of these models" in page
    write_run_reports(synthetic_run(1), tmp_path, publish_prefect=False)
    page = (tmp_path / "latest" / "report.html").read_text()
    assert "New passes (1)" in page and "resnet_mixed · tflite fp32 (was unsupported)" in page


def test_a_passing_cell_says_how_much_of_it_the_delegate_runs():
    off = ('{"delegated_flops_pct": 37.5, "not_delegated": {"CONV_3D": 20, "PAD": 4}, "threads": 2, '
           '"xnnpack": true}')
    df = night(0)
    df.loc[df["runtime"] == "litert", "runtime_options"] = off
    cell = cells(df)[("resnet_mixed", "tflite", "fp32")]
    assert cell.state == "passed" and cell.detail == "XNNPACK runs 37.5 % of the FLOPs; off it: CONV_3D x20, PAD x4"
    df.loc[df["runtime"] == "litert", "runtime_options"] = '{"delegated_flops_pct": 100.0, "not_delegated": {}}'
    assert cells(df)[("resnet_mixed", "tflite", "fp32")].detail == ""  # all of it: nothing to say
