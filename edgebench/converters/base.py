"""The converter interface: one small class per format, found through the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from torch import nn

from edgebench.records import ModelRef, TensorSpec


def package_version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


class Converter(ABC):
    """Exports the export-friendly module to one format and reads facts back from the saved file."""

    format: str  # "onnx"
    precisions: frozenset[str] = frozenset({"fp32"})
    suffix: str  # ".onnx", ".mlpackage" (a folder), ...
    library: str  # distribution whose version keys the cache: "onnx", "coremltools", ...

    def default_options(self) -> dict[str, Any]:
        return {}

    def versions(self) -> dict[str, str]:
        return {"torch": package_version("torch"), self.library: package_version(self.library)}

    @abstractmethod
    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path) -> None:
        """Write the artifact to `out` (a file, or a folder for multi-file formats)."""

    @abstractmethod
    def op_census(self, out: Path) -> dict[str, int]:
        """Op type -> count, read back from the saved artifact."""

    @abstractmethod
    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Input and output specs, read back from the saved artifact."""
