"""Per-format exposure of an artifact's intermediate tensors: format -> taps(path, one input) -> [ArtifactTap]."""

from __future__ import annotations

from typing import Callable

import numpy as np

from edgebench.errors import UserError
from edgebench.parity.taps.base import ArtifactTap
from edgebench.parity.taps.coreml import coreml_taps
from edgebench.parity.taps.executorch import executorch_taps
from edgebench.parity.taps.onnx import onnx_taps
from edgebench.parity.taps.tflite import tflite_taps
from edgebench.parity.taps.torchscript import torchscript_taps

Tapper = Callable[..., list[ArtifactTap]]
TAPPERS: dict[str, Tapper] = {
    "onnx": onnx_taps,
    "tflite": tflite_taps,
    "coreml": coreml_taps,
    "torchscript": torchscript_taps,
    "executorch": executorch_taps,
}


def artifact_taps(fmt: str, path: str, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """The intermediate tensors of one artifact for one input (a UserError for a format without taps)."""
    if fmt not in TAPPERS:
        raise UserError(f"localization: no way to expose {fmt} tensors; supported: {', '.join(TAPPERS)}")
    return TAPPERS[fmt](path, inputs)
