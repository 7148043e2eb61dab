"""Regressions against a synthetic history of 10 nights: real slowdowns flagged, noise not, status changes listed."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from edgebench.records import EXPORT_FAILED, PARITY_FAILED, RUNTIME_FAILED
from edgebench.reports.regressions import BROKE, FIXED, PARITY_DRIFT, REGRESSION, SPEEDUP, evaluate, noise_of
from edgebench.reports.rows import flatten
from tests.synthetic_runs import SERIES_P50, TEN_PCT_3_NOISE, synthetic_run

TS = ("torchscript", "fp32", "torchscript")
ORT = ("onnx", "fp32", "onnxruntime")
LITE = ("tflite", "fp32", "litert")
QUIET = [0.004, -0.006, 0.01, -0.002, 0.0, 0.007, -0.01, 0.003, -0.004]  # +-1 %
NOISY = [0.08, -0.08, -0.08, 0.02, -0.08, 0.08, -0.04, 0.06, -0.06]  # +-8 %, no trend


def nights(n=10, p50=None, overrides=None):
    """Rows of n nights; p50/overrides: {series: [value per night]} (relative p50 offset / override dict)."""
    frames = []
    for night in range(n):
        rel = {k: v[night] for k, v in (p50 or {}).items() if v[night] is not None}
        ov = {k: v[night] for k, v in (overrides or {}).items() if v[night]}
        frames.append(flatten(synthetic_run(night, p50={k: SERIES_P50[k] * (1 + r) for k, r in rel.items()},
                                            overrides=ov)))  # fmt: skip
    return pd.concat(frames[:-1], ignore_index=True), frames[-1]


def by_kind(findings, kind, series):
    return [f for f in findings if f.kind == kind and f.series[1:4] == series]


def row(df, series):
    return df[(df["format"] == series[0]) & (df["precision"] == series[1]) & (df["runtime"] == series[2])].iloc[0]


def test_20_percent_slowdown_on_last_night_is_flagged():
    history, tonight = nights(p50={TS: QUIET + [0.20]})
    df, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    found = by_kind(findings, REGRESSION, TS)
    assert len(found) == 1 and found[0].severity == "error"
    assert "+20" in found[0].message or "+19" in found[0].message
    r = row(df, TS)
    assert r["regression"] is True or r["regression"] == True  # noqa: E712
    assert r["baseline_p50_ms"] == pytest.approx(1240 * 1.0, rel=0.01)
    assert r["delta_p50_pct"] == pytest.approx(20, abs=1.5)


def test_noisy_series_without_real_change_is_not_flagged():
    history, tonight = nights(p50={ORT: NOISY + [0.08]})
    df, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    r = row(df, ORT)
    # negative control: the slowdown against the baseline is above the plain 10 % threshold,
    # so only the series' own noise (MAD of its history) keeps it from being flagged
    assert r["delta_p50_pct"] > TEN_PCT_3_NOISE.regression_pct
    assert not by_kind(findings, REGRESSION, ORT)
    assert r["regression"] == False  # noqa: E712
    # and with the noise term switched off it would have been flagged
    _, strict = evaluate(tonight, history, TEN_PCT_3_NOISE.model_copy(update=dict(noise_k=0.0)))
    assert by_kind(strict, REGRESSION, ORT)


@pytest.mark.parametrize("seed", range(10))
def test_random_8_percent_noise_is_not_flagged(seed):
    rng = random.Random(seed)
    history, tonight = nights(p50={ORT: [rng.uniform(-0.08, 0.08) for _ in range(10)]})
    _, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    assert not by_kind(findings, REGRESSION, ORT)


def test_quiet_series_is_not_flagged_and_real_slowdown_on_noisy_series_is():
    history, tonight = nights(p50={TS: QUIET + [0.01], ORT: NOISY + [0.45]})
    _, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    assert not by_kind(findings, REGRESSION, TS)
    assert by_kind(findings, REGRESSION, ORT)


def test_noisy_tonight_widens_the_threshold():
    history, tonight = nights(p50={TS: QUIET + [0.20]}, overrides={TS: [None] * 9 + [{"iqr_ms": 1240 * 1.2 * 0.10}]})
    _, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    assert not by_kind(findings, REGRESSION, TS)  # 20 % < 3 x 10 % IQR/p50


def test_noise_formula():
    cfg = TEN_PCT_3_NOISE.model_copy(update=dict(mad_scale=1.0))
    past = pd.Series([100, 104, 96, 100, 102]).to_numpy(dtype=float)
    assert noise_of(past, 100.0, None, 100.0, cfg) == pytest.approx(0.02)  # MAD 2 / baseline 100
    assert noise_of(past, 100.0, 5.0, 100.0, cfg) == pytest.approx(0.05)  # tonight IQR/p50 larger


def test_speedup_is_good_news_not_a_regression():
    history, tonight = nights(p50={TS: QUIET + [-0.30]})
    df, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    assert by_kind(findings, SPEEDUP, TS)[0].severity == "info"
    assert not by_kind(findings, REGRESSION, TS)


def test_passed_to_failed_change_is_listed():
    history, tonight = nights(overrides={LITE: [None] * 9 + [{"parity_status": PARITY_FAILED, "max_abs_err": 5e-3}],
                                         ORT: [None] * 9 + [{"export_status": EXPORT_FAILED}],
                                         TS: [None] * 9 + [{"latency_status": RUNTIME_FAILED}]})  # fmt: skip
    _, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    for series, status in ((LITE, PARITY_FAILED), (ORT, EXPORT_FAILED), (TS, RUNTIME_FAILED)):
        broke = by_kind(findings, BROKE, series)
        assert len(broke) == 1 and broke[0].severity == "error", series
        assert broke[0].message.startswith(f"passed -> {status}")
    assert findings[0].severity == "error"  # worst first


def test_failed_to_passed_is_good_news():
    history, tonight = nights(overrides={LITE: [{"parity_status": PARITY_FAILED}] * 9 + [None]})
    _, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    fixed = by_kind(findings, FIXED, LITE)
    assert len(fixed) == 1 and fixed[0].severity == "info"
    assert not by_kind(findings, BROKE, LITE)


def test_unchanged_nights_give_no_findings():
    history, tonight = nights(p50={TS: QUIET + [0.0]})
    df, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    assert findings == []
    assert df["baseline_p50_ms"].notna().sum() == 4  # every series with a p50


def test_parity_drift_max_abs_err_up_10x_and_top1_down():
    history, tonight = nights(overrides={ORT: [None] * 9 + [{"max_abs_err": 5e-5}],
                                         LITE: [None] * 9 + [{"top1_agree": 0.9}]})  # fmt: skip
    _, findings = evaluate(tonight, history, TEN_PCT_3_NOISE)
    assert "max abs err" in by_kind(findings, PARITY_DRIFT, ORT)[0].message
    assert "top-1" in by_kind(findings, PARITY_DRIFT, LITE)[0].message
    # negative control: 5x up is not drift
    history, tonight = nights(overrides={ORT: [None] * 9 + [{"max_abs_err": 5 * 1.3e-7}]})
    assert not evaluate(tonight, history, TEN_PCT_3_NOISE)[1]


def test_baseline_uses_last_n_good_nights_only():
    # nights 0-2 were 2x slower (old), a failed night in between: the 7 good nights before tonight are the fast ones
    rel = [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    ov = [None] * 5 + [{"latency_status": RUNTIME_FAILED}] + [None] * 5
    history, tonight = nights(11, p50={TS: rel}, overrides={TS: ov})
    df, findings = evaluate(tonight, history, TEN_PCT_3_NOISE.model_copy(update=dict(baseline_nights=7)))
    assert row(df, TS)["baseline_p50_ms"] == pytest.approx(1240)
    assert by_kind(findings, FIXED, TS) == []  # runtime_failed was not the latest night


def test_too_few_nights_gives_baseline_but_no_verdict():
    history, tonight = nights(3, p50={TS: [0.0, 0.0, 0.5]})
    df, findings = evaluate(tonight, history, TEN_PCT_3_NOISE.model_copy(update=dict(min_baseline_nights=3)))
    r = row(df, TS)
    assert r["baseline_p50_ms"] == pytest.approx(1240) and pd.isna(r["regression"])
    assert not by_kind(findings, REGRESSION, TS)


def test_history_after_tonight_is_ignored():
    """Rebuilding an old night's report must not compare it with later nights."""
    history, tonight = nights(p50={TS: [0.5] * 9 + [0.0]})
    old = flatten(synthetic_run(-1))  # the night before the history starts
    later = pd.concat([history, tonight], ignore_index=True)
    df, findings = evaluate(old, later, TEN_PCT_3_NOISE)
    assert findings == [] and df["baseline_p50_ms"].isna().all()


def test_empty_history():
    df, findings = evaluate(flatten(synthetic_run(0)), None, TEN_PCT_3_NOISE)
    assert findings == [] and df["baseline_p50_ms"].isna().all()
