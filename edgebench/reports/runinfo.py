"""run.json: versions, host, git commit, weights, config and the run's records (enough to rebuild the report)."""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from dataclasses import asdict
from datetime import datetime
from importlib.metadata import PackageNotFoundError, distributions, version
from pathlib import Path

from edgebench.config import PROJECT_ROOT, stable_hash
from edgebench.converters.registry import converters
from edgebench.host import cpu_isa, cpu_model
from edgebench.records import (AccuracyResult, Artifact, LatencyResult, ModelRef, ParityResult, RepairResult, RunData,
                               record_from_dict)
from edgebench.runtimes.registry import all_runtimes

SCHEMA = 1
COMPLETE, INTERRUPTED = "complete", "interrupted"  # run.json `status`
BASE_PACKAGES = ("edgebench", "torch", "torchvision", "prefect", "pandas", "qai-hub", "numpy", "protobuf",
                 "SQLAlchemy", "Jinja2", "av", "pydantic")  # fmt: skip


@functools.lru_cache(maxsize=1)
def key_packages() -> tuple[str, ...]:
    """The base packages, then every registered converter's and runtime's libraries (from the registries)."""
    tools = [name for c in converters().values() for name in c.versions()] + [r.library for r in all_runtimes().values()]
    return tuple(dict.fromkeys([*BASE_PACKAGES, *tools]))


def library_versions(names=None) -> dict[str, str]:
    """Installed version of each key package ("not installed" when absent), plus Python."""
    names = key_packages() if names is None else names
    installed = _installed()
    out = {"python": platform.python_version()}
    for name in names:
        found = installed.get(_normalize(name))
        if found is None:
            try:
                found = (name, version(name))
            except PackageNotFoundError:
                found = (name, "not installed")
        out[name] = found[1]
    return out


def all_packages() -> dict[str, str]:
    """Every distribution in this environment (a pip freeze, as a mapping)."""
    return dict(sorted(_installed().values(), key=lambda nv: nv[0].lower()))


@functools.lru_cache(maxsize=1)
def _installed() -> dict[str, tuple[str, str]]:
    """{normalized name: (name, version)}, read from dist-info folder names (parsing every METADATA takes a second)."""
    out: dict[str, tuple[str, str]] = {}
    for d in distributions():
        path = getattr(d, "_path", None)
        stem = Path(str(path)).name.rsplit(".", 1)[0] if path else ""
        if Path(str(path)).suffix in (".dist-info", ".egg-info") and "-" in stem:
            name, ver = stem.split("-", 1)
        else:
            name, ver = d.metadata["Name"], d.version
        if name:
            out.setdefault(_normalize(name), (name, ver))
    return out


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def host_info() -> dict:
    """Host name, OS, CPU model, its kernel-relevant ISA flags and core counts."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "isa": cpu_isa(),
        "cores": os.cpu_count(),
        "cores_usable": usable,
        "python": sys.version.split()[0],
    }


def host_key(host: dict, threads: int) -> str:
    """What decides a ratio's baseline: the CPU model, its kernel ISA flags and the thread count, hashed (12 hex)."""
    return stable_hash({"cpu": host.get("cpu", ""), "isa": sorted(host.get("isa") or []), "threads": threads})[:12]


def git_commit(root: Path = PROJECT_ROOT) -> str:
    """`git rev-parse HEAD` of the project, "unknown" when there is no git or no commit."""
    try:
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return res.stdout.strip() if res.returncode == 0 and res.stdout.strip() else "unknown"


def git_dirty(root: Path = PROJECT_ROOT) -> bool | None:
    """True when tracked files have uncommitted changes; None without git."""
    try:
        res = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                             capture_output=True, text=True, timeout=10)  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(res.stdout.strip()) if res.returncode == 0 else None


def duration_s(start: str, end: str) -> float | None:
    try:
        return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (TypeError, ValueError):
        return None


WHERE = ("host", "git_commit", "git_dirty", "versions", "packages")  # where a run's figures came from


def where_now() -> dict:
    """This process's host, git commit and package versions (the WHERE fields of run.json)."""
    return {"host": host_info(), "git_commit": git_commit(), "git_dirty": git_dirty(), "versions": library_versions(),
            "packages": all_packages()}


def build_run_info(run: RunData, findings=(), summary: dict | None = None, files: dict | None = None,
                   where: dict | None = None) -> dict:
    """Everything run.json holds; `where`: the WHERE fields of another process (default: this one's)."""
    place = where or where_now()
    return {
        "schema": SCHEMA,
        "run_id": run.run_id,
        "status": COMPLETE,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_s": duration_s(run.started_at, run.ended_at),
        "threads": run.threads,
        "out_dir": run.out_dir,
        **place,
        "host": {**(run.host or place["host"]), "peak": run.peak},  # the limit beside the ISA flags it was measured with
        "host_key": host_key(run.host or place["host"], run.threads),
        "weights": {m.name: m.provenance for m in run.models},
        "random_weights": any(m.random_weights for m in run.models),
        "config": run.config,
        "files": files or {"results_csv": "results.csv", "report_html": "report.html"},
        "summary": summary or {},
        "findings": [f.to_dict() for f in findings],
        "records": run_to_dict(run),
    }


def interrupted_run_info(run_id: str, started_at: str, ended_at: str, reason: str, finished: list[str]) -> dict:
    """run.json of a run that was stopped: why, when, and the steps that had finished (no records)."""
    return {"schema": SCHEMA, "run_id": run_id, "status": INTERRUPTED, "reason": reason, "started_at": started_at,
            "ended_at": ended_at, "duration_s": duration_s(started_at, ended_at), "host": host_info(),
            "finished": finished}


def run_to_dict(run: RunData) -> dict:
    """The run's records as plain JSON-able data."""
    return {
        "run_id": run.run_id, "started_at": run.started_at, "ended_at": run.ended_at, "out_dir": run.out_dir,
        "threads": run.threads, "config": run.config, "host": run.host,
        "models": [asdict(m) for m in run.models],
        "artifacts": [a.to_dict() for a in run.artifacts],
        "parity": [p.to_dict() for p in run.parity],
        "latency": [lr.to_dict() for lr in run.latency],
        "accuracy": [ar.to_dict() for ar in run.accuracy],
        "peak": run.peak,
        "repairs": [r.to_dict() for r in run.repairs],
    }  # fmt: skip


def run_from_dict(d: dict) -> RunData:
    """The inverse of run_to_dict (unknown keys ignored, so old run.json files still load)."""
    return RunData(
        run_id=d["run_id"], started_at=d["started_at"], ended_at=d.get("ended_at", ""),
        out_dir=d.get("out_dir", ""), threads=d.get("threads", 0), config=d.get("config") or {},
        models=[record_from_dict(ModelRef, m) for m in d.get("models", [])],
        artifacts=[Artifact.from_dict(a) for a in d.get("artifacts", [])],
        parity=[record_from_dict(ParityResult, p) for p in d.get("parity", [])],
        latency=[record_from_dict(LatencyResult, lr) for lr in d.get("latency", [])],
        accuracy=[record_from_dict(AccuracyResult, ar) for ar in d.get("accuracy", [])],
        peak=d.get("peak") or {}, host=d.get("host") or {},
        repairs=[record_from_dict(RepairResult, r) for r in d.get("repairs", [])],
    )  # fmt: skip
