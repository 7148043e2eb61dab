"""LiteRT (ai-edge-litert) Interpreter: the .tflite file on the CPU, XNNPACK delegate on by default."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, name_outputs, resolve_threads
from edgebench.runtimes.delegation import delegated_ops


class LiteRTSession(Session):
    """Tensors set by position (TFLite keeps no model names: `serving_default_args_0`), outputs named after the model."""

    def __init__(self, interpreter, ref: ModelRef, options: dict[str, Any]):
        self.interpreter = interpreter
        self.input_details = interpreter.get_input_details()
        self.output_details = interpreter.get_output_details()
        self.input_names = [t.name for t in ref.inputs]
        self.output_names = [t.name for t in ref.outputs]
        self.options = options

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, detail in zip(self.input_names, self.input_details):
            self.interpreter.set_tensor(detail["index"], fed(inputs[name], detail))
        self.interpreter.invoke()
        return name_outputs([_real(self.interpreter.get_tensor(d["index"]), d) for d in self.output_details],
                            self.output_names)

    def close(self) -> None:
        self.interpreter = None


def fed(value: np.ndarray, detail: dict) -> np.ndarray:
    """A model input as the tensor takes it: float values into a quantized tensor (an int8 file whose first op
    quantizes its input) are quantized with its scale and zero point, as TFLite's QUANTIZE op does; others are cast.

    A plain cast turned every [0, 1] pixel into 0 or 1 before its (x - zero point) * scale: one constant clip,
    whatever the video (issue 23's int8 collapse, docs/converters.md).
    """
    dtype = np.dtype(detail["dtype"])
    scale, zero_point = detail.get("quantization", (0.0, 0))
    value = np.asarray(value)
    if dtype.kind in "iu" and value.dtype.kind == "f" and scale:
        scaled = value.astype(np.float32) / np.float32(scale)
        rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)  # half away from zero, as TfLiteRound
        info = np.iinfo(dtype)
        return np.ascontiguousarray(np.clip(rounded + zero_point, info.min, info.max).astype(dtype))
    return np.ascontiguousarray(value, dtype=dtype)


def _real(value: np.ndarray, detail: dict) -> np.ndarray:
    """A quantized output (an int8 file's logits) read as float32 with its own scale and zero point, as
    TFLite's API documents (`quantization` of the output details); float outputs are returned as they are."""
    scale, zero_point = detail.get("quantization", (0.0, 0))
    if value.dtype.kind in "iu" and scale:
        return ((value.astype(np.float32) - zero_point) * np.float32(scale)).astype(np.float32)
    return value.copy()


class LiteRTRuntime(Runtime):
    """`litert`: ai_edge_litert.interpreter.Interpreter with num_threads; xnnpack=False uses
    OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES (the builtin kernels only)."""

    name = "litert"
    library = "ai-edge-litert"

    def __init__(self, xnnpack: bool = True):
        self.xnnpack = bool(xnnpack)

    def unavailable_reason(self) -> str | None:
        try:
            import ai_edge_litert.interpreter  # noqa: F401
        except ImportError as e:
            return f"ai-edge-litert cannot be imported ({e})"
        return None

    def describe(self) -> dict[str, Any]:
        return {"xnnpack": self.xnnpack}

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType


        threads = resolve_threads(threads)
        resolver = OpResolverType.AUTO if self.xnnpack else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        interpreter = Interpreter(model_path=artifact.path, num_threads=threads, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        ops = [o["op_name"] for o in interpreter._get_ops_details()]  # noqa: SLF001 - the only way to see delegation
        delegation = delegated_ops(interpreter)
        partitions = ops.count("DELEGATE")
        options = {
            "threads": threads,
            "op_resolver": resolver.name,
            "xnnpack": self.xnnpack,
            "delegate_partitions": partitions,  # XNNPACK subgraphs; ops it does not take (CONV_3D) stay on builtin kernels
            "not_delegated": delegation["not_delegated"],  # op -> count left to builtin kernels
            "delegated_flops_pct": delegation["delegated_flops_pct"],  # the FLOPs XNNPACK runs, in %
            "tensor_names": [d["name"] for d in interpreter.get_input_details() + interpreter.get_output_details()],
        }
        return LiteRTSession(interpreter, ref, options)
