"""Run a function in a child process with a hard timeout, its output captured to a log file.

Heavy native work (converters, runtimes) can raise, crash by signal or hang. None of that may
take the caller down: each becomes an `IsolatedFailure` with a one-line reason.

Every live child is registered by pid, so stopping a run (a signal, a cancelled flow run, a lost
server: see `edgebench.interrupts`) kills each child's process group at once, and no new child
starts. A child also dies with its parent (PR_SET_PDEATHSIG), so a SIGKILLed run leaves none.
Every child runs under the memory budget (`edgebench.child_memory`): past it, it alone dies, as an
`out of memory` failure with its peak; every child's peak comes back with its result.
Every killed group is reaped whole (`edgebench.reaping`), so none is left <defunct> either.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.connection
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

from edgebench.child_memory import ChildGuard, ChildMemory, MemoryBudget, own_peak_mb
from edgebench.errors import reason_of
from edgebench.reaping import adopt_orphans, group_members, reap
from edgebench.records import OUT_OF_MEMORY

POLL_S = 0.5  # how often the parent samples a running child's resident peak


@dataclass(frozen=True)
class IsolatedFailure:
    """Why a child produced no result: `timeout after 900 s`, `killed by SIGSEGV`, `RuntimeError: ...`,
    `out of memory: peak 2,048 MB, limit 2,048 MB per child (cgroup v1); killed by SIGKILL`."""

    reason: str
    log_path: str
    seconds: float
    memory: ChildMemory = ChildMemory()

    def status(self, otherwise: str) -> str:
        """The status of the record this failure makes: out_of_memory, else the step's own failure status."""
        return OUT_OF_MEMORY if self.memory.out_of_memory else otherwise


@dataclass(frozen=True)
class ChildRun:
    """One child's outcome: its return value or its failure, and the memory it used."""

    value: Any
    failure: IsolatedFailure | None
    memory: ChildMemory


class Stopped(BaseException):
    """The run is stopping: no child may start, and the one being waited for was killed.

    A BaseException, like KeyboardInterrupt, so no step turns it into a row and no retry catches it.
    """


_live: dict[int, mp.Process] = {}  # pid (= process group id) -> child
_live_lock = threading.Lock()
_stopping = threading.Event()
_budget = MemoryBudget.of()  # every child's memory limit; a run sets its config's (use_memory_budget)


def use_memory_budget(budget: MemoryBudget) -> None:
    """The memory limit of every child this process starts from now on."""
    global _budget
    _budget = budget


def memory_budget() -> MemoryBudget:
    return _budget


def stop_children(wait_s: float = 5.0) -> list[int]:
    """Refuse new children, SIGKILL the process group of every live one and reap them all; returns their pids."""
    with _live_lock:
        _stopping.set()
        procs = list(_live.values())
    groups = {proc.pid: group_members(proc.pid) for proc in procs}
    for proc in procs:
        _signal_group(proc)
    deadline = time.monotonic() + wait_s
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        reap(groups[proc.pid] - {proc.pid}, max(0.0, deadline - time.monotonic()))
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
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os._exit(1)


def _become_child(tmpdir: str, log_path: str, parent_pid: int | None, guard: ChildGuard | None) -> None:
    """In a fresh child: its own process group, death with its parent, the memory budget, temporary files and
    output in our places."""
    os.setsid()  # its own process group: a timeout kills grandchildren too
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    if guard is not None:
        guard.enter()
    # Temporary files of the child (converters leave some) go to a folder the parent removes.
    os.environ["TMPDIR"] = tempfile.tempdir = tmpdir
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)


def _child(fn: Callable, args: tuple, result_path: str, log_path: str, parent_pid: int | None = None,
           guard: ChildGuard | None = None) -> None:
    _become_child(os.path.dirname(result_path), log_path, parent_pid, guard)
    try:
        outcome = ("ok", fn(*args))
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as a reason
        traceback.print_exc()
        outcome = ("error", reason_of(e))
    outcome += (own_peak_mb(),)
    sys.stdout.flush()
    sys.stderr.flush()
    tmp = result_path + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(outcome, f)
    os.replace(tmp, result_path)


def _kill_group(proc: mp.Process, wait_s: float = 10) -> None:
    """SIGKILL the child's process group; join the child and reap its grandchildren (adopted orphans)."""
    members = group_members(proc.pid) - {proc.pid}
    _signal_group(proc)
    proc.join(wait_s)
    reap(members, wait_s)


def _signal_group(proc: mp.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def run_isolated(fn: Callable, args: tuple, timeout_s: float, log_path: str | Path) -> Any | IsolatedFailure:
    """fn(*args) in a fresh spawned process; its return value, or an IsolatedFailure."""
    done = run_child(fn, args, timeout_s, log_path)
    return done.failure or done.value


def run_child(fn: Callable, args: tuple, timeout_s: float, log_path: str | Path) -> ChildRun:
    """fn(*args) in a fresh spawned process under the memory budget; its value or failure, and its memory."""
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    guard = ChildGuard(_budget)
    with tempfile.TemporaryDirectory(prefix="edgebench-child-") as tmp:
        result_path = os.path.join(tmp, "result.pkl")
        proc = mp.get_context("spawn").Process(target=_child, args=(fn, args, result_path, str(log_path), os.getpid(),
                                                                    guard))
        start = time.perf_counter()
        if _stopping.is_set():
            guard.finish("")
            raise Stopped("the run is stopping")
        adopt_orphans()  # a killed child's grandchildren come to us to be reaped, not to init
        proc.start()
        with _live_lock:  # stop_children either sees this child, or this sees that the run stops
            _live[proc.pid] = proc
            stopped_meanwhile = _stopping.is_set()
        if stopped_meanwhile:
            _kill_group(proc)
        try:
            _wait(proc, timeout_s, guard)
        except BaseException:  # a signal in this thread (KeyboardInterrupt, Prefect's TerminationSignal)
            stop_children()
            guard.finish("")
            raise
        finally:
            with _live_lock:
                _live.pop(proc.pid, None)
        seconds = time.perf_counter() - start
        if _stopping.is_set():  # killed by stop_children, or finished while the run stops: no row either way
            _kill_group(proc)
            guard.finish("")
            raise Stopped("the run is stopping")
        if proc.is_alive():
            _kill_group(proc)
            memory = guard.finish("")
            return _failed(f"timeout after {timeout_s:g} s", log_path, seconds, memory)
        if os.path.exists(result_path):
            with open(result_path, "rb") as f:
                status, value, peak = pickle.load(f)
            if status == "ok":
                return ChildRun(value, None, guard.finish("", peak))
            return _failed(value, log_path, seconds, guard.finish(value, peak))
        reason = _exit_reason(proc)
        return _failed(reason, log_path, seconds, guard.finish(f"{reason}\n{log_tail(log_path)}"))


def _wait(proc: mp.Process, timeout_s: float, guard: ChildGuard) -> None:
    """Join the child until it ends or the timeout passes, sampling its resident peak meanwhile."""
    deadline = time.monotonic() + timeout_s
    while proc.is_alive():
        left = deadline - time.monotonic()
        if left <= 0:
            return
        guard.sample(proc.pid)
        proc.join(min(POLL_S, left))


def _exit_reason(proc: mp.Process) -> str:
    code = proc.exitcode
    if code is not None and code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exited with code {code} without a result"


class ChildFailed(Exception):
    """A resident child answered with an error, died or missed its deadline; the message is the one-line reason."""


class Resident:
    """A spawned child that stays loaded and answers the parent's requests one at a time, each under a hard timeout.

    `setup(*args)` runs in the child and returns (ready, answer): `ready` goes to the parent at once,
    then every request `m` gets `answer(m)` back, until the parent sends None or goes away. The child
    lives like a `run_child` one: its own process group, the memory budget, its output in `log_path`,
    registered as live (a stopping run kills it), dead with its parent. Any trouble is a `ChildFailed`
    with a reason (an out-of-memory death says so, with its peak).
    """

    def __init__(self, setup: Callable, args: tuple, log_path: str | Path, timeout_s: float):
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        if _stopping.is_set():
            raise Stopped("the run is stopping")
        self._guard = ChildGuard(_budget)
        self._tmp = tempfile.TemporaryDirectory(prefix="edgebench-child-")
        ctx = mp.get_context("spawn")
        self._conn, child_conn = ctx.Pipe()
        self.proc = ctx.Process(target=_resident, args=(setup, args, child_conn, self._tmp.name, str(log_path),
                                                        os.getpid(), self._guard))
        adopt_orphans()
        self.proc.start()
        child_conn.close()
        with _live_lock:
            _live[self.proc.pid] = self.proc
            stopped_meanwhile = _stopping.is_set()
        if stopped_meanwhile:
            self.close()
            raise Stopped("the run is stopping")
        self.ready = self._reply(timeout_s)

    def ask(self, message: Any, timeout_s: float) -> Any:
        """Send one request and wait for its answer."""
        try:
            self._conn.send(message)
        except OSError:  # the child is gone: _reply says how
            pass
        return self._reply(timeout_s)

    def _reply(self, timeout_s: float) -> Any:
        try:
            got = mp.connection.wait([self._conn, self.proc.sentinel], timeout_s)
        except BaseException:  # a signal in this thread (KeyboardInterrupt, Prefect's TerminationSignal)
            stop_children()
            raise
        if _stopping.is_set():
            self.close()
            raise Stopped("the run is stopping")
        if not got:
            self.close()
            raise ChildFailed(f"timeout after {timeout_s:g} s")
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):  # died before answering
            self.close()
            reason = _exit_reason(self.proc)
            memory = self._guard.finish(reason)
            raise ChildFailed(memory.reason(reason) if memory.out_of_memory else reason) from None
        if kind == "error":
            self.close()
            raise ChildFailed(value)
        return value

    def close(self) -> None:
        """Let the child end (or kill its group when it does not within seconds); unregister and reap it."""
        try:
            self._conn.send(None)
        except OSError:
            pass
        self.proc.join(5)
        if self.proc.exitcode is None:
            _kill_group(self.proc)
        with _live_lock:
            _live.pop(self.proc.pid, None)
        self._conn.close()
        self._tmp.cleanup()


def _resident(setup: Callable, args: tuple, conn, tmpdir: str, log_path: str, parent_pid: int,
              guard: ChildGuard) -> None:  # fmt: skip
    _become_child(tmpdir, log_path, parent_pid, guard)
    try:
        ready, answer = setup(*args)
        conn.send(("ok", ready))
        while answer is not None and (message := conn.recv()) is not None:
            conn.send(("ok", answer(message)))
    except EOFError:  # the parent went away
        pass
    except BaseException as e:  # noqa: BLE001 - everything must reach the parent as a reason
        traceback.print_exc()
        try:
            conn.send(("error", reason_of(e)))
        except OSError:
            pass
    sys.stdout.flush()
    sys.stderr.flush()


def _failed(reason: str, log_path: Path, seconds: float, memory: ChildMemory) -> ChildRun:
    if memory.out_of_memory:
        reason = memory.reason(reason)
    return ChildRun(None, IsolatedFailure(reason, str(log_path), seconds, memory), memory)


def log_tail(log_path: str | Path, lines: int = 20) -> str:
    try:
        return "\n".join(Path(log_path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
