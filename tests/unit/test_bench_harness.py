"""The harness on a synthetic session of known latency: accuracy and budget rules."""

import numpy as np
import pytest
from tests.unit.bench_helpers import SleepSession, tiny_inputs

from edgebench.benchmarks.harness import NonFiniteOutput, measure, split_clips
from edgebench.config import BudgetConfig


def test_p50_within_5_percent_of_known_latency():
    budget = BudgetConfig(warmup_runs=1, min_runs=8, min_seconds=0.4, max_seconds=5)
    r = measure(SleepSession(0.050, "", 0), tiny_inputs(), budget, batch=1, flops=5e8)
    assert r["p50_ms"] == pytest.approx(50, rel=0.05)
    assert r["first_ms"] >= 49
    assert r["fps"] == pytest.approx(1000 / r["p50_ms"])
    assert r["gflops"] == pytest.approx(0.5 / (r["p50_ms"] / 1e3))
    assert len(r["samples_ms"]) == r["runs"]


def test_min_runs_and_min_seconds_both_required():
    # min_runs dominates: 6 runs of 10 ms take 60 ms > min_seconds
    r = measure(SleepSession(0.010, "", 0), tiny_inputs(), BudgetConfig(warmup_runs=0, min_runs=6, min_seconds=0.0, max_seconds=5))
    assert r["runs"] == 6 and r["stopped_by"] == "min_runs_and_min_seconds"
    # min_seconds dominates: 0.3 s of 10 ms runs is about 30 runs, far above min_runs=2
    r = measure(SleepSession(0.010, "", 0), tiny_inputs(), BudgetConfig(warmup_runs=2, min_runs=2, min_seconds=0.3, max_seconds=5))
    assert r["steady_seconds"] >= 0.3
    assert 20 <= r["runs"] <= 31
    assert r["warmup_runs"] == 2


def test_max_seconds_caps_min_runs():
    session = SleepSession(0.020, "", 0)
    r = measure(session, tiny_inputs(), BudgetConfig(warmup_runs=1, min_runs=1000, min_seconds=0, max_seconds=0.2))
    assert r["stopped_by"] == "max_seconds"
    assert r["runs"] < 1000
    assert 0.2 <= r["steady_seconds"] < 0.2 + 0.05  # the run in flight may finish, no more
    assert session.calls == 1 + 1 + r["runs"]  # first + warm-up + steady: nothing run and dropped


def test_cycles_through_clips():
    seen = []

    class Recorder(SleepSession):
        def run(self, inputs):
            seen.append(float(inputs["video"].flat[0]))
            return super().run(inputs)

    inputs = {"video": np.arange(3, dtype=np.float32).reshape(3, 1, 1) + 1}
    measure(Recorder(0.0, "", 0), inputs, BudgetConfig(warmup_runs=1, min_runs=4, min_seconds=0, max_seconds=5))
    assert seen == [1, 2, 3, 1, 2, 3]


def test_non_finite_output_is_an_error():
    with pytest.raises(NonFiniteOutput, match="NaN.*logits"):
        measure(SleepSession(0.0, "nan", 3), tiny_inputs(), BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=0, max_seconds=5))


def test_finite_outputs_pass():  # negative control of the check above
    r = measure(SleepSession(0.0, "", 0), tiny_inputs(), BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=0, max_seconds=5))
    assert r["runs"] == 3


def test_split_clips_rejects_mismatched_counts():
    with pytest.raises(ValueError):
        split_clips({"a": np.zeros((2, 1)), "b": np.zeros((3, 1))})
    assert len(split_clips([{"a": np.zeros(1)}])) == 1
