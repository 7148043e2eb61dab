"""One-op TFLite flatbuffers built from the schema (no converter): the kernels XNNPACK runs, timed alone."""

from __future__ import annotations

from typing import Sequence

import flatbuffers
import numpy as np


def fully_connected_tflite(size: int, quantized: bool) -> bytes:
    """A TFLite flatbuffer of one FULLY_CONNECTED op (size x size input and weight), int8 or float32."""
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(0)
    if quantized:  # symmetric int8 weights and bias in int32 at scale_in * scale_w, as XNNPACK's QS8 kernels want
        weight = rng.integers(-127, 128, (size, size), dtype=np.int8)
        bias = np.zeros(size, dtype=np.int32)
    else:
        weight = rng.standard_normal((size, size), dtype=np.float32)
        bias = np.zeros(size, dtype=np.float32)
    scales = (0.05, [0.01], [0.05 * 0.01], 1.0) if quantized else None
    return _one_op(s.BuiltinOperator.FULLY_CONNECTED, 4 if quantized else 1,  # 4: the version with int8 inputs
                   s.BuiltinOptions.FullyConnectedOptions, s.FullyConnectedOptionsT(),
                   (size, size), weight, bias, (size, size), scales)


def conv2d_tflite(batch: int, size: tuple[int, int], cin: int, cout: int, kernel: tuple[int, int], stride: int,
                  same_padding: bool) -> bytes:
    """A TFLite flatbuffer of one int8 CONV_2D (NHWC, per-output-channel symmetric int8 weights, int32 bias)."""
    from ai_edge_litert import schema_py_generated as s

    rng = np.random.default_rng(0)
    options = s.Conv2DOptionsT()
    options.padding = s.Padding.SAME if same_padding else s.Padding.VALID
    options.strideH = options.strideW = stride
    options.dilationHFactor = options.dilationWFactor = 1
    out = tuple(-(-n // stride) if same_padding else (n - k) // stride + 1 for n, k in zip(size, kernel))
    weight_scales = rng.uniform(1e-3, 2e-3, cout).astype(np.float32)
    return _one_op(s.BuiltinOperator.CONV_2D, 3, s.BuiltinOptions.Conv2DOptions, options,  # 3: per-channel int8
                   (batch, *size, cin), rng.integers(-127, 128, (cout, *kernel, cin), dtype=np.int8),
                   rng.integers(-1000, 1000, cout).astype(np.int32), (batch, *out, cout),
                   (0.02, list(weight_scales), list(weight_scales * 0.02), 0.5))


def _one_op(builtin: int, version: int, options_type: int, options, x_shape: Sequence[int], weight: np.ndarray,
            bias: np.ndarray, y_shape: Sequence[int], scales: tuple | None) -> bytes:
    """The flatbuffer of y = op(x, weight, bias); `scales` (x, weight per channel, bias, y) makes it int8."""
    from ai_edge_litert import schema_py_generated as s

    def quant(scale):
        if scales is None:
            return None
        q = s.QuantizationParametersT()
        q.scale = list(scale) if isinstance(scale, list) else [scale]
        q.zeroPoint, q.quantizedDimension = [0] * len(q.scale), 0
        return q

    def tensor(name: str, shape, ttype: int, buffer: int, scale):
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer, t.quantization = name, list(shape), ttype, buffer, quant(scale)
        return t

    def buffer(data: bytes | None = None):
        b = s.BufferT()
        b.data = None if data is None else np.frombuffer(data, dtype=np.uint8)
        return b

    dtype = s.TensorType.INT8 if scales else s.TensorType.FLOAT32
    x_scale, w_scale, b_scale, y_scale = scales or (None,) * 4
    tensors = [tensor("x", x_shape, dtype, 0, x_scale), tensor("w", weight.shape, dtype, 1, w_scale),
               tensor("b", bias.shape, s.TensorType.INT32 if scales else dtype, 2, b_scale),
               tensor("y", y_shape, dtype, 0, y_scale)]
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1, 2], [3]
    op.builtinOptionsType, op.builtinOptions = options_type, options
    graph = s.SubGraphT()
    graph.tensors, graph.inputs, graph.outputs, graph.operators, graph.name = tensors, [0], [3], [op], "one-op"
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = builtin
    code.version = version
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.description = 3, [code], [graph], "edgebench one-op"
    model.buffers = [buffer(), buffer(weight.tobytes()), buffer(bias.tobytes())]
    builder = flatbuffers.Builder(2 * weight.nbytes + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
