"""The memory budget of every child process, and what each child used.

A limit from the config (`memory.child_limit`, default 75 % of this machine's memory) is enforced by
a memory cgroup of the child's own where this host lets us make one (the kernel then kills the child
alone at the limit, whatever allocated), else by the address-space rlimit (an allocation past it
fails inside the child: MemoryError, std::bad_alloc). Either way the child is the one that dies:
the host, the Prefect server and the other models go on. The parent samples the child's resident
peak (VmHWM, shared library pages included: ~0.5-1 GB for a torch child, which a cgroup does not
charge again) while it runs, and the child reports its own exact peak when it returns.
"""

from __future__ import annotations

import os
import re
import resource
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import UserError

MiB = 1024 * 1024
ENFORCERS = ("auto", "cgroup", "address-space")
DEFAULT_LIMIT = "75%"
# What an allocation failure looks like in a child's reason or log (Python, C++, glibc, torch, TensorFlow).
_OOM_TEXT = re.compile(r"MemoryError|bad_alloc|Cannot allocate memory|can't allocate memory|out of memory"
                       r"|failed to allocate|ResourceExhausted|OOM when allocating", re.IGNORECASE)
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|%)?\s*$", re.IGNORECASE)


def machine_memory() -> int:
    """Bytes of memory this process may use: the machine's, or its own cgroup's limit when lower."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for limit_file in ("memory.max", "memory.limit_in_bytes"):
        group = _own_group(version=2 if limit_file == "memory.max" else 1)
        try:
            text = (group / limit_file).read_text().strip() if group else "max"
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total


def parse_limit(text: str, total: int | None = None) -> int | None:
    """Bytes for "75%" (of `total`, default this machine), "12G", "800M", "2048" (MiB); None for "none"."""
    if str(text).strip().lower() in ("none", "unlimited", "off"):
        return None
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"'{text}' is not a memory size: write 75%, 12G, 800M or none")
    value, unit = float(m.group(1)), (m.group(2) or "M").upper()
    if unit == "%":
        if not 0 < value <= 100:
            raise ValueError(f"'{text}': a share of the machine's memory is between 0 and 100 %")
        return int((total or machine_memory()) * value / 100)
    return int(value * 1024 ** "KMGT".index(unit[0]) * 1024)


@dataclass(frozen=True)
class MemoryBudget:
    """The limit of each child, in bytes (None: none), and how it is enforced."""

    limit_bytes: int | None = None
    enforce: str = "auto"  # auto | cgroup | address-space

    @classmethod
    def of(cls, limit: str = DEFAULT_LIMIT, enforce: str = "auto") -> "MemoryBudget":
        """The budget of a config's `memory` section; `enforce: cgroup` on a host without one is a UserError."""
        budget = cls(parse_limit(limit), enforce)
        if enforce == "cgroup" and budget.limit_bytes is not None:
            try:
                ChildGuard(budget).finish("")
            except OSError as e:
                raise UserError(f"memory.enforce: {e}") from None
        return budget


@dataclass(frozen=True)
class ChildMemory:
    """What one child used: its resident peak, the limit it ran under and whether it ran out of memory."""

    peak_mb: float | None = None
    limit_mb: float | None = None
    enforced_by: str = ""  # "cgroup v1", "cgroup v2", "address space" or "" (no limit)
    out_of_memory: bool = False

    def reason(self, cause: str) -> str:
        """The one-line reason of a child that ran out: the limit and what it counts, its peak, what it died of."""
        counts = "address-space" if self.enforced_by == "address space" else f"{self.enforced_by} memory"
        peak = f"resident peak {self.peak_mb:,.0f} MB" if self.peak_mb else "resident peak unknown"
        return f"out of memory: past the {self.limit_mb:,.0f} MB {counts} limit per child; {peak}; {cause}"


class ChildGuard:
    """One child's limit: made in the parent before the start, entered by the child, read back at the end.

    Picklable (it travels to the spawned child): only paths and numbers.
    """

    def __init__(self, budget: MemoryBudget):
        self.limit = budget.limit_bytes
        self.cgroup: str | None = None
        self.version = 0
        self.peak_bytes = 0  # the largest resident size sampled from outside
        if self.limit is None:
            self.enforced_by = ""
            return
        if budget.enforce in ("auto", "cgroup"):
            self._make_cgroup()
        if self.cgroup is None and budget.enforce == "cgroup":
            raise OSError("memory.enforce is cgroup, but this host lets edgebench make no memory cgroup")
        self.enforced_by = f"cgroup v{self.version}" if self.cgroup else "address space"

    def _make_cgroup(self) -> None:
        for version in (2, 1):
            parent = _own_group(version)
            if parent is None or not os.access(parent, os.W_OK):
                continue
            if version == 2 and "memory" not in _read(parent / "cgroup.subtree_control").split():
                continue  # a v2 group may only limit its children's memory when delegated so
            group = parent / f"edgebench-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            try:
                group.mkdir()
                (group / ("memory.max" if version == 2 else "memory.limit_in_bytes")).write_text(str(self.limit))
                if version == 2:
                    (group / "memory.swap.max").write_text("0") if (group / "memory.swap.max").exists() else None
            except OSError:
                _remove(group)
                continue
            self.cgroup, self.version = str(group), version
            return

    def enter(self) -> None:
        """In the child, first thing: join the cgroup or set the rlimit; the kernel's OOM killer picks it first."""
        if self.limit is None:
            return
        try:
            Path("/proc/self/oom_score_adj").write_text("1000")  # a host-wide shortage kills a child, not the server
        except OSError:
            pass
        if self.cgroup:
            Path(self.cgroup, "cgroup.procs").write_text(str(os.getpid()))
        else:
            resource.setrlimit(resource.RLIMIT_AS, (self.limit, self.limit))

    def sample(self, pid: int) -> None:
        """The child's resident peak so far, with its own children's (read by the parent while it runs)."""
        self.peak_bytes = max(self.peak_bytes, sum(_hwm(p) for p in [pid, *_descendants(pid)]))

    def finish(self, cause: str, reported_peak: float | None = None) -> ChildMemory:
        """After the child ended: its peak and whether it ran out (`cause`: its failure reason and log tail, or "")."""
        oom = False
        peak = max(self.peak_bytes / MiB, reported_peak or 0.0) or None
        if self.cgroup:
            group = Path(self.cgroup)
            events = _read(group / ("memory.events" if self.version == 2 else "memory.oom_control"))
            oom = bool(re.search(r"^oom_kill [1-9]", events, re.MULTILINE))
            _remove(group)
        if self.limit is not None and cause and _OOM_TEXT.search(cause):
            oom = True
        return ChildMemory(round(peak, 1) if peak else None, self.limit / MiB if self.limit else None,
                           self.enforced_by, oom)


def own_peak_mb() -> float | None:
    """This process's resident peak in MiB: VmHWM (Linux; not ru_maxrss, which a spawned child inherits from
    its parent), else ru_maxrss (bytes on macOS, KiB elsewhere)."""
    hwm = _hwm(os.getpid())
    if hwm:
        return hwm / MiB

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / MiB if sys.platform == "darwin" else peak / 1024


def _own_group(version: int) -> Path | None:
    """This process's memory cgroup folder of that version, when mounted."""
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        hier, controllers, path = line.split(":", 2)
        if version == 2 and hier == "0" and controllers == "":
            mount = _mount("cgroup2")
        elif version == 1 and "memory" in controllers.split(","):
            mount = _mount("cgroup", "memory")
        else:
            continue
        if mount:
            return mount / path.lstrip("/")
    return None


def _mount(fstype: str, option: str | None = None) -> Path | None:
    for line in _read(Path("/proc/self/mounts")).splitlines():
        parts = line.split()
        if len(parts) > 3 and parts[2] == fstype and (option is None or option in parts[3].split(",")):
            return Path(parts[1])
    return None


def _hwm(pid: int) -> int:
    """VmHWM of a process in bytes; 0 when it is gone or the system has no /proc."""
    m = re.search(r"^VmHWM:\s+(\d+) kB", _read(Path(f"/proc/{pid}/status")), re.MULTILINE)
    return int(m.group(1)) * 1024 if m else 0


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - gone meanwhile, or no psutil: the child's own peak is still sampled
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _remove(group: Path, tries: int = 20) -> None:
    """rmdir a cgroup folder (its files go with it), waiting a moment for the kernel to let the dead child go."""
    for _ in range(tries):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
