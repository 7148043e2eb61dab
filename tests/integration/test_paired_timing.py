"""Paired timing with synthetic runtimes of known latency: ratios to eager, failures that leave the rest, a stop."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import psutil
import pytest

from edgebench import isolation
from edgebench.benchmarks.paired import PairedRow, Rounds, time_rows
from edgebench.config import BudgetConfig
from edgebench.runtimes.slowed import SlowedRuntime
from tests.unit.bench_helpers import EAGER_ARTIFACT, SLEEP_ARTIFACT, TINY_REF, EagerSleepRuntime, SleepRuntime

LATENCY_S = 0.03
BUDGET = BudgetConfig(warmup_runs=1, min_runs=15, min_seconds=0, max_seconds=60, timeout_s=5)


def _rows(tmp_path, *named) -> list[PairedRow]:
    rows = [PairedRow(EAGER_ARTIFACT, "torch", EagerSleepRuntime(LATENCY_S), tmp_path / "eager.log")]
    return rows + [PairedRow(SLEEP_ARTIFACT, name, runtime, tmp_path / f"{name}.log") for name, runtime in named]


def test_known_ratios_and_failures_that_leave_the_other_rows_alone(tmp_path):
    rows = _rows(tmp_path, ("same", SleepRuntime(LATENCY_S, name="same")),
                 ("slow20", SlowedRuntime(SleepRuntime(LATENCY_S, name="slow20"), 0.2)),
                 ("crash", SleepRuntime(LATENCY_S, fail="segv", fail_at=4, name="crash")),
                 ("hang", SleepRuntime(LATENCY_S, fail="hang", fail_at=5, name="hang")),
                 ("absent", SleepRuntime(unavailable="not on this host", name="absent")))
    results, rounds = time_rows(rows, TINY_REF, None, BUDGET, 1, None, 0.1)
    eager, same, slow, crash, hang, absent = results
    assert [r.status for r in results] == ["passed"] * 3 + ["runtime_failed"] * 2 + ["skipped"]
    assert eager.ratio_vs_eager == 1.0 and eager.runs == len(rounds.ms) >= BUDGET.min_runs
    assert same.ratio_low <= 1.0 <= same.ratio_high and 0.9 < same.ratio_vs_eager < 1.1
    assert slow.ratio_low > 1.05 and 1.1 < slow.ratio_vs_eager < 1.4  # 20 % slower, by the wall clock
    assert slow.speedup_vs_eager is None  # set by add_speedups, not here
    assert crash.reason == "killed by SIGSEGV (during measure)"
    assert hang.reason == "timeout after 5 s (during measure)"
    assert absent.reason == "not on this host"
    assert np.isnan(rounds.ms[:, 3]).sum() >= len(rounds.ms) - 2  # no sample after the crash
    assert np.isfinite(rounds.ms[:, :3]).all()  # the other rows ran every round
    for r in (eager, same, slow):
        assert r.load_ms is not None and r.first_ms is not None and r.peak_rss_mb > 0 and r.stability > 0
        assert r.trimmed_mean_ms == pytest.approx(r.p50_ms, rel=0.2) and 0 <= r.cv < 0.5
    assert isolation.live_children() == []
    assert 0 <= rounds.meta["foreign_cpu"] <= 1 and all(r.foreign_cpu == rounds.meta["foreign_cpu"] for r in (eager, slow))

    path = tmp_path / "rounds.json"
    rounds.save(path)
    again = Rounds.load(path)
    assert again.labels == rounds.labels and again.eager == 0
    np.testing.assert_allclose(again.ms, rounds.ms, atol=1e-4)  # saved to 0.1 µs
    np.testing.assert_allclose(again.ratios(2), rounds.ratios(2), rtol=1e-4)


def test_a_stop_kills_every_loaded_child_and_leaves_none_defunct(tmp_path):
    rows = _rows(tmp_path, ("same", SleepRuntime(LATENCY_S, name="same")))
    long = BudgetConfig(warmup_runs=0, min_runs=1, min_seconds=600, max_seconds=600, timeout_s=60)
    outcome: list = []

    def run():
        try:
            outcome.append(time_rows(rows, TINY_REF, None, long, 1, None, 0.1))
        except BaseException as e:  # noqa: BLE001 - the Stopped the test waits for
            outcome.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 120
    while len(isolation.live_children()) < 2 or "stage: measure" not in (tmp_path / "same.log").read_text():
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.1)
    pids = isolation.live_children()
    try:
        isolation.stop_children()
        thread.join(30)
        assert isinstance(outcome[0], isolation.Stopped)
        assert not [p for p in pids if psutil.pid_exists(p)]  # ended and reaped
    finally:
        isolation.allow_children()


def test_the_foreign_share_counts_other_processes_cpu_and_not_ours():
    """Checked with CPU time we know, so other jobs on the host cannot make it fail: our own burn is ours,
    and a neighbour's (children not in the list) is in the foreign part, however busy the host is."""
    import resource
    import subprocess
    import sys

    from edgebench.benchmarks import hostload

    start = hostload.snapshot([os.getpid()])
    end_time = time.process_time() + 1.0
    while time.process_time() < end_time:  # one CPU second of our own
        pass
    mid = hostload.snapshot([os.getpid()])
    assert mid.ours - start.ours == pytest.approx(1.0, abs=0.1)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    burner = subprocess.run([sys.executable, "-c", "import time\nend = time.process_time() + 1.5\n"
                             "while time.process_time() < end: pass"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    end = hostload.snapshot([os.getpid()])
    neighbour = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    assert burner.returncode == 0 and neighbour >= 1.4
    foreign_seconds = (end.host_busy - mid.host_busy) - (end.ours - mid.ours)
    assert foreign_seconds >= 0.9 * neighbour  # the neighbour's CPU is foreign (others can only add to it)
    share = hostload.foreign_share(mid, end)
    assert 0 < share <= 1 and hostload.foreign_share(end, end) is None
