"""End to end: a real Prefect server and workers on 127.0.0.1, the deployments run as a user would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from edgebench.liveness import pid_alive

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """`edgebench serve` into a fresh PREFECT_HOME; `edgebench stop` afterwards, checked by pid."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    subprocess.run([BIN / "edgebench", "serve"], env=env, check=True, timeout=600)
    again = subprocess.run([BIN / "edgebench", "serve"], env=env, check=True, timeout=600, capture_output=True, text=True)
    state = json.loads((home / "edgebench-serve.json").read_text())
    try:
        assert "already running" in again.stdout  # idempotent: the second call found the first server
        assert state["api_url"].startswith("http://127.0.0.1:")
        yield {**env, "PREFECT_API_URL": state["api_url"]}, state
    finally:
        subprocess.run([BIN / "edgebench", "stop"], env=env, timeout=120)
        left = [pid for pid in state["pids"].values() if pid_alive(pid)]
        assert not left, f"still running after stop: {left}"


def deployment_run(env: dict, name: str, *params: str) -> subprocess.CompletedProcess:
    args = [BIN / "prefect", "deployment", "run", name, *params, "--watch", "--watch-timeout", "1800"]
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=1900)


def test_adhoc_deployment_runs_to_a_report(served, full_out):
    env, _ = served
    done = deployment_run(env, "export-and-benchmark/adhoc", "-p", "budget=quick", "-p", f"out={full_out}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Completed" in done.stdout
    latest = full_out / "latest"
    assert (latest / "report.html").exists()
    rows = pd.read_csv(latest / "results.csv")
    assert set(rows["format"]) >= {"pytorch", "torchscript", "onnx", "coreml", "tflite"}
    assert (rows.loc[rows["runtime"] == "onnxruntime", "status"] == "passed").all()


def test_benchmark_dispatched_to_the_second_worker(served, tmp_path):
    env, state = served
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
