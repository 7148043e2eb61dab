"""The processes an e2e test starts or stops, by pid: a tree, its end (reaped, or <defunct> where allowed)."""

from __future__ import annotations

import contextlib
import time

import psutil


def tree(pid: int) -> list[psutil.Process]:
    """The process and every descendant (children in their own sessions too)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def assert_none_left(procs: list[psutil.Process], timeout_s: float = 30, defunct_ok: bool = False) -> None:
    """Every process ended and reaped: one left <defunct> counts as left (unless `defunct_ok`)."""
    deadline = time.monotonic() + timeout_s
    while left := [p for p in procs if _left(p, defunct_ok)]:
        assert time.monotonic() < deadline, f"left: {[(p.pid, _status(p), _cmdline(p)) for p in left]}"
        time.sleep(0.2)


def _left(p: psutil.Process, defunct_ok: bool) -> bool:
    try:
        return p.is_running() and not (defunct_ok and p.status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _status(p: psutil.Process) -> str:
    try:
        return p.status()
    except psutil.NoSuchProcess:
        return "gone"


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()[:4]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return []


def kill_tree(pid: int) -> list[psutil.Process]:
    """SIGKILL a process and every descendant at once: the machine under a worker is gone."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    return procs
