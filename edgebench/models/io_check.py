"""Checks of a model's declared inputs and outputs: an input override's rank, and one real forward pass."""

from __future__ import annotations

from pathlib import Path

from edgebench.errors import UserError, reason_of
from edgebench.records import ModelRef, TensorSpec


def _dims(shape) -> str:
    return ",".join(str(d) for d in shape)


def check_input_shape(spec: TensorSpec, shape: tuple[int, ...], config_path: Path | str) -> None:
    """An --input-shape must have the declared input's rank and positive sizes."""
    if len(shape) != len(spec.shape):
        raise UserError(f"--input-shape {_dims(shape)}: {len(shape)} dimensions, but input '{spec.name}' of "
                        f"{config_path} has {len(spec.shape)} ({_dims(spec.shape)})")
    if any(d <= 0 for d in shape):
        raise UserError(f"--input-shape {_dims(shape)}: every dimension must be at least 1")


def expected_output_shape(ref: ModelRef, spec: TensorSpec) -> tuple[int, ...]:
    """The declared output shape; its batch size follows an input override's."""
    if ref.input_override and spec.shape:
        return (ref.input_override[0],) + tuple(spec.shape[1:])
    return tuple(spec.shape)


def check_outputs(ref: ModelRef, module, x) -> None:
    """Run the module once on the example input `x`; a failure or an undeclared output shape is a UserError."""
    import torch

    where = f"--input-shape {_dims(x.shape)}" if ref.input_override else f"{ref.config_path}: input {_dims(x.shape)}"
    try:
        with torch.no_grad():
            out = module(x)
    except Exception as e:  # noqa: BLE001 - any failure of the user's model on this input is bad input
        raise UserError(f"{where}: {ref.name} cannot run on it ({reason_of(e)})") from None
    outs = list(out.values()) if isinstance(out, dict) else list(out) if isinstance(out, (tuple, list)) else [out]
    check_output_shapes(ref, [tuple(getattr(value, "shape", ())) for value in outs])


def check_output_shapes(ref: ModelRef, shapes: list[tuple[int, ...]]) -> None:
    """The model's output shapes, in order, against the YAML's `outputs`."""
    if len(shapes) != len(ref.outputs):
        raise UserError(f"{ref.config_path}: field 'outputs': declares {len(ref.outputs)} output(s), "
                        f"the model returns {len(shapes)}")
    for i, (spec, got) in enumerate(zip(ref.outputs, shapes)):
        want = expected_output_shape(ref, spec)
        if tuple(got) != want:
            raise UserError(f"{ref.config_path}: field 'outputs.{i}.shape': declares {list(want)} for '{spec.name}', "
                            f"the model returns {list(got)}")
