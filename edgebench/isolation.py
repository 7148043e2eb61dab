"""Run a function in a child process with a hard timeout, its output captured to a log file.

Heavy native work (converters, runtimes) can raise, crash by signal or hang. None of that may
take the caller down: each becomes an `IsolatedFailure` with a one-line reason.

Every live child is registered by pid, so stopping a run (a signal, a cancelled flow run, a lost
server: see `edgebench.interrupts`) kills each child's process group at once, and no new child
starts. A child also dies with its parent (PR_SET_PDEATHSIG), so a SIGKILLed run leaves none.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from edgebench.errors import reason_of


@dataclass(frozen=True)
class IsolatedFailure:
    """Why a child produced no result: `timeout after 900 s`, `killed by SIGSEGV`, `RuntimeError: ...`."""

    reason: str
    log_path: str
    seconds: float


class Stopped(BaseException):
    """The run is stopping: no child may start, and the one being waited for was killed.

    A BaseException, like KeyboardInterrupt, so no step turns it into a row and no retry catches it.
    """


_live: dict[int, mp.Process] = {}  # pid (= process group id) -> child
_live_lock = threading.Lock()
_stopping = threading.Event()


def stop_children() -> list[int]:
    """Refuse new children and SIGKILL the process group of every live one; returns their pids."""
    with _live_lock:
        _stopping.set()
        procs = list(_live.values())
    for proc in procs:
        _kill_group(proc, wait_s=0)
    return [proc.pid for proc in procs]


def stopping() -> bool:
    return _stopping.is_set()


def allow_children() -> None:
    """Let children start again (a new run in the same process, e.g. a test)."""
    _stopping.clear()


def live_children() -> list[int]:
    with _live_lock:
        return list(_live)


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent dies (a SIGKILLed run must not leave children)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os._exit(1)


def _child(fn: Callable, args: tuple, result_path: str, log_path: str, parent_pid: int | None = None) -> None:
    os.setsid()  # its own process group: a timeout kills grandchildren too
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    # Temporary files of the child (converters leave some) go to a folder the parent removes.
    os.environ["TMPDIR"] = tempfile.tempdir = os.path.dirname(result_path)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    try:
        outcome = ("ok", fn(*args))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as a reason
        traceback.print_exc()
        outcome = ("error", reason_of(e))
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f)
    os.replace(tmp, result_path)


def _kill_group(proc: mp.Process, wait_s: float = 10) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    if wait_s:
        proc.join(wait_s)


def run_isolated(fn: Callable, args: tuple, timeout_s: float, log_path: str | Path) -> Any | IsolatedFailure:
    """fn(*args) in a fresh spawned process; its return value, or an IsolatedFailure."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    with tempfile.TemporaryDirectory(prefix="edgebench-child-") as tmp:
        result_path = os.path.join(tmp, "result.pkl")
        proc = mp.get_context("spawn").Process(target=_child, args=(fn, args, result_path, str(log_path), os.getpid()))
        start = time.perf_counter()
        if _stopping.is_set():
            raise Stopped("the run is stopping")
        proc.start()
        with _live_lock:  # stop_children either sees this child, or this sees that the run stops
            _live[proc.pid] = proc
            stopped_meanwhile = _stopping.is_set()
        if stopped_meanwhile:
            _kill_group(proc)
        try:
            proc.join(timeout_s)
        except BaseException:  # a signal in this thread (KeyboardInterrupt, Prefect's TerminationSignal)
            stop_children()
            raise
        finally:
            with _live_lock:
                _live.pop(proc.pid, None)
        seconds = time.perf_counter() - start
        if _stopping.is_set():  # killed by stop_children, or finished while the run stops: no row either way
            _kill_group(proc)
            raise Stopped("the run is stopping")
        if proc.is_alive():
            _kill_group(proc)
            return IsolatedFailure(f"timeout after {timeout_s:g} s", str(log_path), seconds)
        if os.path.exists(result_path):
            with open(result_path, "rb") as f:
                status, value = pickle.load(f)
            return value if status == "ok" else IsolatedFailure(value, str(log_path), seconds)
        code = proc.exitcode
        if code is not None and code < 0:
            reason = f"killed by {signal.Signals(-code).name}"
        else:
            reason = f"exited with code {code} without a result"
        return IsolatedFailure(reason, str(log_path), seconds)


def log_tail(log_path: str | Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
