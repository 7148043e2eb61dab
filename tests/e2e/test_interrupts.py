"""Fault injection on whole runs, as a user or an operator causes them.

`edgebench run` (its own temporary server): SIGINT in the export step, SIGTERM in the benchmark
step, the server killed mid-run, then two runs at once on the same --out (which is also "the next
run works and reuses the cache" for the three before). On the served deployment (tests/e2e/conftest.py):
a cancelled flow run, and a worker stopped mid-run followed by a rerun.
Every test checks that no process of the run is left (a <defunct> one counts as left), that history
holds only complete runs, and the files (run.json marker, `latest`, the cache).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from edgebench.config import HistoryConfig
from edgebench.reports.history import HistoryStore, resolve_url
from tests.e2e.processes import assert_none_left, tree

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SHAPE = "1,3,4,32,32"
BUDGET = "benchmark:\n  quick: {warmup_runs: 0, min_runs: 2, min_seconds: %d, max_seconds: %d, timeout_s: 900}\n"
CONFIGS = {  # hang/tiny/slow: the converters tests.fault_cli registers
    "export_hangs": "formats: {tiny: [fp32], hang: [fp32]}\nruntimes: [torch]\n" + BUDGET % (0, 5),
    "long_bench": "formats: {}\nruntimes: [torch]\n" + BUDGET % (600, 900),  # only the eager baseline, for minutes
    "quick": "formats: {tiny: [fp32], slow: [fp32]}\nruntimes: [torch]\n" + BUDGET % (0, 2),
    "served_quick": "formats: {}\nruntimes: [torch]\n" + BUDGET % (0, 2),  # a worker knows only the real formats
}


# ---------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def configs(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("configs")
    for name, text in CONFIGS.items():
        (folder / f"{name}.yaml").write_text(text)
    return {name: folder / f"{name}.yaml" for name in CONFIGS}


@pytest.fixture(scope="module", autouse=True)
def own_device_locks(tmp_path_factory):
    """Benchmarks that run for minutes must not hold the host's device lock other test sessions wait for."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEBENCH_LOCK_DIR", str(tmp_path_factory.mktemp("locks")))
        yield


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One --out for the edgebench run tests: its cache and history carry from one test to the next."""
    return tmp_path_factory.mktemp("interrupts-out")


def start_run(out: Path, config: Path, log: Path) -> subprocess.Popen:
    """`edgebench run` (with the fault converters) in its own session, as a terminal would start it."""
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    args = [sys.executable, "-m", "tests.fault_cli", "run", "--quick", "--input-shape", SHAPE, "--config", str(config),
            "--out", str(out)]
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_for(what: str, found, proc: subprocess.Popen | None = None, timeout_s: float = 900):
    """Poll `found()` until it returns something truthy; fail early if the run ended meanwhile."""
    deadline = time.monotonic() + timeout_s
    while not (hit := found()):
        assert proc is None or proc.poll() is None, f"the run ended (code {proc.returncode}) before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return hit


def benchmark_measuring(out: Path, before: set[Path] = frozenset()):
    """Benchmark logs of new runs (not in `before`) whose child has started measuring."""
    logs = [p for run in set(out.glob("runs/*")) - set(before) for p in run.glob("logs/*/*bench.log")]
    return [p for p in logs if "stage: measure" in p.read_text(errors="replace")]


def history_runs(out: Path) -> pd.DataFrame:
    if not (out / "history.sqlite").exists():
        return pd.DataFrame(columns=["run_id"])
    with HistoryStore(resolve_url(out, HistoryConfig())) as store:
        return store.load()


def run_json(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def new_run_dir(out: Path, before: set[Path]) -> Path:
    (run_dir,) = set(out.glob("runs/*")) - before
    return run_dir


def assert_interrupted(run_dir: Path, out: Path, reason: str) -> dict:
    info = run_json(run_dir)
    assert info["status"] == "interrupted" and reason in info["reason"], info
    assert run_dir.name not in set(history_runs(out)["run_id"])  # all or nothing: nothing
    latest = out / "latest"
    assert not latest.exists() or latest.resolve() != run_dir.resolve()
    assert not list(out.glob("cache/*/*/.tmp-*"))  # the cache holds complete artifacts only
    return info


# ---------------------------------------------------------------- edgebench run


def test_sigint_in_the_export_step(out, configs, tmp_path):
    before = set(out.glob("runs/*"))
    proc = start_run(out, configs["export_hangs"], tmp_path / "run.log")
    wait_for("the tiny export", lambda: list(out.glob("cache/*/tiny-fp32-*/artifact.json")), proc)
    wait_for("the hanging export", lambda: list(out.glob("cache/*/hang-fp32-*/.tmp-*/model.bin")), proc)
    procs = tree(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the foreground process group
    assert proc.wait(120) == 130, (tmp_path / "run.log").read_text()[-3000:]
    assert_none_left(procs)
    info = assert_interrupted(new_run_dir(out, before), out, "SIGINT")
    assert any(line.startswith("export resnet_mixed tiny fp32: passed") for line in info["finished"]), info
    assert not list(out.glob("cache/*/hang-fp32-*/artifact.json"))  # the killed export left no record
    assert "interrupted by SIGINT" in (tmp_path / "run.log").read_text()


def test_sigterm_in_the_benchmark_step(out, configs, tmp_path):
    before = set(out.glob("runs/*"))
    proc = start_run(out, configs["long_bench"], tmp_path / "run.log")
    wait_for("a benchmark measuring", lambda: benchmark_measuring(out, before), proc)
    procs = tree(proc.pid)
    proc.send_signal(signal.SIGTERM)  # to the process alone, as `kill` or a scheduler does
    assert proc.wait(120) == 143, (tmp_path / "run.log").read_text()[-3000:]
    assert_none_left(procs)
    assert_interrupted(new_run_dir(out, before), out, "SIGTERM")


def test_server_killed_mid_run(out, configs, tmp_path):
    before = set(out.glob("runs/*"))
    log = tmp_path / "run.log"
    proc = start_run(out, configs["long_bench"], log)
    wait_for("a benchmark measuring", lambda: benchmark_measuring(out, before), proc)
    procs = tree(proc.pid)
    (server,) = [p for p in procs if "uvicorn" in " ".join(p.cmdline())]  # this run's temporary server
    server.kill()
    assert proc.wait(180) == 1, log.read_text()[-3000:]
    assert_none_left(procs)
    assert_interrupted(new_run_dir(out, before), out, "lost the Prefect API")
    text = log.read_text()
    assert text.count("lost the Prefect API") == 1, text[-3000:]
    assert text.count("may be lost") <= 2, text[-3000:]  # not one warning per event


def test_two_runs_at_once_after_the_faults(out, configs, tmp_path):
    """Also the next run after the three above: the cache they left is reused, a stale temporary folder swept."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = next(out.glob("cache/*/tiny-fp32-*/")) / f".tmp-{dead.pid}-deadbeef"  # what a SIGKILLed exporter leaves
    stale.mkdir()
    (stale / "model.bin").write_bytes(b"half")
    before = set(out.glob("runs/*"))
    procs = [start_run(out, configs["quick"], tmp_path / f"run{i}.log") for i in (1, 2)]
    for i, proc in enumerate(procs, 1):
        assert proc.wait(900) == 0, (tmp_path / f"run{i}.log").read_text()[-3000:]
    assert not stale.exists()
    runs = set(out.glob("runs/*")) - before
    history = history_runs(out)
    assert set(history["run_id"]) == {r.name for r in runs} | {r.name for r in before if run_json(r)["status"] == "complete"}
    for run_dir in runs:  # each run complete in history: as many rows as its results.csv
        assert run_json(run_dir)["status"] == "complete"
        rows = pd.read_csv(run_dir / "results.csv")
        assert (history["run_id"] == run_dir.name).sum() == len(rows)
        assert list(rows.loc[rows["format"] == "pytorch", "status"]) == ["passed"]  # tiny/slow: no runtime, skipped
    artifacts = [a for r in runs for a in run_json(r)["records"]["artifacts"]]
    tiny = [a for a in artifacts if a["format"] == "tiny"]
    assert len(tiny) == 2 and all(a["cached"] for a in tiny)  # exported by the SIGINTed run, reused by both
    slow = [a for a in artifacts if a["format"] == "slow"]
    assert sorted(a["cached"] for a in slow) == [False, True]  # one exported, the other waited for it and reused it
    assert len({a["sha256"] for a in slow}) == 1
    assert (out / "latest").resolve() in {r.resolve() for r in runs}


# ---------------------------------------------------------------- a served deployment


def deploy(env: dict, out: Path, config: Path, *extra: str) -> subprocess.CompletedProcess:
    args = [BIN / "prefect", "deployment", "run", "export-and-benchmark/adhoc", "-p", "budget=quick", "-p", f"out={out}",
            "-p", f"config_path={config}", "-p", f"input_shape=[{SHAPE}]", *extra]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=1900, check=True)


def flow_run_id(done: subprocess.CompletedProcess) -> str:
    return next(line.split()[-1] for line in done.stdout.splitlines() if "UUID" in line)


def flow_state(env: dict, run_id: str) -> str:
    got = subprocess.run([BIN / "prefect", "flow-run", "inspect", run_id, "-o", "json"], env=env, capture_output=True,
                         text=True, timeout=120, check=True)
    return json.loads(got.stdout)["state_type"]


def worker_pid(home: Path) -> int:
    return json.loads((home / "edgebench-serve.json").read_text())["pids"]["worker-default"]


def started_flow_run(env: dict, home: Path, out: Path, config: Path) -> tuple[str, list[psutil.Process]]:
    """A deployment run with a long benchmark, once it measures; its id and the worker's process tree."""
    run_id = flow_run_id(deploy(env, out, config))
    wait_for("a benchmark measuring", lambda: benchmark_measuring(out))
    workers = psutil.Process(worker_pid(home)).children()  # edgebench.flows.worker -> prefect worker
    return run_id, [p for w in workers for p in w.children(recursive=True)]  # flow-run processes, their children


def test_cancelled_flow_run_stops_its_children(served, configs, tmp_path):
    env, home = served.env, served.home
    run_id, procs = started_flow_run(env, home, tmp_path, configs["long_bench"])
    subprocess.run([BIN / "prefect", "flow-run", "cancel", run_id], env=env, check=True, timeout=120)
    wait_for("the Cancelled state", lambda: flow_state(env, run_id) == "CANCELLED", timeout_s=300)
    assert_none_left(procs)
    (run_dir,) = tmp_path.glob("runs/*")
    assert_interrupted(run_dir, tmp_path, "cancelled")


def test_worker_stopped_mid_run_then_a_rerun_works(served, configs, tmp_path):
    env, home = served.env, served.home
    run_id, procs = started_flow_run(env, home, tmp_path / "stopped", configs["long_bench"])
    worker = psutil.Process(worker_pid(home))
    worker.terminate()  # SIGTERM to the worker, as `edgebench stop` or systemd sends it
    worker.wait(300)  # it SIGTERMs its flow runs and waits for them; slow while the other test worker runs a full model
    assert_none_left(procs)
    assert flow_state(env, run_id) == "CRASHED"
    (run_dir,) = (tmp_path / "stopped").glob("runs/*")
    assert_interrupted(run_dir, tmp_path / "stopped", "SIGTERM")

    subprocess.run([BIN / "edgebench", "serve"], env=env, check=True, timeout=600, cwd=ROOT)  # restarts the worker
    again = deploy(env, tmp_path / "rerun", configs["served_quick"], "--watch", "--watch-timeout", "1800")
    assert "Completed" in again.stdout, again.stdout[-3000:]
    (rerun,) = (tmp_path / "rerun").glob("runs/*")
    assert run_json(rerun)["status"] == "complete"
    assert set(history_runs(tmp_path / "rerun")["run_id"]) == {rerun.name}
