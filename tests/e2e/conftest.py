"""One `edgebench serve` for every e2e test of a served deployment (a server, the default and second-host
workers and two fleet workers): starting and stopping it costs about a minute, so the session shares it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import psutil
import pytest

from tests.e2e.processes import assert_none_left, tree

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


class Served(NamedTuple):
    """The environment a Prefect CLI call needs, the PREFECT_HOME and serve's state (api_url, pids)."""

    env: dict
    home: Path
    state: dict


@pytest.fixture(scope="session")
def served(tmp_path_factory) -> Served:
    """`edgebench serve` into a fresh PREFECT_HOME, twice (the second finds the first); afterwards `edgebench stop`
    and no process of it left, by pid, workers a test restarted included. Its benchmarks take their own device
    locks: ones that run for minutes must not hold the lock other test sessions on the host wait for."""
    home = tmp_path_factory.mktemp("prefect-home")
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "EDGEBENCH_LOCK_DIR": str(tmp_path_factory.mktemp("served-locks"))}
    env.pop("PREFECT_API_URL", None)
    state_file = home / "edgebench-serve.json"
    subprocess.run([BIN / "edgebench", "serve"], env=env, check=True, timeout=600, cwd=ROOT)
    again = subprocess.run([BIN / "edgebench", "serve"], env=env, check=True, timeout=600, cwd=ROOT,
                           capture_output=True, text=True)
    state = json.loads(state_file.read_text())
    procs = [p for pid in state["pids"].values() for p in tree(pid)]
    try:
        assert "already running" in again.stdout, again.stdout
        assert state["api_url"].startswith("http://127.0.0.1:")
        yield Served({**env, "PREFECT_API_URL": state["api_url"]}, home, state)
    finally:
        restarted = json.loads(state_file.read_text())["pids"].values() if state_file.exists() else []
        procs += [p for pid in restarted if pid not in state["pids"].values() for p in _tree_if_alive(pid)]
        subprocess.run([BIN / "edgebench", "stop"], env=env, timeout=300, cwd=ROOT)
        # A worker needs a while to shut down on a loaded machine. `edgebench serve` detaches these processes, so
        # their parent is init, and reaping them is init's job (the VMs here have an init that never does).
        assert_none_left(procs, timeout_s=120, defunct_ok=True)


def _tree_if_alive(pid: int) -> list[psutil.Process]:
    try:
        return tree(pid)
    except psutil.NoSuchProcess:
        return []
