"""The host's limit: kernels that compute the product they time, the cache, the precision -> peak map, the rows' share."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebench.benchmarks import peak
from edgebench.benchmarks.gemm_kernels import fully_connected_tflite
from edgebench.reports.rows import flatten
from edgebench.reports.runinfo import run_from_dict, run_to_dict
from edgebench.tables import peak_cell
from tests.synthetic_runs import FLOPS, PEAK, SERIES_P50, synthetic_run


def test_litert_fully_connected_computes_the_product():
    """The LiteRT model the int8/fp32 peak is timed on is a real x @ w.T (fp32 checked against numpy)."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.interpreter import Interpreter

    blob = fully_connected_tflite(32, quantized=False)
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(blob, 0))
    w = np.frombuffer(model.buffers[1].data.tobytes(), dtype=np.float32).reshape(32, 32)
    interpreter = Interpreter(model_content=blob, num_threads=1)
    interpreter.allocate_tensors()
    x = np.random.default_rng(1).standard_normal((32, 32), dtype=np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, x @ w.T, rtol=1e-4, atol=1e-4)
    q = Interpreter(model_content=fully_connected_tflite(32, quantized=True), num_threads=1)
    q.allocate_tensors()
    assert q.get_output_details()[0]["dtype"] == np.int8


def test_measure_takes_the_best_kernel_per_precision():
    """Every kernel runs on a small product; each precision's peak is its fastest candidate, named."""
    result = peak.measure(threads=1, size=64, min_seconds=0.01)
    rates = {}
    for c in result["candidates"]:
        assert "gmacs" in c, c  # no kernel failed on this host
        rates.setdefault(c["precision"], []).append((c["gmacs"], c["kernel"]))
    assert {"fp32", "int8"} <= set(result["peaks"])
    for precision, best in result["peaks"].items():
        assert (best["gmacs"], best["kernel"]) == max(rates[precision])


def test_host_peak_reads_its_cache_per_key(tmp_path, monkeypatch):
    """A cached limit is returned as is (no measurement); another thread count is another key, another file."""
    monkeypatch.setenv("EDGEBENCH_PEAK_DIR", str(tmp_path))
    key = peak.host_key(3)
    record = {**key, "peaks": {"fp32": {"gmacs": 12.5, "kernel": "k"}}, "candidates": [], "measured_at": "t"}
    peak.cache_path(key).parent.mkdir(parents=True, exist_ok=True)
    peak.cache_path(key).write_text(json.dumps(record))
    got = peak.host_peak(3)
    assert got["cached"] is True and got["peaks"]["fp32"]["gmacs"] == 12.5
    assert peak.cache_path(peak.host_key(4)) != peak.cache_path(key)


def test_precisions_map_to_their_compute_peak():
    peaks = {"peaks": {"fp32": {"gmacs": 100.0, "kernel": "a"}, "int8": {"gmacs": 400.0, "kernel": "b"}}}
    assert peak.peak_for(peaks, "int8")[0] == "int8"
    assert peak.peak_for(peaks, "w8")[0] == "fp32"  # weight-only: float compute
    assert peak.peak_for(peaks, "w8a16")[0] == "fp32"
    assert peak.peak_for(peaks, "fp16")[0] == "fp32"  # no native fp16 peak measured on this host
    assert peak.peak_for({}, "fp32") is None and peak.peak_for({"error": "x"}, "int8") is None
    assert [peak.band(p) for p in (80, 50, 49.9, 25, 10, None)] == ["high", "high", "mid", "mid", "low", ""]


def test_rows_carry_gmacs_and_share_of_peak():
    run = synthetic_run(0, peak=PEAK)
    run.latency[0].device = "aihub:Phone"  # timed elsewhere: its rate, but no share of this host's limit
    df = flatten(run).set_index(["format", "runtime", "device"])
    eager_ms = SERIES_P50[("pytorch", "fp32", "torch")]
    eager = df.loc[("pytorch", "torch", "aihub:Phone")]
    assert eager["gmacs"] == pytest.approx(FLOPS / 2 / (eager_ms / 1e3) / 1e9)
    assert np.isnan(eager["pct_of_peak"])
    onnx = df.loc[("onnx", "onnxruntime", "local")]
    assert onnx["pct_of_peak"] == pytest.approx(100 * onnx["gmacs"] / PEAK["peaks"]["fp32"]["gmacs"])
    assert np.isnan(flatten(synthetic_run(0)).loc[0, "pct_of_peak"])  # a run without a limit: no share


def test_peak_survives_run_json_and_colours_the_console():
    run = synthetic_run(0, peak=PEAK)
    assert run_from_dict(json.loads(json.dumps(run_to_dict(run)))).peak == PEAK
    assert peak_cell(80.0) == "[green]80 %[/green]" and peak_cell(30.0) == "[yellow]30 %[/yellow]"
    assert peak_cell(float("nan")) == ""
