"""End to end: a real Prefect server and workers on 127.0.0.1, the deployments run as a user would."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from edgebench.reports.history import HistoryStore
from tests.e2e.processes import kill_tree

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent


def deployment_run(env: dict, name: str, *params: str) -> subprocess.CompletedProcess:
    args = [BIN / "prefect", "deployment", "run", name, *params, "--watch", "--watch-timeout", "1800"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=1900)


def test_adhoc_deployment_runs_to_a_report(served, full_out):
    env = served.env
    done = deployment_run(env, "export-and-benchmark/adhoc", "-p", "budget=quick", "-p", f"out={full_out}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Completed" in done.stdout
    latest = full_out / "latest"
    assert (latest / "report.html").exists()
    rows = pd.read_csv(latest / "results.csv")
    assert set(rows["format"]) >= {"pytorch", "torchscript", "onnx", "coreml", "tflite"}
    assert (rows.loc[rows["runtime"] == "onnxruntime", "status"] == "passed").all()


def test_benchmark_dispatched_to_the_second_worker(served, tmp_path):
    env, state = served.env, served.state
    done = deployment_run(env, "export-and-benchmark/adhoc", "-p", "budget=quick", "-p", f"out={tmp_path}",
                          "-p", 'formats=["onnx"]', "-p", 'precisions=["fp32"]', "-p", 'devices=["local", "queue:second-host"]',
                          "-p", "input_shape=[1, 3, 4, 32, 32]")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = pd.read_csv(tmp_path / "latest" / "results.csv")
    remote = rows[(rows["device"] == "queue:second-host") & (rows["runtime"] == "onnxruntime")]
    assert len(remote) == 1 and remote["status"].iloc[0] == "passed", remote.to_dict("records")
    assert remote["p50_ms"].iloc[0] > 0
    runs = subprocess.run([BIN / "prefect", "flow-run", "ls", "--flow-name", "remote-benchmark", "-o", "json"],
                          env=env, capture_output=True, text=True, timeout=120, check=True)
    remote_runs = json.loads(runs.stdout)
    assert [r["state_type"] for r in remote_runs] == ["COMPLETED"]
    assert remote_runs[0]["work_queue_name"] == "second-host"


# ---------------------------------------------------------------- the fanned-out nightly

FLEET_MODELS = ["resnet_mixed", "r3d_18", "r2plus1d_18"]
FLEET_CONFIG = ("formats: {torchscript: [fp32]}\nruntimes: [torch, torchscript]\n"
                "fleet: {crashed_after_s: 60}\n"  # the parent marks the killed worker's run Crashed sooner
                "benchmark:\n  quick: {warmup_runs: 0, min_runs: 2, min_seconds: 0, max_seconds: 2, timeout_s: 600}\n")


def flow_run_processes(worker_wrapper: int) -> dict[int, str]:
    """{pid: flow run id} of the flow-run processes a fleet worker runs (edgebench.flows.worker -> prefect worker ->
    flow run), read from their environment."""
    found = {}
    try:
        workers = psutil.Process(worker_wrapper).children()
    except psutil.NoSuchProcess:
        return found
    for proc in (p for w in workers for p in w.children()):
        try:
            run_id = proc.environ().get("PREFECT__FLOW_RUN_ID")
        except psutil.Error:
            continue
        if run_id:
            found[proc.pid] = run_id
    return found


def test_fanned_out_nightly_spreads_over_two_workers_and_survives_one_killed(served, tmp_path):
    env, state = served.env, served.state
    fleet = {k: pid for k, pid in state["pids"].items() if k.startswith("worker-fleet-")}
    assert len(fleet) == 2, state["pids"]
    config = tmp_path / "fleet.yaml"
    config.write_text(FLEET_CONFIG)
    out = tmp_path / "out"
    nightly = subprocess.Popen([BIN / "prefect", "deployment", "run", "export-and-benchmark/nightly",
                                "-p", "fan_out=true", "-p", f"models={json.dumps(FLEET_MODELS)}", "-p", "budget=quick",
                                "-p", f"out={out}", "-p", f"config_path={config}",
                                "-p", "input_shape=[1, 3, 4, 32, 32]", "--watch", "--watch-timeout", "1500"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 900
        while not all(flow_run_processes(pid) for pid in fleet.values()):  # both workers run a model at once
            assert nightly.poll() is None, nightly.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the two fleet workers never ran two models at once"
            time.sleep(0.5)
        (victim_run,) = flow_run_processes(fleet["worker-fleet-1"]).values()
        killed = kill_tree(fleet["worker-fleet-1"])
        survivor = psutil.Process(fleet["worker-fleet-2"]).children()[0].pid  # the prefect worker under the wrapper
        text, _ = nightly.communicate(timeout=1600)
    finally:
        if nightly.poll() is None:
            nightly.kill()
        subprocess.run([BIN / "edgebench", "serve"], env=env, check=True, timeout=600)  # a new worker-fleet-1
    assert nightly.returncode == 0 and "Completed" in text, text[-3000:]
    assert not [p for p in killed if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]

    # The killed worker's model ran again: its flow run Crashed (no heartbeat, or stuck PENDING), then completed on the
    # other worker.
    runs = json.loads(subprocess.run([BIN / "prefect", "flow-run", "ls", "--flow-name", "model-pipeline", "-o", "json"],
                                     env=env, capture_output=True, text=True, timeout=120, check=True).stdout)
    runs = [r for r in runs if r["deployment_id"]]  # not the in-process model-pipeline subflows of other tests
    by_id = {r["id"]: r for r in runs}
    assert sorted(r["name"] for r in runs) == sorted(FLEET_MODELS)
    assert all(r["state_type"] == "COMPLETED" and r["work_queue_name"] == "fleet" for r in runs), runs
    moved = by_id[victim_run]  # run_count is 1 when the worker died while the run was still PENDING (never RUNNING)
    run_id = (out / "latest").resolve().name
    workers = {m: json.loads((out / "storage" / "runs" / run_id / "models" / f"{m}.json").read_text())["worker"]
               for m in FLEET_MODELS}
    assert workers[moved["name"]]["worker_pid"] == survivor

    # One report and one history write with every model whole.
    rows = pd.read_csv(out / "latest" / "results.csv")
    assert sorted(set(rows["model"])) == sorted(FLEET_MODELS)
    for model in FLEET_MODELS:
        mine = rows[rows["model"] == model]
        assert sorted(zip(mine["format"], mine["runtime"])) == [("pytorch", "torch"), ("torchscript", "torchscript")]
        assert (mine["status"] == "passed").all(), mine[["format", "status", "reason"]]
    history = HistoryStore(f"sqlite:///{out / 'history.sqlite'}")
    with history as store:
        h = store.load()
    assert set(h["run_id"]) == {run_id} and len(h) == len(rows)
