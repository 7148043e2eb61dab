"""The worker wrapper (edgebench/flows/worker.py) stops its worker on SIGTERM, and kills one that does not stop:
Prefect's worker has hung after relaying SIGINT to its process worker, and `edgebench stop` waited for ever."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

STUBBORN = ("import signal, time; [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)]; "
            "time.sleep(600)")
POLITE = "import time; time.sleep(600)"


def exit_code(returncode: int) -> int:
    """The wrapper's exit status for its worker's return code (sys.exit of a negative code wraps to 256 - n)."""
    return returncode % 256


def supervised(worker_code: str, stop_s: float) -> tuple[subprocess.Popen, psutil.Process]:
    """A wrapper process supervising `python -c worker_code`, and that worker once it runs."""
    code = (f"import sys; from edgebench.flows.worker import supervise; "
            f"sys.exit(supervise([sys.executable, '-c', {worker_code!r}], stop_s={stop_s}))")
    wrapper = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not (children := psutil.Process(wrapper.pid).children()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children, "the wrapper started no worker"
    time.sleep(1.0)  # the wrapper's signal handlers are in place once it waits
    return wrapper, children[0]


def stopped(*procs) -> None:
    """Kill what a failed test left running, by pid."""
    for proc in procs:
        try:
            proc.kill()
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass


def test_a_worker_that_ignores_sigterm_is_killed_after_the_stop_time():
    wrapper, worker = supervised(STUBBORN, stop_s=2)
    try:
        start = time.monotonic()
        wrapper.send_signal(signal.SIGTERM)
        code = wrapper.wait(30)  # without the kill: TimeoutExpired (the wrapper waited for ever)
        assert code == exit_code(-signal.SIGKILL) and 2 <= time.monotonic() - start < 15
        assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE
    finally:
        stopped(worker, wrapper)


def test_a_worker_that_stops_is_not_killed():
    wrapper, worker = supervised(POLITE, stop_s=60)
    try:
        start = time.monotonic()
        wrapper.send_signal(signal.SIGTERM)
        assert wrapper.wait(30) == exit_code(-signal.SIGTERM) and time.monotonic() - start < 10  # its own exit
    finally:
        stopped(worker, wrapper)
