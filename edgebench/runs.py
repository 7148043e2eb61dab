"""The run types every step shares: the run's settings, a prepared model, one model's results.

They sit below devices/, parity/, evaluation/ and the pipeline, so any of them can take and return
these without importing the others; small and picklable (Prefect tasks, child processes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from edgebench.config import BudgetConfig, PipelineConfig
from edgebench.records import AccuracyResult, Artifact, LatencyResult, ModelRef, ParityResult, RepairResult


def utc_now() -> str:
    """Now, as run records write times: ISO 8601 in UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class RunSettings:
    """What every step of one run needs to know; small and picklable."""

    run_id: str
    started_at: str
    out: str
    cache_dir: str
    threads: int
    quick: bool
    use_cache: bool
    config: PipelineConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / "runs" / self.run_id

    @property
    def budget(self) -> BudgetConfig:
        return self.config.benchmark.quick if self.quick else self.config.benchmark.full

    def log_path(self, model: str, *parts: str) -> Path:
        return self.run_dir / "logs" / model / ("-".join(parts) + ".log")


@dataclass(frozen=True)
class PreparedModel:
    """A resolved model with its saved inputs and reference outputs."""

    ref: ModelRef
    inputs_path: str
    reference_path: str
    flops: int


@dataclass
class ModelResults:
    """What one model's branch of the run produced."""

    ref: ModelRef
    artifacts: list[Artifact] = field(default_factory=list)
    parity: list[ParityResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    accuracy: list[AccuracyResult] = field(default_factory=list)
    repairs: list[RepairResult] = field(default_factory=list)

    def add(self, more: "ModelResults") -> None:
        """Append another step's records (the repair step's) to these."""
        for name in ("artifacts", "parity", "latency", "accuracy", "repairs"):
            getattr(self, name).extend(getattr(more, name))
