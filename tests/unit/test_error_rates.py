"""The error-rate simulation on synthetic sessions of known noise: a sane finder, and one that must cry wolf."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.benchmarks.paired import Rounds
from edgebench.reports.error_rates import history_config, measured_slowdowns, rates_table, simulate, slowed_of

LABELS = ["pytorch fp32 torch", "onnx fp32 onnxruntime", "onnx fp32 onnxruntime-slow10", "onnx fp32 onnxruntime-slow20"]


def session(seed: int, rounds: int = 30, noise: float = 0.05) -> Rounds:
    """Eager at 500 ms times a drift shared by the round, the rows at 1.1x eager (x1.1, x1.2 slowed), 5 % jitter each."""
    rng = np.random.default_rng(seed)
    drift = 500 * (1 + 0.3 * rng.standard_normal()) * np.exp(np.cumsum(rng.normal(0, 0.03, rounds)))
    factors = np.array([1.0, 1.1, 1.1 * 1.1, 1.1 * 1.2])
    ms = drift[:, None] * factors[None, :] * rng.lognormal(0, noise, (rounds, len(LABELS)))
    return Rounds(LABELS, ms, eager=0)


def test_slowed_rows_are_found_by_name():
    assert slowed_of(LABELS) == {LABELS[2]: (LABELS[1], 10), LABELS[3]: (LABELS[1], 20)}
    assert slowed_of(["a b c-slow10"]) == {}  # no plain series beside it
    measured = measured_slowdowns([session(s) for s in range(4)])
    assert measured[LABELS[2]] == pytest.approx(0.10, abs=0.04) and measured[LABELS[3]] == pytest.approx(0.20, abs=0.04)


def test_a_sane_finder_is_rarely_wrong_and_a_zero_threshold_cries_wolf():
    sessions = [session(s) for s in range(6)]
    configs = [history_config(10.0, 3.0), history_config(0.0, 0.0)]
    sane, wolf = simulate(sessions, configs, trials=40, seed=1, min_stability=0)  # every synthetic night a baseline
    assert sane.aa_trials == 40 and sane.ab_trials == {10: 40, 20: 40}
    assert sane.false_alarm_rate <= 0.05 and sane.detection_rate(20) >= 0.9
    assert wolf.false_alarm_rate >= 0.3  # negative control: every wobble above the median is an alarm
    table = rates_table([sane, wolf], configs)
    assert list(table.columns) == ["regression_pct", "noise_k", "false_alarm_rate", "aa_series_nights", "judged",
                                   "detect_10pct", "detect_20pct", "detect_10pct_judged", "detect_20pct_judged"]
    assert sane.judged_detection_rate(20) >= sane.detection_rate(20)  # the judged nights are a subset


def test_the_simulation_judges_as_the_finder_does():
    """The fast path (ratio_verdict on the last stable nights) against regressions.evaluate on the same nights."""
    from edgebench.reports.error_rates import draw_night, flagged_by, night_row
    from edgebench.reports.regressions import REGRESSION, evaluate
    from edgebench.reports.rows import frame

    sessions = [session(s, noise=0.08) for s in range(4)]
    rng = np.random.default_rng(3)
    labels = {LABELS[1]: LABELS[1]}
    agree = []
    for cfg in (history_config(3.0, 2.0), history_config(10.0, 3.0)):
        for _ in range(15):
            history = [draw_night(sessions, labels, rng, 60.0) for _ in range(10)]
            tonight = draw_night(sessions, {LABELS[3]: LABELS[1]}, rng, 60.0)  # 20 % slower, half the time caught
            rows = frame([night_row(h[LABELS[1]], LABELS[1], n) for n, h in enumerate(history)])
            _, findings = evaluate(frame([night_row(tonight[LABELS[1]], LABELS[1], 10)]), rows, cfg)
            agree.append((flagged_by(cfg, tonight[LABELS[1]], [h[LABELS[1]] for h in history]),
                          any(f.kind == REGRESSION for f in findings)))
    assert all(fast == slow for fast, slow in agree)
    assert {fast for fast, _ in agree} == {True, False}  # both verdicts occurred: the comparison meant something
