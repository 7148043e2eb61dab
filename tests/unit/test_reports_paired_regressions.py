"""Regressions on paired ratios: host drift is no alarm, a slower ratio is; a new host or an unstable night is no baseline."""

from __future__ import annotations

import pandas as pd
import pytest

from edgebench.config import HistoryConfig
from edgebench.reports.regressions import HOST_BUSY, NEW_HOST, REGRESSION, evaluate, ratio_noise
from edgebench.reports.rows import flatten
from tests.synthetic_runs import PAIRED_HOST, SERIES_P50, synthetic_run

ORT = ("onnx", "fp32", "onnxruntime")
DRIFT = [0.0, 0.35, -0.2, 0.3, -0.25, 0.1, -0.3, 0.4]  # the whole host's speed, night by night (seen: 575 vs 363 ms)
OTHER_HOST = {"cpu": "Synthetic EPYC", "isa": ["avx2", "fma"]}


def paired_nights(ratios: list[float | None], drift=DRIFT, hosts=None, stability=None, halfwidth=0.02, foreign=None):
    """History and tonight: every row's p50 moves with the host drift; ORT's ratio is `ratios[n]` (None: p50 / eager)."""
    frames = []
    for n, ratio in enumerate(ratios):
        p50 = {k: v * (1 + drift[n % len(drift)]) for k, v in SERIES_P50.items() if v}
        o = {"ratio_halfwidth": halfwidth, "stability": (stability or {}).get(n, 90.0),
             "foreign_cpu": (foreign or {}).get(n, 0.01)}
        if ratio is not None:
            o["ratio"] = ratio
            p50[ORT] = p50[("pytorch", "fp32", "torch")] * ratio
        run = synthetic_run(n, p50=p50, overrides={ORT: o}, paired=True, host=(hosts or {}).get(n))
        frames.append(flatten(run))
    return pd.concat(frames[:-1], ignore_index=True), frames[-1]


def ort(df):
    return df[(df["format"] == ORT[0]) & (df["runtime"] == ORT[2])].iloc[0]


def regressions(findings):
    return [f for f in findings if f.kind == REGRESSION]


def test_host_drift_of_tens_of_percent_raises_nothing_on_steady_ratios():
    history, tonight = paired_nights([1.1] * 8)
    df, findings = evaluate(tonight, history, HistoryConfig())
    assert regressions(findings) == []
    assert ort(df)["baseline_ratio"] == pytest.approx(1.1) and ort(df)["delta_ratio_pct"] == pytest.approx(0)
    # negative control: tonight's absolute p50 is 40 % above its baseline: the p50 rule would have cried wolf
    assert ort(df)["delta_p50_pct"] > 25


def test_a_slower_ratio_is_a_regression_with_the_p50_for_context():
    history, tonight = paired_nights([1.1] * 7 + [1.32])
    df, findings = evaluate(tonight, history, HistoryConfig())
    (found,) = regressions(findings)
    assert found.series[1:4] == ORT and found.value == pytest.approx(1.32) and found.baseline == pytest.approx(1.1)
    assert "1.320x eager vs baseline 1.100x (+20.0 %" in found.message and "p50 " in found.message
    assert bool(ort(df)["regression"]) and ort(df)["delta_ratio_pct"] == pytest.approx(20)


def test_wide_intervals_widen_the_threshold():
    narrow = evaluate(*reversed(paired_nights([1.1] * 7 + [1.25], halfwidth=0.02)), HistoryConfig())[1]
    wide = evaluate(*reversed(paired_nights([1.1] * 7 + [1.25], halfwidth=0.15)), HistoryConfig())[1]
    assert len(regressions(narrow)) == 1 and regressions(wide) == []


def test_noise_grows_with_the_nights_scatter_and_shrinks_with_more_nights():
    import numpy as np

    cfg = HistoryConfig()
    steady, scattered = np.array([1.0, 1.0, 1.0]), np.array([0.95, 1.0, 1.05])
    assert ratio_noise(scattered, np.zeros(3), 1.0, 0.0, cfg) > ratio_noise(steady, np.zeros(3), 1.0, 0.0, cfg) == 0
    assert ratio_noise(steady, np.zeros(3), 1.0, 0.02, cfg) == pytest.approx(0.02 * np.sqrt(1 + np.pi / 6))
    assert ratio_noise(np.ones(7), np.full(7, 0.02), 1.0, 0.0, cfg) < ratio_noise(steady, np.full(3, 0.02), 1.0, 0.0, cfg)


def test_a_new_host_starts_a_new_baseline_instead_of_an_alarm():
    hosts = {7: OTHER_HOST}
    history, tonight = paired_nights([1.1] * 7 + [1.5], hosts=hosts)
    df, findings = evaluate(tonight, history, HistoryConfig())
    assert regressions(findings) == [] and pd.isna(ort(df)["baseline_ratio"])
    (new,) = [f for f in findings if f.kind == NEW_HOST]
    assert new.severity == "info" and new.label == "resnet_mixed" and "new baseline" in new.message
    # negative control: the same night on the old host is a regression
    assert len(regressions(evaluate(*reversed(paired_nights([1.1] * 7 + [1.5])), HistoryConfig())[1])) == 1


def test_threads_are_part_of_the_host():
    history, tonight = paired_nights([1.1] * 8)
    tonight = tonight.assign(host_key="0" * 12)  # what 4 threads on the same CPU give: another key
    assert any(f.kind == NEW_HOST for f in evaluate(tonight, history, HistoryConfig())[1])
    assert synthetic_run(0, paired=True).host == PAIRED_HOST


def test_unstable_nights_are_no_baseline():
    # nights 3-6 ran at 1.3x but were unstable: the baseline is the three stable 1.0x nights, so 1.3x is flagged
    unstable = {n: 40.0 for n in range(3, 7)}
    history, tonight = paired_nights([1.0] * 3 + [1.3] * 5, stability=unstable)
    df, findings = evaluate(tonight, history, HistoryConfig())
    assert not history.loc[history["format"] == "onnx", "stable"].iloc[3:].any()
    assert ort(df)["baseline_ratio"] == pytest.approx(1.0) and len(regressions(findings)) == 1
    # negative control: had they been stable, 1.3x would be the baseline and nothing flagged
    history, tonight = paired_nights([1.0] * 3 + [1.3] * 5)
    assert regressions(evaluate(tonight, history, HistoryConfig())[1]) == []


def test_too_few_stable_nights_give_a_baseline_but_no_verdict():
    history, tonight = paired_nights([1.1, 1.1, 2.0])
    df, findings = evaluate(tonight, history, HistoryConfig(min_baseline_nights=3))
    assert ort(df)["baseline_ratio"] == pytest.approx(1.1) and regressions(findings) == []


def test_a_night_on_a_busy_host_is_neither_judged_nor_a_baseline():
    # tonight other processes took 40 % of the CPU while timing: its 1.4x is not judged, one warning says why
    history, tonight = paired_nights([1.1] * 7 + [1.4], foreign={7: 0.40})
    df, findings = evaluate(tonight, history, HistoryConfig())
    assert regressions(findings) == [] and ort(df)["baseline_ratio"] == pytest.approx(1.1)
    (busy,) = [f for f in findings if f.kind == HOST_BUSY]
    assert busy.severity == "warning" and "40%" in busy.message
    # negative control: the same night with the host to itself is a regression
    assert len(regressions(evaluate(*reversed(paired_nights([1.1] * 7 + [1.4])), HistoryConfig())[1])) == 1
    # busy nights at 1.4x are no baseline: tonight's 1.4x on a quiet host is still judged against 1.1x
    history, tonight = paired_nights([1.1] * 4 + [1.4] * 4, foreign={4: 0.3, 5: 0.3, 6: 0.3})
    df, findings = evaluate(tonight, history, HistoryConfig())
    assert ort(df)["baseline_ratio"] == pytest.approx(1.1) and len(regressions(findings)) == 1
