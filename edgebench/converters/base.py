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


MIXED_OPTIONS = ("float_layers", "keep_in")  # options every converter takes (refusal() says which can use them)


def module_paths(model: nn.Module, layers) -> list[str]:
    """`layers` (float_layers), each checked to be a module path of `model`; a ValueError names the unknown ones."""
    known = dict(model.named_modules())
    unknown = [name for name in layers if name not in known]
    if unknown:
        raise ValueError(f"float_layers: no module {', '.join(unknown)} in the model")
    return list(layers)


def outside_layers(layers):
    """A PT2E annotation filter: True for an FX node traced outside every module named in `layers` (by the module
    paths of its nn_module_stack), so the quantizer leaves those layers' ops float."""
    layers = set(layers)

    def outside(node) -> bool:
        return not any(path in layers for path, _ in node.meta.get("nn_module_stack", {}).values())

    return outside


class Converter(ABC):
    """Exports the export-friendly module to one format and reads facts back from the saved file.

    Its precisions, file suffixes and export form are its format's catalogue entry (edgebench/catalogue.py).
    """

    format: str  # "onnx"
    library: str  # distribution whose version keys the cache: "onnx", "coremltools", ...
    keeps_io_names: bool = True  # False: the file has no tensor names (TorchScript); the ref's specs are used
    # 8-bit integer types a float input/output may have in the file (TFLite folds the first quantize into the
    # signature); its sessions quantize and dequantize at the tensor's own scale and zero point
    quantized_io: frozenset[str] = frozenset()
    calibrated: frozenset[str] = frozenset()  # precisions whose export needs calibration clips
    form: str | None = None  # the export form instead of the catalogue's (benchmarks/lowering_compare.py sets it)
    calibration_methods: frozenset[str] = frozenset()  # calibration.method values the toolchain offers
    refusals: dict[str, str] = {}  # precision -> one line why this converter cannot produce it
    # float_layers: reduced precisions whose files can keep named layers in higher precision, and what those
    # layers can compute in (`keep_in`), each through the toolchain's own per-layer mechanism (docs/repair.md).
    mixable: frozenset[str] = frozenset()
    keep_in: frozenset[str] = frozenset()

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
        if precision not in self.precisions:
            why = self.refusals.get(precision) or f"supported: {', '.join(sorted(self.precisions))}"
            return f"{self.format} {precision}: {why}"
        return self.mix_refusal(precision, options["keep_in"]) if options.get("float_layers") else None

    def mix_refusal(self, precision: str, keep_in: str) -> str | None:
        """One line why a `precision` file cannot keep layers in `keep_in` here (None: it can)."""
        if precision not in self.mixable:
            offered = f"only {', '.join(sorted(self.mixable))} files do" if self.mixable else "no per-layer mechanism wired up"
            return f"{self.format} {precision}: cannot keep layers in higher precision ({offered})"
        if keep_in not in self.keep_in:
            return f"{self.format} {precision}: cannot keep layers in {keep_in} (offered: {', '.join(sorted(self.keep_in))})"
        return None

    def default_options(self) -> dict[str, Any]:
        return {}

    def merge_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The defaults updated by `options`; an option the converter does not know is a UserError.

        `float_layers` (layer names) and `keep_in` are every converter's: they appear in the result only when
        float_layers names a layer, so a plain file's options (and cache key) stay as they were.
        """
        options = dict(options or {})
        layers = options.pop("float_layers", None) or []
        keep_in = options.pop("keep_in", "fp32")
        defaults = self.default_options()
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            known = ", ".join(sorted(defaults)) or "none"
            raise UserError(f"{self.format}: unknown converter option(s) {', '.join(unknown)} "
                            f"(known: {known}; every format's: {', '.join(MIXED_OPTIONS)})")
        if isinstance(layers, str) or not all(isinstance(n, str) and n for n in layers):
            raise UserError(f"{self.format}: option float_layers must be a list of layer names, not {layers!r}")
        merged = {**defaults, **options}
        if layers:
            merged.update(float_layers=sorted(set(layers)), keep_in=keep_in)
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
