"""The runtime interface: one small class per backend; parity and benchmarks share its sessions."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from edgebench.catalogue import formats_run_by
from edgebench.packages import package_version
from edgebench.records import Artifact, ModelRef


class NotSupported(Exception):
    """The artifact uses something this runtime cannot execute (an op, a dtype): parity is skipped, not failed."""


def resolve_threads(threads: int) -> int:
    """0 means every core this process may run on (all of the host's, unless a fleet worker is pinned to some)."""
    if threads > 0:
        return threads
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this system (macOS)
        return os.cpu_count() or 1


def name_outputs(values: Sequence[np.ndarray], names: Sequence[str]) -> dict[str, np.ndarray]:
    """Positional outputs keyed by `names`; extra outputs get `output_<i>` so a count mismatch stays visible."""
    return {(names[i] if i < len(names) else f"output_{i}"): np.asarray(v) for i, v in enumerate(values)}


class Session(ABC):
    """A loaded artifact: named numpy inputs in, named numpy outputs out."""

    options: dict[str, Any] = {}  # what the benchmark records: threads, providers, delegates, ...

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None:
        """Release native resources (default: nothing to do)."""

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Runtime(ABC):
    """A backend that can execute artifacts of some formats."""

    name: str  # "onnxruntime"
    library: str  # distribution name, for the version
    measures_speed: bool = True  # False for a reference evaluator whose timings mean nothing

    @property
    def formats(self) -> frozenset[str]:
        """The formats whose catalogue entry lists this runtime (edgebench/catalogue.py)."""
        return formats_run_by(self.name)

    def unavailable_reason(self) -> str | None:
        """None when usable on this host, else why not, in one line."""
        return None

    def why_not(self, artifact: Artifact) -> str | None:
        """Why this runtime cannot check or time the artifact at all (no file, another format, unusable here)."""
        if not artifact.ok:
            return f"no artifact ({artifact.status})"
        if artifact.format not in self.formats:
            return f"{self.name} does not run format {artifact.format}"
        return self.unavailable_reason()

    def describe(self) -> dict[str, Any]:
        """The runtime's own options (delegates, compute units, ...), recorded with every result."""
        return {}

    def version(self) -> str:
        """The installed version of `library` (no import of the library itself)."""
        return package_version(self.library)

    @abstractmethod
    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session: ...
