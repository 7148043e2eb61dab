"""The device backend interface: plan the (artifact, runtime) jobs a device can measure, run one, say why not."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from edgebench.config import PipelineConfig
from edgebench.records import SKIPPED, Artifact, LatencyResult, ParityResult
from edgebench.runs import PreparedModel, RunSettings


@dataclass(frozen=True)
class Device:
    """Where a benchmark runs: a backend kind ("local", "aihub", "queue") and, for most kinds, a name."""

    kind: str
    name: str = ""  # AI Hub device name ("Samsung Galaxy S24 (Family)"), work queue name, ...

    @property
    def label(self) -> str:
        """The string form used in rows and reports (round-trips through registry.parse_device)."""
        return f"{self.kind}:{self.name}" if self.name else self.kind

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class BenchJob:
    """One planned measurement: an artifact on a runtime (a registry runtime, a variant or a hub target) on a device.

    `precision` is the row's precision (a hub quantize job turns an fp32 artifact into int8 / w8a16);
    `options` are the configured options recorded in the row; `why_not` says why it cannot run.
    """

    artifact: Artifact
    runtime: str
    device: str
    precision: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    why_not: str = ""
    exclusive: bool = False  # one at a time per device on this host (the flow takes the device's slot)

    @property
    def row_precision(self) -> str:
        return self.precision or self.artifact.precision


@dataclass
class Measured:
    """What one job produced: its latency row and, when the backend judged outputs itself (AI Hub), a parity row."""

    latency: LatencyResult
    parity: ParityResult | None = None


class Backend(ABC):
    """One device kind. Adding a kind is one module with a subclass and one entry in catalogue.DEVICE_KINDS."""

    kind: str
    settings_model: type[BaseModel] | None = None  # its pipeline YAML section (catalogue.DeviceKind.settings)
    report_columns: dict[str, str] = {}  # results.csv columns only this kind fills (report_cells): name -> str|int|float
    together: bool = False  # a device's jobs are measured in one go (run_batch): local rows are timed interleaved

    def configured(self, config: PipelineConfig) -> list[Device]:
        """Devices of this kind the config names outside `devices:` (AI Hub's own list)."""
        return []

    def report_cells(self, row: LatencyResult) -> dict[str, Any]:
        """Values of `report_columns` for one of its latency rows."""
        return {}

    @abstractmethod
    def plan(self, device: Device, artifacts: list[Artifact], pm: PreparedModel, config: PipelineConfig) -> list[BenchJob]:
        """The jobs for `device`, in row order; one it cannot measure carries `why_not` instead of being left out."""

    @abstractmethod
    def run(self, job: BenchJob, pm: PreparedModel, settings: RunSettings) -> Measured:
        """Measure one planned job (never called with `why_not` set); trouble comes back as a row, not an exception."""

    def run_batch(self, jobs: list[BenchJob], pm: PreparedModel, settings: RunSettings) -> list[Measured]:
        """Measure jobs of one device (none with `why_not`), in order; by default one after the other."""
        return [self.run(job, pm, settings) for job in jobs]


def skipped(job: BenchJob, reason: str) -> Measured:
    """The row of a job that did not run, and why."""
    a = job.artifact
    return Measured(LatencyResult(a.model, a.format, job.row_precision, job.runtime, job.device, SKIPPED,
                                  reason=reason, runtime_options=dict(job.options)))
