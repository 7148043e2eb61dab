"""Stopping a run, without Prefect: child process groups killed, children dying with their parent,
the per-key export lock, the sweep of dead runs' temporary folders, the interrupted marker, the
server watchdog and the signal handler."""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest

from edgebench import interrupts, isolation
from edgebench.liveness import probe
from edgebench.converters.export import export_artifact, sweep_temporary
from edgebench.errors import UserError
from edgebench.reports.writer import mark_interrupted, rebuild_report
from tests import fault_converters as faults
from tests.child_jobs import sleeper

TIMEOUT_S = 300


def _wait_for(predicate, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _gone(pid: int) -> bool:
    """Ended and reaped: a <defunct> process still counts as left."""
    return not psutil.pid_exists(pid)


def _ended(pid: int) -> bool:
    """Ended; <defunct> allowed (only for a SIGKILLed parent, whose orphans are init's to reap)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.fixture(autouse=True)
def children_allowed():
    isolation.allow_children()
    yield
    isolation.allow_children()


def test_stop_children_kills_each_group_and_refuses_new_children(tmp_path):
    pid_file = tmp_path / "pids"
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(isolation.run_isolated, sleeper, (600, str(pid_file)), TIMEOUT_S, tmp_path / "child.log")
        _wait_for(pid_file.exists)
        child, grandchild = map(int, pid_file.read_text().split())
        assert isolation.live_children() == [child]
        assert isolation.stop_children() == [child]
        with pytest.raises(isolation.Stopped):
            waiting.result(timeout=30)
    _wait_for(lambda: _gone(child) and _gone(grandchild), 10)
    assert isolation.live_children() == []
    with pytest.raises(isolation.Stopped):  # no new child while the run stops
        isolation.run_isolated(sleeper, (1, str(pid_file)), TIMEOUT_S, tmp_path / "again.log")
    isolation.allow_children()  # negative control: the same call runs to its end when nothing stops it
    assert isolation.run_isolated(sleeper, (0.1, str(pid_file)), TIMEOUT_S, tmp_path / "again.log") == "slept"


PARENT = """
import sys
from edgebench.isolation import run_isolated
from tests.child_jobs import sleeper
run_isolated(sleeper, (600, sys.argv[1]), 900, sys.argv[2])
"""


def test_a_sigkilled_parent_takes_its_child_along(tmp_path):
    pid_file = tmp_path / "pids"
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(pid_file), str(tmp_path / "child.log")],
                              cwd=Path(__file__).resolve().parents[2])
    try:
        _wait_for(pid_file.exists)
        child = int(pid_file.read_text().split()[0])
        assert not _ended(child)
        parent.kill()  # SIGKILL: no handler, no cleanup in the parent
        parent.wait(30)
        _wait_for(lambda: _ended(child), 10)
    finally:
        parent.kill()


def test_second_exporter_of_a_key_waits_then_takes_the_hit(small_ref, tmp_path, fault_formats):
    converter = faults.Slow()
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(export_artifact, small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, True, converter)
        _wait_for(lambda: list(tmp_path.glob("*/*/.tmp-*")))  # the first child is exporting
        second = pool.submit(export_artifact, small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, True, converter)
        first, second = first.result(), second.result()
    assert first.ok and not first.cached
    assert second.ok and second.cached and second.path == first.path and second.sha256 == first.sha256
    assert Path(first.log_path).read_text().count("edgebench: exporting resnet_mixed") == 1  # one export, not two


def test_waiting_for_a_key_lock_gives_up_when_the_run_stops(small_ref, tmp_path, fault_formats):
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(export_artifact, small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, True, faults.Hanging())
        _wait_for(lambda: list(tmp_path.glob("*/*/.tmp-*/model.bin")))
        second = pool.submit(export_artifact, small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, True, faults.Hanging())
        time.sleep(0.5)  # the second one is waiting for the lock
        isolation.stop_children()
        for future in (first, second):
            with pytest.raises(isolation.Stopped):
                future.result(timeout=30)
    folder = next(tmp_path.glob("*/fault-fp32-*/"))
    assert not (folder / "artifact.json").exists()  # no record: neither a hit nor a failure row
    assert not list(folder.glob(".tmp-*")) and not (folder / "model.bin").exists()


def test_sweep_removes_only_dead_exporters_temporary_folders(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = tmp_path / "resnet_mixed" / "onnx-fp32-abc"
    stale, live = folder / f".tmp-{dead.pid}-0000", folder / f".tmp-{os.getpid()}-1111"
    for tmp in (stale, live):
        tmp.mkdir(parents=True)
        (tmp / "model.onnx").write_bytes(b"half")
    assert sweep_temporary(tmp_path) == [stale]
    assert not stale.exists() and live.exists()  # a concurrent run's export in progress stays


def test_interrupted_marker_leaves_latest_alone_and_has_no_report(tmp_path):
    path = mark_interrupted(tmp_path, "20261201T000000Z-abcd", "2026-12-01T00:00:00+00:00", "interrupted by SIGINT",
                            ["export resnet_mixed onnx fp32: passed in 2.0 s"])
    info = json.loads(path.read_text())
    assert info["status"] == "interrupted" and info["reason"] == "interrupted by SIGINT"
    assert info["finished"] == ["export resnet_mixed onnx fp32: passed in 2.0 s"]
    assert not (tmp_path / "latest").exists() and not (tmp_path / "history.sqlite").exists()
    with pytest.raises(UserError, match="interrupted"):
        rebuild_report(path.parent)


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - the http.server API
        self.send_response(200 if self.path == "/api/health" else 404)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_watchdog_stops_the_run_when_the_api_goes_away(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    assert probe(url) == "ok"
    lost = threading.Event()
    dog = interrupts.ServerWatchdog(run=None)
    monkeypatch.setattr(dog, "lost", lost.set)  # the real one kills the children and exits the process
    monkeypatch.setattr(interrupts, "HEALTH_EVERY_S", 0.05)
    monkeypatch.setattr(interrupts, "api_url", lambda: url)
    dog.start()
    time.sleep(0.5)
    assert not lost.is_set()  # negative control: a healthy server is left alone
    server.shutdown()
    server.server_close()
    assert probe(url) == "refused"
    assert lost.wait(10)
    dog.stop()


def test_first_signal_stops_the_children_and_raises_with_the_exit_code(monkeypatch):
    monkeypatch.setattr(interrupts, "GRACE_S", 3600)  # the hard exit must not end pytest
    before = {s: signal.getsignal(s) for s in interrupts.SIGNALS}
    try:
        with pytest.raises(interrupts.Interrupted) as got:
            with interrupts.handled_signals():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(5)
        assert got.value.exit_code == 143 and isolation.stopping()
        assert signal.getsignal(signal.SIGINT) is not before[signal.SIGINT]  # kept: a second signal exits at once
    finally:
        for s, h in before.items():
            signal.signal(s, h)


SIGNALLED = """
import sys
from edgebench import interrupts, isolation
from tests.child_jobs import sleeper
with interrupts.handled_signals():
    try:
        isolation.run_isolated(sleeper, (600, sys.argv[1]), 900, sys.argv[2])
    except interrupts.Interrupted as e:
        sys.exit(e.exit_code)
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signalled_run_leaves_no_process_not_even_a_defunct_one(tmp_path, signum):
    """Its child, the child's grandchild and multiprocessing's resource tracker: all ended and reaped."""
    pid_file = tmp_path / "pids"
    run = subprocess.Popen([sys.executable, "-c", SIGNALLED, str(pid_file), str(tmp_path / "child.log")],
                           cwd=Path(__file__).resolve().parents[2], start_new_session=True)
    try:
        _wait_for(pid_file.exists)
        procs = psutil.Process(run.pid).children(recursive=True)
        names = " ".join(" ".join(p.cmdline()) for p in procs)
        assert len(procs) == 3 and "resource_tracker" in names, names  # the child, its grandchild, the tracker
        os.killpg(run.pid, signum)  # as a terminal's Ctrl-C reaches the whole foreground group
        assert run.wait(60) == 128 + signum
        _wait_for(lambda: all(_gone(p.pid) for p in procs), 10)
    finally:
        run.kill()


TWICE = """
import os, signal, time
from edgebench import interrupts
with interrupts.handled_signals():
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
    except interrupts.Interrupted as e:
        print("first:", e.exit_code, flush=True)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(30)
        print("the second signal was ignored", flush=True)
"""


def test_second_signal_exits_at_once():
    done = subprocess.run([sys.executable, "-c", TWICE], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 130, done.stderr
    assert done.stdout.splitlines() == ["first: 130"]


def _slow_start(log: list, fail: bool = False):
    def start():
        log.append(("start", threading.current_thread().name))
        time.sleep(0.3)
        log.append(("started", time.monotonic()))
        if fail:
            raise RuntimeError("server would not start")
        return "http://127.0.0.1:1/api"
    return start


def test_server_starts_while_the_block_runs_and_is_awaited(monkeypatch):
    log: list = []
    monkeypatch.setattr(interrupts, "api_url", lambda: None)
    monkeypatch.setattr(interrupts, "start_ephemeral_server", _slow_start(log))
    with interrupts.server_starting():
        log.append(("block", threading.current_thread().name))
    left = time.monotonic()
    assert log[0][0] in {"start", "block"} and {e[0] for e in log} == {"start", "block", "started"}
    assert dict(log)["start"] != threading.current_thread().name  # in its own thread
    assert dict(log)["started"] <= left  # leaving the block waited for the start


def test_a_failed_server_start_is_raised_after_the_block_and_a_failed_block_wins(monkeypatch):
    log: list = []
    monkeypatch.setattr(interrupts, "api_url", lambda: None)
    monkeypatch.setattr(interrupts, "start_ephemeral_server", _slow_start(log, fail=True))
    with pytest.raises(RuntimeError, match="would not start"):
        with interrupts.server_starting():
            pass
    with pytest.raises(UserError, match="bad shape"):  # the user's error is the one reported
        with interrupts.server_starting():
            raise UserError("bad shape")
    assert [e[0] for e in log].count("started") == 2  # awaited both times, also after the failure


def test_no_server_start_when_an_api_is_configured(monkeypatch):
    monkeypatch.setattr(interrupts, "api_url", lambda: "http://127.0.0.1:4200/api")
    monkeypatch.setattr(interrupts, "start_ephemeral_server", lambda: pytest.fail("started a server"))
    with interrupts.server_starting():
        pass
