"""How much of the host's CPU other processes took while a paired session timed its rows.

Interleaving cancels a drift that slows every row alike. A neighbour competing for the cores does not
slow every runtime alike: measured here, in a session where eager ran 3.1x slower than in the sessions
around it (others' jobs kept the load average at 4 on 2 cores), the ratios to eager moved by -20 to
-40 %. So the session reads the host's CPU time (all CPUs, the hypervisor's steal included) and its own
processes' CPU time at the start and the end of its rounds; what the host spent beyond ours, as a share
of all CPU time in between, is the foreign share the report shows and the finder checks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil

BUSY = ("user", "nice", "system", "irq", "softirq", "steal")  # /proc/stat columns of used (or stolen) CPU
IDLE = ("idle", "iowait")
COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


@dataclass(frozen=True)
class CpuSnapshot:
    """CPU seconds so far: the host's busy and total over every CPU, and ours (the given processes)."""

    host_busy: float
    host_total: float
    ours: float


def snapshot(pids: list[int]) -> CpuSnapshot | None:
    """The host's and these processes' CPU seconds now; None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = f.readline().split()[1:]
    except OSError:
        return None
    ticks = dict(zip(COLUMNS, (int(v) for v in values)))
    per_second = os.sysconf("SC_CLK_TCK")
    busy = sum(ticks.get(c, 0) for c in BUSY) / per_second
    total = busy + sum(ticks.get(c, 0) for c in IDLE) / per_second
    return CpuSnapshot(busy, total, sum(_cpu_seconds(pid) for pid in pids))


def foreign_share(start: CpuSnapshot | None, end: CpuSnapshot | None) -> float | None:
    """The share of all CPU time between two snapshots that other processes used (0..1); None if unknown."""
    if start is None or end is None or end.host_total <= start.host_total:
        return None
    foreign = (end.host_busy - start.host_busy) - (end.ours - start.ours)
    return min(1.0, max(0.0, foreign / (end.host_total - start.host_total)))


def _cpu_seconds(pid: int) -> float:
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system
