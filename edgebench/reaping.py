"""No defunct process left behind: killed process groups reaped whole, multiprocessing's resource tracker stopped.

Killing a child's process group orphans its grandchildren, and when the run exits its own children
are orphaned too (multiprocessing's `resource_tracker`, started by the first spawned child). On a
host whose init does not reap orphans (containers, the VMs here: measured, PID 1 leaves them
<defunct> for good) each one stays in the process table. So the process that runs children adopts
its orphaned descendants (Linux's child subreaper), reaps every member of a group it kills, and at
exit stops the resource tracker and reaps what is left. Only a process that runs children adopts: a
subreaper that reaped late would hold others up (Prefect's worker waits until a flow run's whole
process group is gone, zombies included, before it exits).
"""

from __future__ import annotations

import atexit
import ctypes
import os
import signal
import time
from multiprocessing import resource_tracker

PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h
POLL_S = 0.02

_adopting = False


def adopt_orphans() -> None:
    """Become the reaper of this process's orphaned descendants (Linux; elsewhere init keeps that job)."""
    global _adopting
    if _adopting:
        return
    try:
        _adopting = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        pass


def group_members(pgid: int) -> set[int]:
    """Pids whose process group is `pgid` (read from /proc; empty where there is none)."""
    members = set()
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else ():
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    members.add(int(entry))
            except OSError:  # gone meanwhile
                pass
    return members


def reap(pids: set[int], wait_s: float) -> set[int]:
    """Wait up to `wait_s` for each pid to end and reap it; those still running (or not our children) are returned.

    A pid that is not (or no longer) our child raises ECHILD: someone else reaps it, and it is dropped.
    """
    left = set(pids)
    deadline = time.monotonic() + wait_s
    while left:
        for pid in list(left):
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    left.discard(pid)
            except ChildProcessError:
                left.discard(pid)
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(POLL_S)
    return left


def stop_resource_tracker(wait_s: float = 5.0) -> None:
    """Close our end of multiprocessing's resource tracker pipe (it then exits) and reap it; SIGKILL it after `wait_s`."""
    tracker = resource_tracker._resource_tracker  # the module's one instance; Python 3.11 has no public stop
    fd, pid = getattr(tracker, "_fd", None), getattr(tracker, "_pid", None)
    if fd is None or pid is None:  # never started here, or this process is a child using its parent's
        return
    tracker._fd = tracker._pid = None
    try:
        os.close(fd)
    except OSError:
        pass
    if reap({pid}, wait_s):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        reap({pid}, 1.0)


def reap_all_dead() -> None:
    """Reap every child that has already ended (at exit nothing else will)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def at_exit() -> None:
    """The resource tracker stopped and every ended child reaped; also called before an os._exit."""
    stop_resource_tracker()
    reap_all_dead()


atexit.register(at_exit)  # registered at import, before Prefect's server: runs after the server's own stop
