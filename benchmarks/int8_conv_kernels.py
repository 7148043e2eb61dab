"""Time every distinct int8 conv of a model's 2D-lowered form alone: ONNX Runtime on each MLAS kernel, XNNPACK, the peak.

    .venv/bin/python benchmarks/int8_conv_kernels.py [--model resnet_mixed] [--rounds 9] [--threads 2] [--no-amx]

Where ONNX Runtime int8's distance to LiteRT int8 comes from (issue #27). One forward pass of the lowered
module finds each distinct conv (benchmarks/conv_kernels.py); each becomes, with random int8 weights:
- one ONNX Runtime `com.microsoft.QLinearConv` in NHWC with uint8 activations (what the NHWC transformer
  leaves of a QDQ conv), once with symmetric weights (MLAS's `convsym` kernel) and once with the same
  weights stored as w - 1 with zero point -1 (`qgemm`: im2col + MLAS's quantized GEMM, on AMX where the
  CPU has it; converters/onnx_conv_kernel.py);
- one LiteRT int8 CONV_2D in NHWC (XNNPACK's QS8 conv), as in the LiteRT int8 artifact.
All three are timed in this process, one call each per round, the order rotated. Prints ms per shape, its
% of the int8 GEMM peak measured in this process (benchmarks/peak.py's kernels), and the totals over one
forward pass's conv calls. `--no-amx` denies this process the AMX tile state (a seccomp filter on arch_prctl), so MLAS
and XNNPACK fall back to their AVX-512 VNNI kernels: what a VNNI host without AMX would see.
"""

from __future__ import annotations

import argparse
import ctypes
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.conv_kernels import distinct_convs, interleaved  # noqa: E402
from edgebench.converters.onnx_conv_kernel import SHIFTED_ZERO_POINT  # noqa: E402

ORT_KERNELS = ("convsym", "qgemm")


def deny_amx() -> None:
    """Make arch_prctl(ARCH_REQ_XCOMP_PERM) fail with EPERM in this process and its threads: no AMX tile state."""
    class Insn(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class Program(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(Insn))]

    load, jump_eq, ret = 0x20, 0x15, 0x06  # BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
    arch_prctl, req_xcomp_perm = 158, 0x1023  # x86-64 syscall number, ARCH_REQ_XCOMP_PERM
    insns = [Insn(load, 0, 0, 0), Insn(jump_eq, 0, 3, arch_prctl), Insn(load, 0, 0, 16),  # nr, then args[0]
             Insn(jump_eq, 0, 1, req_xcomp_perm), Insn(ret, 0, 0, 0x00050000 | 1),  # SECCOMP_RET_ERRNO | EPERM
             Insn(ret, 0, 0, 0x7FFF0000)]  # SECCOMP_RET_ALLOW
    program = Program(len(insns), (Insn * len(insns))(*insns))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(38, 1, 0, 0, 0) or libc.prctl(22, 2, ctypes.byref(program), 0, 0):  # NO_NEW_PRIVS, SECCOMP
        raise OSError(ctypes.get_errno(), "seccomp filter refused")


def ort_conv(shape, conv, kernel: str, threads: int):
    """One QLinearConv (channels last, uint8 in and out) whose weights take MLAS's `kernel`; returns one call."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    n, c, h, w = shape
    weight = rng.integers(-127, 128, (conv.out_channels, c // conv.groups, *conv.kernel_size), dtype=np.int8)
    zero = 0
    if kernel == "qgemm":  # the same dequantized weights, not symmetric any more
        weight, zero = (weight.astype(np.int16) + SHIFTED_ZERO_POINT).astype(np.int8), SHIFTED_ZERO_POINT
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"), numpy_helper.from_array(np.array(128, np.uint8), "xz"),
             numpy_helper.from_array(weight, "w"),
             numpy_helper.from_array(rng.uniform(1e-3, 2e-3, conv.out_channels).astype(np.float32), "ws"),
             numpy_helper.from_array(np.full(conv.out_channels, zero, np.int8), "wz"),
             numpy_helper.from_array(np.array(0.5, np.float32), "ys"), numpy_helper.from_array(np.array(128, np.uint8), "yz"),
             numpy_helper.from_array(rng.integers(-1000, 1000, conv.out_channels).astype(np.int32), "b")]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            domain="com.microsoft", channels_last=1, kernel_shape=list(conv.kernel_size),
                            strides=list(conv.stride), pads=[*conv.padding, *conv.padding], group=conv.groups)
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.UINT8, [n, h, w, c])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
                              ir_version=8)
    so = ort.SessionOptions()
    so.intra_op_num_threads, so.inter_op_num_threads, so.log_severity_level = threads, 1, 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    feed = {"x": rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)}
    return lambda: session.run(None, feed)


def litert_conv(shape, conv, threads: int):
    """One int8 CONV_2D (NHWC) in LiteRT's interpreter, XNNPACK delegate; returns one invoke."""
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.benchmarks.tflite_ops import conv2d_tflite

    n, c, h, w = shape
    interpreter = Interpreter(model_content=conv2d_tflite(n, (h, w), c, conv.out_channels, conv.kernel_size,
                                                          conv.stride[0], any(conv.padding)), num_threads=threads)
    interpreter.allocate_tensors()
    x = np.random.default_rng(0).integers(-128, 128, (n, h, w, c), dtype=np.int8)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    return interpreter.invoke


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_mixed")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-amx", action="store_true", help="deny this process AMX (VNNI kernels only)")
    opts = parser.parse_args()
    if opts.no_amx:
        deny_amx()  # before any library sets up its kernels
    import torch

    from edgebench.benchmarks.peak import measure
    from edgebench.models.source import build_module, example_input, resolve_model
    from edgebench.host import cpu_isa, cpu_model

    torch.set_num_threads(opts.threads)
    ref = resolve_model(opts.model)
    convs = distinct_convs(build_module(ref, lowered=True), example_input(ref))
    if not convs:
        print(f"{ref.name}: the lowered form has no 2D convs (`edgebench info` says what stayed 3D)", file=sys.stderr)
        return 2
    limit = measure(opts.threads)  # here, not from the host cache: this process may run without AMX
    peak = limit["peaks"].get("int8", {}).get("gmacs")
    print(f"{cpu_model()} ({' '.join(cpu_isa())}){', AMX denied' if opts.no_amx else ''}")
    print(f"{ref.name} 2d-lowered: {sum(n for *_, n in convs)} conv calls, {len(convs)} distinct; {opts.rounds} "
          f"interleaved rounds, {opts.threads} threads")
    print("int8 GEMM: " + ", ".join(f"{c['kernel']} {c.get('gmacs', 'failed')} GMAC/s"
                                    for c in limit["candidates"] if c["precision"] == "int8") + " (%peak: the best)")
    names = [f"ORT {k}" for k in ORT_KERNELS] + ["XNNPACK"]
    print(f"{'conv':30} {'runs':>4} {'GMAC':>5} " + " ".join(f"{n + ' ms':>12} {'%peak':>5}" for n in names))
    totals, total_macs = np.zeros(len(names)), 0
    for conv, shape, runs in convs:
        n, c, h, w = shape
        out = [(size + 2 * p - k) // s + 1 for size, p, k, s in zip((h, w), conv.padding, conv.kernel_size, conv.stride)]
        macs = n * out[0] * out[1] * conv.out_channels * c // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
        calls = [ort_conv(shape, conv, k, opts.threads) for k in ORT_KERNELS] + [litert_conv(shape, conv, opts.threads)]
        seconds = np.array(interleaved(calls, opts.rounds))
        totals += runs * seconds
        total_macs += runs * macs
        name = (f"{c}->{conv.out_channels} {conv.kernel_size[0]}x{conv.kernel_size[1]}/{conv.stride[0]} "
                f"on {n}x{h}x{w}")
        cells = " ".join(f"{t * 1e3:12.2f} {_pct(macs / t / 1e9, peak):>5}" for t in seconds)
        print(f"{name:30} {runs:4d} {macs / 1e9:5.2f} {cells}")
    cells = " ".join(f"{t * 1e3:12.1f} {_pct(total_macs / t / 1e9, peak):>5}" for t in totals)
    print(f"{'all conv calls of one pass':30} {'':4} {total_macs / 1e9:5.1f} {cells}")
    return 0


def _pct(gmacs: float, peak: float | None) -> str:
    return f"{100 * gmacs / peak:.0f}%" if peak else "-"


if __name__ == "__main__":
    sys.exit(main())
