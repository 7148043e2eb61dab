"""Square matrix multiplies through each runtime's own kernels: the candidates for this host's peak.

Each candidate builds one (M x K) @ (K x N) product the way its runtime would run a model's layer
(torch: oneDNN/MKL; ONNX Runtime: MLAS, a MatMul or MatMulInteger with a constant weight it prepacks;
LiteRT: one FULLY_CONNECTED op that XNNPACK takes) and returns a callable doing one product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgebench.benchmarks.tflite_ops import fully_connected_tflite

SIZE = 2048  # M = N = K: large enough for every kernel to reach its steady rate, small enough for ~0.1 s per product


@dataclass(frozen=True)
class GemmKernel:
    """One way to multiply matrices: its precision, a name saying which library and kernel, the ISA it needs."""

    precision: str  # fp32 | bf16 | fp16 | int8
    name: str
    build: Callable[[int, int], Callable[[], object]]  # (size, threads) -> one product per call
    needs: tuple[str, ...] = ()  # any one of these ISA flags (empty: every host)


def _torch(dtype_name: str) -> Callable[[int, int], Callable[[], object]]:
    def build(size: int, threads: int):
        import torch

        torch.set_num_threads(threads)
        dtype = getattr(torch, dtype_name)
        gen = torch.Generator().manual_seed(0)
        a = torch.randn(size, size, generator=gen).to(dtype)
        b = torch.randn(size, size, generator=gen).to(dtype)
        return lambda: torch.matmul(a, b)

    return build


def _ort_session(model, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])


def _ort_matmul(size: int, threads: int):
    """fp32 MatMul with a constant weight (MLAS SGEMM)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((size, size), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "w"], ["y"])], "gemm",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], [w])
    session = _ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), threads)
    feed = {"a": rng.standard_normal((size, size), dtype=np.float32)}
    return lambda: session.run(None, feed)


def _ort_matmul_integer(size: int, threads: int):
    """uint8 x int8 -> int32 MatMulInteger with a constant weight (MLAS QGEMM: the kernel QLinearConv uses)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.integers(-127, 128, (size, size), dtype=np.int8), "w"),
             numpy_helper.from_array(np.array(128, dtype=np.uint8), "a_zero")]
    node = helper.make_node("MatMulInteger", ["a", "w", "a_zero"], ["y"])
    graph = helper.make_graph([node], "qgemm", [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.INT32, [size, size])], inits)
    session = _ort_session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), threads)
    feed = {"a": rng.integers(0, 256, (size, size), dtype=np.uint8)}
    return lambda: session.run(None, feed)


def _litert(quantized: bool) -> Callable[[int, int], Callable[[], object]]:
    def build(size: int, threads: int):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_content=fully_connected_tflite(size, quantized), num_threads=threads)
        interpreter.allocate_tensors()
        index = interpreter.get_input_details()[0]["index"]
        rng = np.random.default_rng(0)
        x = rng.integers(-128, 128, (size, size), dtype=np.int8) if quantized else rng.standard_normal(
            (size, size), dtype=np.float32)

        def one():
            interpreter.set_tensor(index, x)
            interpreter.invoke()

        return one

    return build


KERNELS = (
    GemmKernel("fp32", "torch.matmul fp32 (oneDNN/MKL)", _torch("float32")),
    GemmKernel("fp32", "onnxruntime MatMul fp32 (MLAS)", _ort_matmul),
    GemmKernel("fp32", "litert FULLY_CONNECTED fp32 (XNNPACK)", _litert(False)),
    GemmKernel("bf16", "torch.matmul bf16 (oneDNN)", _torch("bfloat16"), ("avx512_bf16", "amx_bf16", "bf16")),
    GemmKernel("fp16", "torch.matmul fp16 (oneDNN)", _torch("float16"), ("avx512_fp16", "amx_fp16")),
    GemmKernel("int8", "onnxruntime MatMulInteger u8s8 (MLAS)", _ort_matmul_integer),
    GemmKernel("int8", "litert FULLY_CONNECTED int8 (XNNPACK)", _litert(True)),
)
