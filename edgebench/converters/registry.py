"""Converter registry: adding a format is one module and one line here."""

from __future__ import annotations

from edgebench.converters.base import Converter
from edgebench.converters.coreml import CoreMLConverter
from edgebench.converters.executorch import ExecuTorchConverter
from edgebench.converters.onnx import OnnxConverter
from edgebench.converters.tflite import TFLiteConverter
from edgebench.converters.torchscript import TorchScriptConverter
from edgebench.errors import UserError

CONVERTERS: dict[str, Converter] = {
    "torchscript": TorchScriptConverter(),
    "onnx": OnnxConverter(),
    "coreml": CoreMLConverter(),
    "tflite": TFLiteConverter(),
    "executorch": ExecuTorchConverter(),
}


def get_converter(fmt: str) -> Converter:
    try:
        return CONVERTERS[fmt]
    except KeyError:
        raise UserError(f"unknown format '{fmt}'; known formats: {', '.join(CONVERTERS)}") from None
