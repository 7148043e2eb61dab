"""Which MLAS kernel ONNX Runtime's CPU QLinearConv runs on x86, and the weight form that chooses it.

ONNX Runtime 1.32 packs each QLinearConv's constant weights at session load for one of two kernels
(onnxruntime/core/providers/cpu/quantization/qlinearconv.cc, mlas/lib/convsym.cpp, mlas/lib/platform.cpp):

- `convsym`: MlasConvSym, an indirect-buffer convolution with the requantization fused in. Taken when the
  weights are int8 with every zero point 0, the activations uint8, group 1, and the input and output
  channels multiples of 4 (16 outputs or more). AVX2, AVX-VNNI and AVX-512 (VNNI) kernels; no AMX kernel.
- `qgemm`: im2col, then MLAS's quantized GEMM into int32, then a requantization pass: every other conv.
  Where the CPU has AMX-INT8 (and the kernel grants the tile state) MLAS runs its u8s8 GEMM on AMX.

A symmetric int8 weight lies in [-127, 127] (onnxruntime.quantization's symmetric range), so storing it
as w - 1 with zero point -1 dequantizes to the same values and moves its conv from `convsym` to `qgemm`
without changing one output bit. docs/converters.md has the per-shape times that decide `auto`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgebench.host import cpu_isa

CHOICES = ("auto", "convsym", "qgemm")
SHIFTED_ZERO_POINT = -1


def host_conv_kernel() -> str:
    """`qgemm` where this CPU has AMX-INT8 (MLAS's quantized GEMM then runs on AMX), else `convsym`."""
    return "qgemm" if {"amx_tile", "amx_int8"} <= set(cpu_isa()) else "convsym"


def resolve(choice: str) -> str:
    """The kernel a `conv_kernel` option asks for on this host (`auto` decided by the CPU's ISA)."""
    return host_conv_kernel() if choice == "auto" else choice


def conv_kernels(path: str | Path) -> Counter:
    """How many of a QDQ file's Conv nodes ONNX Runtime runs on each kernel: `convsym`, `qgemm`, `depthwise`
    (MLAS's depthwise kernels) or `float` (no 8-bit weight and activation: no QLinearConv), by qlinearconv.cc's
    rules for x86."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path), load_external_data=False).graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {t.name: t for t in graph.initializer}
    kernels = Counter()
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        weight_dq, activation = producers.get(node.input[1]), _activation_type(producers.get(node.input[0]), inits)
        if (weight_dq is None or weight_dq.op_type != "DequantizeLinear" or weight_dq.input[0] not in inits
                or activation not in (onnx.TensorProto.UINT8, onnx.TensorProto.INT8)):
            kernels["float"] += 1
            continue
        weight = inits[weight_dq.input[0]]
        zero = _zero_point(weight_dq, inits)
        out_channels, group_in = weight.dims[0], weight.dims[1]
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if group > 1 and group_in == 1 and out_channels == group:
            kernels["depthwise"] += 1
        elif (weight.data_type == onnx.TensorProto.INT8 and zero is not None and not numpy_helper.to_array(zero).any()
              and activation == onnx.TensorProto.UINT8 and group == 1 and group_in % 4 == 0
              and out_channels % 4 == 0 and out_channels >= 16):
            kernels["convsym"] += 1
        else:
            kernels["qgemm"] += 1
    return kernels


def shift_weight_zero_points(model) -> int:
    """Store every symmetric int8 Conv weight of a QDQ onnx.ModelProto as w - 1 with zero point -1 (in place):
    the same dequantized values, on the `qgemm` kernel. Weights holding -128, or with a non-zero zero point,
    are left as they are. Returns how many weights were rewritten."""
    from onnx import TensorProto, numpy_helper

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    inits = {t.name: t for t in graph.initializer}
    shifted, replaced = 0, set()
    for conv in (n for n in graph.node if n.op_type == "Conv"):
        dq = producers.get(conv.input[1])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in inits:
            continue
        weight_init, zero_init = inits[dq.input[0]], _zero_point(dq, inits)
        if weight_init.data_type != TensorProto.INT8 or zero_init is None or _consumers(graph, dq.input[0]) != 1:
            continue
        weight, zero = numpy_helper.to_array(weight_init), numpy_helper.to_array(zero_init)
        if zero.any() or weight.min() <= np.iinfo(np.int8).min:
            continue
        weight_init.CopyFrom(numpy_helper.from_array((weight.astype(np.int16) - 1).astype(np.int8), weight_init.name))
        name = f"{weight_init.name}_zero_point_shifted"
        graph.initializer.append(numpy_helper.from_array(np.full_like(zero, SHIFTED_ZERO_POINT), name))
        replaced.add(dq.input[2])
        dq.input[2] = name
        shifted += 1
    unused = replaced - {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name not in unused]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    return shifted


def _zero_point(dq, inits):
    """The zero-point initializer of a DequantizeLinear (None: absent, or not a constant)."""
    return inits.get(dq.input[2]) if len(dq.input) > 2 and dq.input[2] else None


def _activation_type(dq, inits) -> int | None:
    """The data type a conv's input is dequantized from (its zero point's type), None if it is not."""
    zero = _zero_point(dq, inits) if dq is not None and dq.op_type == "DequantizeLinear" else None
    return None if zero is None else zero.data_type


def _consumers(graph, name: str) -> int:
    return sum(name in n.input for n in graph.node)
