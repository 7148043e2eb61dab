"""The host's limit: the cache, the precision -> peak map, the rows' share, the console colours."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgebench.benchmarks import peak
from edgebench.reports.rows import flatten
from edgebench.reports.runinfo import run_from_dict, run_to_dict
from edgebench.tables import band, peak_cell
from tests.synthetic_runs import FLOPS, PEAK, SERIES_P50, synthetic_run


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
    assert [band(p) for p in (80, 50, 49.9, 25, 10, None)] == ["high", "high", "mid", "mid", "low", ""]


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
