"""Run a function in a child process with a hard timeout, its output captured to a log file.

Heavy native work (converters, runtimes) can raise, crash by signal or hang. None of that may
take the caller down: each becomes an `IsolatedFailure` with a one-line reason.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class IsolatedFailure:
    """Why a child produced no result: `timeout after 900 s`, `killed by SIGSEGV`, `RuntimeError: ...`."""

    reason: str
    log_path: str
    seconds: float


def _child(fn: Callable, args: tuple, result_path: str, log_path: str) -> None:
    os.setsid()  # its own process group: a timeout kills grandchildren too
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
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        outcome = ("error", f"{type(e).__name__}: {first}" if first else type(e).__name__)
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f)
    os.replace(tmp, result_path)


def _kill_group(proc: mp.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.join(10)


def run_isolated(fn: Callable, args: tuple, timeout_s: float, log_path: str | Path) -> Any | IsolatedFailure:
    """fn(*args) in a fresh spawned process; its return value, or an IsolatedFailure."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    with tempfile.TemporaryDirectory(prefix="edgebench-child-") as tmp:
        result_path = os.path.join(tmp, "result.pkl")
        proc = mp.get_context("spawn").Process(target=_child, args=(fn, args, result_path, str(log_path)))
        start = time.perf_counter()
        proc.start()
        proc.join(timeout_s)
        seconds = time.perf_counter() - start
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
