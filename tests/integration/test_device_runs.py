"""Device runs through the pipeline functions in real child processes: runtime variants and the queue round trip."""

import json

import pandas as pd

from edgebench import pipeline
from edgebench.config import BenchmarkConfig, BudgetConfig, PipelineConfig
from edgebench.devices import registry
from edgebench.records import PASSED
from tests.conftest import SMALL_SHAPE

VARIANTS = {"litert-no-xnnpack": {"runtime": "litert", "options": {"xnnpack": False}}}


def test_litert_with_and_without_xnnpack_gives_two_rows_with_their_options(tmp_path):
    """The done-when of issue 13, through the pipeline functions on the small input shape."""
    quick = BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=0, max_seconds=5, timeout_s=300)
    config = PipelineConfig(formats={"tflite": ["fp32"]}, runtimes=["torch", "litert", "litert-no-xnnpack"],
                            runtime_variants=VARIANTS, devices=["local"], threads=1,
                            benchmark=BenchmarkConfig(quick=quick))
    settings = pipeline.new_run(config, tmp_path, quick=True)
    result = pipeline.run_model_sequential("resnet_mixed", settings, input_shape=SMALL_SHAPE, parity=False)
    assert [(m.runtime, m.status) for m in result.latency] == [("torch", PASSED), ("litert", PASSED),
                                                                ("litert-no-xnnpack", PASSED)], result.latency
    on, off = result.latency[1:]
    assert on.extra["session_options"]["delegate_partitions"] > 0  # XNNPACK did take part of the graph
    assert off.extra["session_options"]["delegate_partitions"] == 0  # negative control: the builtin kernels only
    paths = pipeline.finish_run(settings, [result])
    rows = pd.read_csv(paths.results_csv, keep_default_na=False)
    lite = rows[rows["format"] == "tflite"].set_index("runtime")
    assert json.loads(lite.loc["litert", "runtime_options"]) == {"xnnpack": True}
    assert json.loads(lite.loc["litert-no-xnnpack", "runtime_options"]) == {"xnnpack": False}
    assert (lite["p50_ms"].astype(float) > 0).all()
    # the end of the run measured this host's limit (a fresh cache in tests): every timed row has its share
    peak = json.loads(paths.run_json.read_text())["host"]["peak"]
    assert peak["cached"] is False and {"fp32", "int8"} <= set(peak["peaks"])
    assert (lite["pct_of_peak"].astype(float) > 0).all() and (lite["gmacs"].astype(float) > 0).all()


def test_queue_round_trip_without_prefect(monkeypatch, tmp_path):
    """The queue backend's storage round trip, with the remote machine's side called in place of run_deployment."""
    from edgebench.devices import queue
    from edgebench.runtimes.torch_eager import eager_artifact

    quick = BudgetConfig(warmup_runs=0, min_runs=2, min_seconds=0, max_seconds=5, timeout_s=300)
    remote_config = PipelineConfig(benchmark=BenchmarkConfig(quick=quick))  # the remote machine's own, tiny budget
    monkeypatch.setattr(queue, "load_pipeline_config", lambda: remote_config)
    monkeypatch.setenv(queue.STORAGE_ENV, str(tmp_path / "shared"))
    sent = []

    def fake_dispatch(name, parameters, timeout_s):
        sent.append(name)
        queue.measure_remote_here(**parameters)
        return ""

    monkeypatch.setattr(queue, "inside_flow_run", lambda: True)
    monkeypatch.setattr(queue, "dispatch", fake_dispatch)
    config = PipelineConfig(devices=["queue:second-host"], runtimes=["torch"], threads=1)
    settings = pipeline.new_run(config, tmp_path / "out", quick=True)
    pm = pipeline.prepare_model("resnet_mixed", settings, input_shape=SMALL_SHAPE)
    job = registry.backend_for("queue:second-host").plan(
        registry.parse_device("queue:second-host"), [eager_artifact(pm.ref)], pm, config)[0]
    row = pipeline.bench_one(pm, job, settings).latency
    assert sent == ["second-host"]
    assert (row.status, row.runtime, row.device) == (PASSED, "torch", "queue:second-host"), row.reason
    assert row.p50_ms > 0 and row.runs == 2
    monkeypatch.setattr(queue, "dispatch", lambda *a: "remote run r on queue second-host ended Crashed")
    failed = pipeline.bench_one(pm, job, settings).latency  # negative control: the remote run's end is the reason
    assert failed.status == "runtime_failed" and "ended Crashed" in failed.reason
