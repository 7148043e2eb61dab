"""Local benchmarks in child processes: measured rows, crashes, hangs, skips, the device lock, speedups."""

import threading
import time

import pytest

from edgebench.benchmarks.local import add_speedups, bench_local, device_lock
from edgebench.config import BudgetConfig
from edgebench.models.inputs import save_inputs
from edgebench.records import EXPORT_FAILED, PASSED, RUNTIME_FAILED, SKIPPED, Artifact, LatencyResult
from tests.unit.bench_helpers import SLEEP_ARTIFACT, TINY_REF, SleepRuntime, tiny_inputs

BUDGET = BudgetConfig(warmup_runs=1, min_runs=5, min_seconds=0.2, max_seconds=2, timeout_s=30)


@pytest.fixture
def inputs_path(tmp_path):
    path = tmp_path / "inputs.npz"
    save_inputs(path, tiny_inputs())
    return path


def bench(runtime, tmp_path, inputs_path, timeout_s=30, name="row"):
    return bench_local(SLEEP_ARTIFACT, runtime.name, TINY_REF, inputs_path, BUDGET, 1, 1e8, timeout_s,
                       tmp_path / f"{name}.log", lock_dir=tmp_path / "locks", runtime=runtime)


def test_measured_row(tmp_path, inputs_path):
    r = bench(SleepRuntime(0.02), tmp_path, inputs_path)
    assert r.status == PASSED, r.reason
    assert r.p50_ms == pytest.approx(20, rel=0.05)
    assert r.runs >= 5 and r.warmup_runs == 1 and r.first_ms > 0 and r.load_ms >= 0
    assert 1 < r.peak_rss_mb < 2000
    assert r.runtime_version == "synthetic-1" and r.runtime_options == {"latency_s": 0.02}
    assert r.threads == 1 and r.device == "local" and r.runtime == "sleep"
    assert r.gflops == pytest.approx(0.1 / (r.p50_ms / 1e3))
    assert len(r.extra["samples_ms"]) == r.runs


def test_crash_and_hang_fail_while_another_row_is_measured(tmp_path, inputs_path):
    segv = bench(SleepRuntime(0.01, fail="segv", fail_at=4), tmp_path, inputs_path, name="segv")
    hang = bench(SleepRuntime(0.01, fail="hang", fail_at=3), tmp_path, inputs_path, timeout_s=2.5, name="hang")
    ok = bench(SleepRuntime(0.01), tmp_path, inputs_path, name="ok")
    assert segv.status == RUNTIME_FAILED and "SIGSEGV" in segv.reason and "measure" in segv.reason
    assert hang.status == RUNTIME_FAILED and "timeout after 2.5 s" in hang.reason
    assert segv.p50_ms is None and hang.p50_ms is None
    assert ok.status == PASSED and ok.p50_ms == pytest.approx(10, rel=0.1)


def test_exceptions_name_their_stage(tmp_path, inputs_path):
    load = bench(SleepRuntime(fail="load"), tmp_path, inputs_path, name="load")
    nan = bench(SleepRuntime(0.0, fail="nan", fail_at=2), tmp_path, inputs_path, name="nan")
    assert load.status == RUNTIME_FAILED and "synthetic load error" in load.reason and "during load" in load.reason
    assert nan.status == RUNTIME_FAILED and "non-finite" in nan.reason


def test_unavailable_runtime_and_missing_artifact_are_skipped(tmp_path, inputs_path):
    r = bench(SleepRuntime(unavailable="needs macOS"), tmp_path, inputs_path)
    assert r.status == SKIPPED and "needs macOS" in r.reason
    failed = Artifact(model="tiny", format="sleep", precision="fp32", status=EXPORT_FAILED, reason="op X unsupported")
    r = bench_local(failed, "sleep", TINY_REF, inputs_path, BUDGET, 1, None, 30, tmp_path / "x.log",
                    runtime=SleepRuntime())
    assert r.status == SKIPPED and "op X unsupported" in r.reason


def test_wrong_format_is_skipped(tmp_path, inputs_path):
    art = Artifact(model="tiny", format="onnx", precision="fp32", status=PASSED, path="x.onnx")
    r = bench_local(art, "sleep", TINY_REF, inputs_path, BUDGET, 1, None, 30, tmp_path / "f.log",
                    lock_dir=tmp_path / "locks", runtime=SleepRuntime())
    assert r.status == SKIPPED and "cannot run format onnx" in r.reason


def test_device_lock_serializes(tmp_path):
    events = []

    def hold(tag):
        with device_lock("local", tmp_path):
            events.append(f"{tag}+")
            time.sleep(0.2)
            events.append(f"{tag}-")

    threads = [threading.Thread(target=hold, args=(t,)) for t in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert events in (["a+", "a-", "b+", "b-"], ["b+", "b-", "a+", "a-"])


def test_locks_of_different_devices_do_not_block(tmp_path):
    with device_lock("local", tmp_path):
        done = threading.Event()
        t = threading.Thread(target=lambda: (device_lock("queue:gpu-box", tmp_path).__enter__(), done.set()))
        t.start()
        assert done.wait(2)


def _row(fmt, runtime, p50, status=PASSED, device="local", model="m"):
    return LatencyResult(model=model, format=fmt, precision="fp32", runtime=runtime, device=device, status=status, p50_ms=p50)


def test_add_speedups():
    rows = [
        _row("pytorch", "torch", 100.0),
        _row("onnx", "onnxruntime", 50.0),
        _row("tflite", "litert", 200.0),
        _row("coreml", "coreml", None, status=SKIPPED),
        _row("tflite", "litert", 25.0, device="aihub:Samsung Galaxy S24"),  # no eager row on the phone
        _row("onnx", "onnxruntime", 10.0, model="other"),  # no eager row for this model
    ]
    add_speedups(rows)
    assert [r.speedup_vs_eager for r in rows] == [1.0, 2.0, 0.5, None, None, None]


@pytest.mark.slow  # a child that imports torch and builds the model: ~10 s quiet, 30+ s on a busy host
def test_torch_eager_runtime_small_model(tmp_path, small_ref):
    from edgebench.runtimes.torch_eager import eager_artifact

    budget = BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=0.2, max_seconds=5, timeout_s=120)
    r = bench_local(eager_artifact(small_ref), "torch", small_ref, None, budget, 1, 1.77e9, 120,
                    tmp_path / "eager.log", lock_dir=tmp_path / "locks")
    assert r.status == PASSED, r.reason
    assert r.runtime == "torch" and r.format == "pytorch" and r.runs >= 3 and r.p50_ms > 0
    assert r.runtime_options.get("threads") == 1 and r.runtime_version.startswith("2.")
    assert r.peak_rss_mb > 50  # torch is loaded in the child
    add_speedups([r])
    assert r.speedup_vs_eager == 1.0
