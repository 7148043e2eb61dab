"""Latency statistics on known data."""

import numpy as np
import pytest

from edgebench.benchmarks.stats import summarize


def test_known_values():
    s = summarize([0.001 * v for v in range(1, 11)], batch=2, flops=1e9)  # 1..10 ms
    assert s["runs"] == 10
    assert s["min_ms"] == pytest.approx(1.0)
    assert s["mean_ms"] == pytest.approx(5.5)
    assert s["p50_ms"] == pytest.approx(5.5)
    assert s["p90_ms"] == pytest.approx(9.1)
    assert s["p99_ms"] == pytest.approx(9.91)
    assert s["iqr_ms"] == pytest.approx(7.75 - 3.25)
    assert s["std_ms"] == pytest.approx(np.std(np.arange(1, 11), ddof=1))
    assert s["fps"] == pytest.approx(2 / 0.0055)
    assert s["gflops"] == pytest.approx(1 / 0.0055)
    assert s["outliers"] == 0


def test_steady_series_is_not_noisy():  # negative control
    rng = np.random.default_rng(0)
    s = summarize(0.050 + rng.normal(0, 0.0005, 200))
    assert s["noisy"] is False
    assert s["outliers"] <= 3


def test_wide_series_is_noisy():
    rng = np.random.default_rng(0)
    s = summarize(rng.uniform(0.040, 0.060, 200))  # IQR ~ 10 ms on a 50 ms median
    assert s["noisy"] is True


def test_noisy_threshold_is_configurable():
    x = [0.100, 0.104, 0.108, 0.112, 0.116]  # IQR/median = 8/108 = 0.074
    assert summarize(x, noisy_iqr_ratio=0.10)["noisy"] is False
    assert summarize(x, noisy_iqr_ratio=0.05)["noisy"] is True


def test_outliers_counted_and_kept():
    x = [0.010 + 0.0001 * i for i in range(20)] + [0.050, 0.080]  # fences ~ [8.9, 13.1] ms
    s = summarize(x)
    assert s["outliers"] == 2
    assert s["runs"] == 22  # never dropped
    assert s["mean_ms"] == pytest.approx(np.mean(x) * 1e3)
    assert s["p99_ms"] > 50


def test_single_run_and_bad_input():
    s = summarize([0.02])
    assert s["p50_ms"] == pytest.approx(20) and s["std_ms"] == 0 and s["iqr_ms"] == 0
    assert s["gflops"] is None
    with pytest.raises(ValueError):
        summarize([])
    with pytest.raises(ValueError):
        summarize([0.1, float("nan")])
