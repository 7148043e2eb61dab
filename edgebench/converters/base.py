"""The converter interface: one small class per format, found through the registry."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgebench.catalogue import LOWERED, FormatEntry, format_entry
from edgebench.errors import UserError
from edgebench.packages import package_version
from edgebench.records import ModelRef, TensorSpec

if TYPE_CHECKING:
    from torch import nn


class Converter(ABC):
    """Exports the export-friendly module to one format and reads facts back from the saved file.

    Its precisions, file suffixes and export form are its format's catalogue entry (edgebench/catalogue.py).
    """

    format: str  # "onnx"
    library: str  # distribution whose version keys the cache: "onnx", "coremltools", ...
    keeps_io_names: bool = True  # False: the file has no tensor names (TorchScript); the ref's specs are used
    calibrated: frozenset[str] = frozenset()  # precisions whose export needs calibration clips
    form: str | None = None  # the export form instead of the catalogue's (benchmarks/lowering_compare.py sets it)
    calibration_methods: frozenset[str] = frozenset()  # calibration.method values the toolchain offers
    refusals: dict[str, str] = {}  # precision -> one line why this converter cannot produce it

    @property
    def entry(self) -> FormatEntry:
        return format_entry(self.format)

    @property
    def precisions(self) -> frozenset[str]:
        return frozenset(self.entry.precisions)

    @property
    def suffix(self) -> str:
        """What the exported file's (or folder's) name ends with: ".onnx", ".mlpackage", ..."""
        return self.entry.suffixes[0]

    @property
    def other_suffixes(self) -> tuple[str, ...]:
        """Suffixes an option can give the file instead (TorchScript lite: .ptl)."""
        return self.entry.suffixes[1:]

    @property
    def lowered_form(self) -> bool:
        """Export the 2D-lowered module (models/lowering.py) when the model config allows it."""
        return (self.form or self.entry.export_form) == LOWERED

    def refusal(self, precision: str, options: dict[str, Any]) -> str | None:
        """One line why this converter cannot produce `precision` with `options` (None: it can)."""
        if precision in self.precisions:
            return None
        why = self.refusals.get(precision) or f"supported: {', '.join(sorted(self.precisions))}"
        return f"{self.format} {precision}: {why}"

    def default_options(self) -> dict[str, Any]:
        return {}

    def merge_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The defaults updated by `options`; an option the converter does not know is a UserError."""
        defaults = self.default_options()
        unknown = sorted(set(options or {}) - set(defaults))
        if unknown:
            known = ", ".join(sorted(defaults)) or "none"
            raise UserError(f"{self.format}: unknown converter option(s) {', '.join(unknown)} (known: {known})")
        merged = {**defaults, **(options or {})}
        self.check_options(merged)
        return merged

    def check_options(self, options: dict[str, Any]) -> None:
        """Raise a UserError for a bad option value, in the parent, before any export (default: none)."""

    def filename(self, options: dict[str, Any]) -> str:
        """Name of the artifact inside its cache folder (an option may change the suffix)."""
        return "model" + self.suffix

    def files(self, out: Path) -> list[Path]:
        """Every file the artifact consists of (a folder's whole tree; ONNX adds its external data)."""
        out = Path(out)
        if out.is_dir():
            return sorted(p for p in out.rglob("*") if p.is_file())
        return [out]

    def versions(self) -> dict[str, str]:
        return {"torch": package_version("torch"), self.library: package_version(self.library)}

    @abstractmethod
    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path,
               calibration: list[dict[str, np.ndarray]] | None = None) -> None:
        """Write the artifact to `out` (a file, or a folder for multi-file formats).

        `calibration` (one dict of model inputs per clip) is given for the precisions in `calibrated`.
        """

    @abstractmethod
    def op_census(self, out: Path) -> dict[str, int]:
        """Op type -> count, read back from the saved artifact."""

    def compute_dtypes(self, out: Path) -> dict[str, int]:
        """Compute dtype -> number of conv/matmul-class ops running in it, read back from the saved artifact.

        {"int8": 20, "float32": 1}: a file with one quantized layer cannot pass as int8. Empty: not read.
        """
        return {}

    @abstractmethod
    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Input and output specs, read back from the saved artifact."""
