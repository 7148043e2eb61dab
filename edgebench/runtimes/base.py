"""The runtime interface: one small class per backend; parity and benchmarks share its sessions."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np

from edgebench.records import Artifact, ModelRef


class NotSupported(Exception):
    """The artifact uses something this runtime cannot execute (an op, a dtype): parity is skipped, not failed."""


def resolve_threads(threads: int) -> int:
    """0 means every core of the host."""
    return threads if threads > 0 else (os.cpu_count() or 1)


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
    formats: frozenset[str]
    library: str  # distribution name, for the version
    measures_speed: bool = True  # False for a reference evaluator whose timings mean nothing

    def unavailable_reason(self) -> str | None:
        """None when usable on this host, else why not, in one line."""
        return None

    def describe(self) -> dict[str, Any]:
        """The runtime's own options (delegates, compute units, ...), recorded with every result."""
        return {}

    def version(self) -> str:
        """The installed version of `library` (importlib.metadata: no import of the library itself)."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(self.library)
        except PackageNotFoundError:
            return "not installed"

    @abstractmethod
    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session: ...
