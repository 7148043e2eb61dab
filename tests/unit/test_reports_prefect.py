"""Prefect artifacts: a no-op outside a flow run; inside one, a results table and a markdown summary."""

from __future__ import annotations

import json

from edgebench.config import HistoryConfig
from edgebench.records import PARITY_FAILED
from edgebench.reports.prefect_artifacts import (
    in_run_context,
    publish,
    summary_markdown,
    table_records,
)
from edgebench.reports.regressions import evaluate
from edgebench.reports.rows import flatten
from tests.synthetic_runs import synthetic_run


def tonight():
    run = synthetic_run(1, overrides={("tflite", "fp32", "litert"): {"parity_status": PARITY_FAILED,
                                                                     "parity_reason": "err | <b>big</b>"}})  # fmt: skip
    df, findings = evaluate(flatten(run), flatten(synthetic_run(0)), HistoryConfig(min_baseline_nights=1))
    return run, df, findings


def test_no_op_outside_a_flow_run():
    run, df, findings = tonight()
    assert in_run_context() is False
    assert publish(df, findings, run) is False
    import prefect.context  # noqa: F401  (imported, still no run)

    assert in_run_context() is False and publish(df, findings, run) is False


def test_table_records_are_json_safe():
    _, df, _ = tonight()
    records = table_records(df)
    text = json.dumps(records, allow_nan=False)  # NaN would break the Prefect UI
    assert len(records) == len(df) and "NaN" not in text
    assert records[0]["model"] == "resnet_mixed"


def test_summary_markdown_lists_changes_and_failures():
    run, df, findings = tonight()
    md = summary_markdown(df, findings, run, "reports/runs/x/report.html")
    assert "random weights" in md and "Changes since previous nights" in md
    assert "passed -> parity_failed" in md
    assert "err \\| &lt;b>big&lt;/b>" in md  # table cell stays one cell, no raw HTML
    assert "reports/runs/x/report.html" in md


def test_summary_markdown_lists_repairs_that_did_something():
    from dataclasses import replace

    from edgebench.records import RepairResult

    run, df, findings = tonight()
    run = replace(run, repairs=[
        RepairResult("resnet_mixed", "onnx", "int8", "repaired", "1 of 21 layers kept in fp32: model.fc (1 trials, 9 s)"),
        RepairResult("resnet_mixed", "tflite", "int8", "not_needed", "tflite int8 passes its parity bound"),
        RepairResult("resnet_mixed", "executorch", "int8", "repair_failed", "repair_failed: the budget | spent")])
    md = summary_markdown(df, findings, run)
    assert "## Repairs of failing reduced-precision files" in md and "model.fc (1 trials, 9 s)" in md
    assert "the budget \\| spent" in md and "tflite int8 passes" not in md  # nothing to say about a passing file
