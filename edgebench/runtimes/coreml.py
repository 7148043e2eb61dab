"""Core ML through Apple's runtime (coremltools MLModel.predict): macOS only."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from edgebench.errors import UserError
from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, resolve_threads

COMPUTE_UNITS = ("CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE", "ALL")
_ARRAY_TYPES = {"FLOAT32": np.float32, "FLOAT16": np.float16, "DOUBLE": np.float64, "INT32": np.int32}


class CoreMLSession(Session):
    """MLModel.predict fed with each input in the dtype the model description declares."""

    def __init__(self, model, options: dict[str, Any]):
        desc = model.get_spec().description
        self.model = model
        self.inputs = [(i.name, _ARRAY_TYPES.get(_array_type(i), np.float32)) for i in desc.input]
        self.output_names = [o.name for o in desc.output]
        self.options = options

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=dtype) for name, dtype in self.inputs}
        out = self.model.predict(feed)
        return {name: np.asarray(out[name]) for name in self.output_names if name in out}


def _array_type(feature) -> str:
    from coremltools.proto import FeatureTypes_pb2

    return FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(feature.type.multiArrayType.dataType)


class CoreMLRuntime(Runtime):
    """`coreml`: the .mlpackage on Apple's runtime, compute units CPU_ONLY (default) or ALL."""

    name = "coreml"
    library = "coremltools"

    def __init__(self, compute_units: str = "CPU_ONLY"):
        if compute_units not in COMPUTE_UNITS:
            raise UserError(f"coreml: compute_units '{compute_units}' is not one of {', '.join(COMPUTE_UNITS)}")
        self.compute_units = compute_units

    def unavailable_reason(self) -> str | None:
        if sys.platform != "darwin":
            return "Core ML runtime needs macOS"
        try:
            import coremltools.libcoremlpython  # noqa: F401
        except ImportError as e:
            return f"coremltools has no native Core ML bindings here ({e})"
        return None

    def describe(self) -> dict[str, Any]:
        return {"compute_units": self.compute_units}

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        import coremltools as ct

        model = ct.models.MLModel(artifact.path, compute_units=ct.ComputeUnit[self.compute_units])
        # Core ML chooses its own thread count; the requested one is recorded, not applied.
        options = {"compute_units": self.compute_units, "threads_requested": resolve_threads(threads)}
        return CoreMLSession(model, options)
