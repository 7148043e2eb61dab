"""ONNX Runtime on the CPU execution provider."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.errors import UserError
from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, resolve_threads

_LEVELS = {"disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED",
           "layout": "ORT_ENABLE_LAYOUT", "all": "ORT_ENABLE_ALL"}
_NP_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


class OnnxRuntimeSession(Session):
    """An InferenceSession fed by input name; outputs keep the names stored in the .onnx file."""

    def __init__(self, session, options: dict[str, Any]):
        self.session = session
        self.inputs = [(i.name, _NP_TYPES.get(i.type, np.float32)) for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.options = options

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = {name: np.ascontiguousarray(inputs[name], dtype=dtype) for name, dtype in self.inputs}
        return dict(zip(self.output_names, self.session.run(self.output_names, feed)))

    def close(self) -> None:
        self.session = None


class OnnxRuntimeRuntime(Runtime):
    """`onnxruntime`: CPUExecutionProvider, intra-op threads, one graph optimization level."""

    name = "onnxruntime"
    library = "onnxruntime"

    def __init__(self, graph_optimization: str = "all"):
        if graph_optimization not in _LEVELS:
            raise UserError(f"onnxruntime: graph_optimization '{graph_optimization}' is not one of {', '.join(_LEVELS)}")
        self.graph_optimization = graph_optimization

    def unavailable_reason(self) -> str | None:
        try:
            import onnxruntime  # noqa: F401
        except ImportError as e:
            return f"onnxruntime cannot be imported ({e})"
        return None

    def describe(self) -> dict[str, Any]:
        return {"graph_optimization": self.graph_optimization}

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        import onnxruntime as ort

        threads = resolve_threads(threads)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, _LEVELS[self.graph_optimization])
        so.log_severity_level = 3  # errors only: warnings about unused initializers are noise here
        session = ort.InferenceSession(artifact.path, sess_options=so, providers=["CPUExecutionProvider"])
        options = {
            "threads": threads,
            "intra_op_num_threads": threads,
            "graph_optimization_level": _LEVELS[self.graph_optimization],
            "providers": session.get_providers(),
            "available_providers": ort.get_available_providers(),
        }
        return OnnxRuntimeSession(session, options)


def optimized_census(path: str | Path, threads: int = 1) -> dict[str, int]:
    """Op types of the graph ONNX Runtime actually runs (after its QDQ fusions and NHWC layout transformer)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort-optimized-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.log_severity_level = threads, 3
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        return dict(Counter(n.op_type for n in onnx.load(so.optimized_model_filepath, load_external_data=False).graph.node))
