"""An artifact given as a file (built elsewhere): its format from the converter registry, its inputs and
outputs checked against the model's spec before any value, then the same parity, localization and
benchmarks as an exported artifact (`edgebench check`, and `external_artifacts:` in the pipeline YAML)."""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgebench.config import ExternalArtifactConfig
from edgebench.errors import UserError, reason_of
from edgebench.records import (EXPORT_FAILED, PASSED, SKIPPED, Artifact, LatencyResult, ModelRef, ParityResult,
                               TensorSpec)


def _is_onnx(path: Path) -> bool:
    import onnx

    try:
        return path.is_file() and len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # noqa: BLE001 - not parseable as ONNX: another format
        return False


def _is_tflite(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(8)[4:8] == b"TFL3"  # the flatbuffer file identifier LiteRT's schema declares


# Content checks, for a file whose name does not end in a registered converter's suffix.
SNIFFERS: dict[str, Callable[[Path], bool]] = {
    "tflite": _is_tflite,
    "coreml": lambda p: p.is_dir() and (p / "Manifest.json").exists(),  # an .mlpackage folder
    "torchscript": lambda p: p.is_file() and zipfile.is_zipfile(p),  # torch.jit.save writes a zip archive
    "onnx": _is_onnx,
}


def detect_format(path: Path) -> str:
    """The registered format whose suffix the name ends with, else the first whose content check holds."""
    from edgebench.converters.registry import CONVERTERS

    by_suffix = [f for f, c in CONVERTERS.items() if path.name.endswith(c.suffix)]
    if by_suffix:
        return by_suffix[0]
    by_content = [f for f in CONVERTERS if f in SNIFFERS and SNIFFERS[f](path)]
    if by_content:
        return by_content[0]
    raise UserError(f"{path}: not a file of any known format ({', '.join(CONVERTERS)}): "
                    f"no known suffix and no known content")


def _describe(t: TensorSpec) -> str:
    shape = "x".join("?" if d < 0 else str(d) for d in t.shape) if t.shape else "?"
    return f"'{t.name}' {shape} {t.dtype}" if t.name else f"{shape} {t.dtype}"


def _differs(got: TensorSpec, want: TensorSpec, shape: tuple[int, ...], names: bool) -> bool:
    """Name (when the format keeps names), rank and every fixed dimension (-1 is dynamic), dtype."""
    if names and got.name != want.name:
        return True
    if got.shape and (len(got.shape) != len(shape) or any(g >= 0 and g != w for g, w in zip(got.shape, shape))):
        return True
    return bool(got.shape) and got.dtype != want.dtype


def check_io(path: Path, fmt: str, ref: ModelRef) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The file's input and output specs; the first difference from the model's is a UserError naming both."""
    from edgebench.converters.registry import get_converter
    from edgebench.models.io_check import expected_output_shape

    converter = get_converter(fmt)
    try:
        inputs, outputs = converter.io_specs(path)
    except Exception as e:  # noqa: BLE001 - an unreadable file is bad input
        raise UserError(f"{path}: cannot read it as {fmt} ({reason_of(e)})") from None
    for kind, got, want in (("input", inputs, ref.inputs), ("output", outputs, ref.outputs)):
        if len(got) != len(want):
            raise UserError(f"{path}: {len(got)} {kind}(s) ({', '.join(map(_describe, got))}) != {ref.name}'s "
                            f"{len(want)} ({', '.join(map(_describe, want))})")
        for g, w in zip(got, want):
            shape = expected_output_shape(ref, w) if kind == "output" else tuple(w.shape)
            if _differs(g, w, shape, converter.keeps_io_names):
                raise UserError(f"{path}: {kind} {_describe(g)} != {ref.name} {kind} "
                                f"{_describe(TensorSpec(w.name, shape, w.dtype))}")
    return (inputs, outputs) if converter.keeps_io_names else (ref.inputs, ref.outputs)


def external_artifact(path: str | Path, ref: ModelRef, precision: str = "fp32", fmt: str | None = None,
                      label: str | None = None) -> Artifact:
    """The file as a passed Artifact (format, io, size, sha256, op census); bad input is a UserError."""
    from edgebench.converters.export import files_sha256
    from edgebench.converters.registry import get_converter

    path = Path(path).resolve()
    if not path.exists():
        raise UserError(f"{path}: no such file or folder")
    fmt = fmt or detect_format(path)
    converter = get_converter(fmt)
    inputs, outputs = check_io(path, fmt, ref)
    files = converter.files(path)
    return Artifact(model=label or ref.name, format=fmt, precision=precision, status=PASSED, path=str(path),
                    size_bytes=sum(p.stat().st_size for p in files), sha256=files_sha256(files, path.parent),
                    versions=converter.versions(), inputs=inputs, outputs=outputs, op_census=converter.op_census(path),
                    options={"external": str(path)})


def configured_external(ref: ModelRef, entry: ExternalArtifactConfig) -> Artifact:
    """A pipeline YAML entry as an Artifact named `<model>@<name>`; a bad file becomes an export_failed record
    with the one-line reason, so the run goes on."""
    label = f"{ref.name}@{entry.name or Path(entry.path).name}"
    try:
        return external_artifact(entry.path, ref, entry.precision, entry.format, label)
    except UserError as e:
        return Artifact(model=label, format=entry.format or Path(entry.path).suffix.lstrip(".") or "unknown",
                        precision=entry.precision, status=EXPORT_FAILED, reason=f"external artifact: {e}",
                        options={"external": entry.path})


@dataclass
class CheckOutcome:
    """What `edgebench check` found: the artifact, its rows, the per-layer tables and the exit code."""

    artifact: Artifact
    parity: list[ParityResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    localizations: list = field(default_factory=list)  # parity.localize.Localization
    report_html: str = ""

    @property
    def exit_code(self) -> int:
        """0: every row that ran passed and one did; 1: a check failed or nothing could run it."""
        ran = [r for r in [*self.parity, *self.latency] if r.status != SKIPPED]
        return 0 if ran and any(r.status == PASSED for r in self.parity) and all(r.status == PASSED for r in ran) else 1


def check_file(path: str | Path, model: str, settings, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None, precision: str = "fp32", fmt: str | None = None,
               bench: bool = False, localize_all: bool = False) -> CheckOutcome:
    """Spec check first (a UserError before any value), then parity on every configured runtime that runs the
    format (failing rows localized per `localize:`), every row localized with `localize_all`, latency with
    `bench`, and the run's reports."""
    from edgebench import pipeline
    from edgebench.models.inputs import load_inputs
    from edgebench.models.source import resolve_model
    from edgebench.parity.localize import Localization, attach_localization

    artifact = external_artifact(path, resolve_model(model, weights, input_shape), precision, fmt)
    runtimes = pipeline.parity_runtimes(artifact.format, settings.config)
    if not runtimes:
        raise UserError(f"{path}: no configured runtime runs {artifact.format} (configured: "
                        f"{', '.join(settings.config.runtimes)})")
    pm = pipeline.prepare_model(model, settings, weights, input_shape)
    outcome = CheckOutcome(artifact, parity=[pipeline.parity_one(pm, artifact, rt, settings) for rt in runtimes])
    json_path = pipeline.localization_path(settings, artifact)
    if localize_all:
        inputs = load_inputs(Path(pm.inputs_path))
        for row in outcome.parity:
            if row.status != SKIPPED and not row.localization_path and row.max_abs_err is not None:
                attach_localization(row, artifact, pm.ref, inputs, settings.config.localize, json_path)
    if json_path.exists():
        outcome.localizations.append(Localization.load(json_path))
    if bench:
        measured = [pipeline.bench_one(pm, job, settings) for job in pipeline.bench_plan([artifact], pm, settings.config)]
        outcome.latency = [m.latency for m in measured]
    results = pipeline.ModelResults(pm.ref, artifacts=[artifact], parity=outcome.parity, latency=outcome.latency)
    outcome.report_html = str(pipeline.finish_run(settings, [results]).report_html)
    return outcome
