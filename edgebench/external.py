"""An artifact given as a file built elsewhere: its format from the catalogue (suffix, else sniffers), its inputs
and outputs checked against the model's spec before any value, as an Artifact record the pipeline's steps take
(`external_artifacts:` in the pipeline YAML, and `edgebench check`: checking.py)."""

from __future__ import annotations

from pathlib import Path

from edgebench.catalogue import formats
from edgebench.config import ExternalArtifactConfig
from edgebench.converters.base import Converter
from edgebench.converters.export import files_sha256
from edgebench.converters.registry import get_converter
from edgebench.errors import UserError, reason_of
from edgebench.models.io_check import expected_output_shape
from edgebench.records import EXPORT_FAILED, PASSED, Artifact, ModelRef, TensorSpec


def detect_format(path: Path) -> str:
    """The catalogued format whose suffix the name ends with, else the first whose sniffer says the content is its."""
    known = formats()
    by_suffix = [f for f, e in known.items() if path.name.endswith(e.suffixes)]
    if by_suffix:
        return by_suffix[0]
    by_content = [f for f, e in known.items() if e.sniffer and e.sniffer.load()(path)]
    if by_content:
        return by_content[0]
    raise UserError(f"{path}: not a file of any known format ({', '.join(known)}): "
                    f"no known suffix and no known content")


def _describe(t: TensorSpec) -> str:
    shape = "x".join("?" if d < 0 else str(d) for d in t.shape) if t.shape else "?"
    return f"'{t.name}' {shape} {t.dtype}" if t.name else f"{shape} {t.dtype}"


def _differs(got: TensorSpec, want: TensorSpec, shape: tuple[int, ...], converter: Converter) -> bool:
    """Name (when the format keeps names), rank and every fixed dimension (-1 is dynamic), dtype (a float tensor
    may be quantized in the file where the format's sessions take that: Converter.quantized_io)."""
    if converter.keeps_io_names and got.name != want.name:
        return True
    if got.shape and (len(got.shape) != len(shape) or any(g >= 0 and g != w for g, w in zip(got.shape, shape))):
        return True
    quantized = want.dtype.startswith("float") and got.dtype in converter.quantized_io
    return bool(got.shape) and got.dtype != want.dtype and not quantized


def check_io(path: Path, fmt: str, ref: ModelRef) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The file's input and output specs; the first difference from the model's is a UserError naming both."""
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
            if _differs(g, w, shape, converter):
                raise UserError(f"{path}: {kind} {_describe(g)} != {ref.name} {kind} "
                                f"{_describe(TensorSpec(w.name, shape, w.dtype))}")
    return (inputs, outputs) if converter.keeps_io_names else (ref.inputs, ref.outputs)


def external_artifact(path: str | Path, ref: ModelRef, precision: str = "fp32", fmt: str | None = None,
                      label: str | None = None) -> Artifact:
    """The file as a passed Artifact (format, io, size, sha256, op census); bad input is a UserError."""
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
