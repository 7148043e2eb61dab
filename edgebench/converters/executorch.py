"""ExecuTorch: torch.export -> to_edge_transform_and_lower with the XNNPACK partitioner -> a .pte program.

fp32, and int8 through PT2E with the XNNPACK quantizer (per-channel symmetric int8 weights, static
int8 activations calibrated on the calibration clips). The XNNPACK partitioner skips Conv3d, and the
portable convolution kernel takes 3-D or 4-D input only (a 3D conv left to it fails at run time),
so the export uses the 2D-lowered module. Everything else is read back from the saved .pte: the
program's instruction chain (delegate calls, kernel calls left to the portable kernels) and each
XNNPACK payload's node list (decoded with the flatc and schema shipped in the package).
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgebench.converters.base import Converter, package_version
from edgebench.errors import UserError
from edgebench.records import ModelRef, TensorSpec
from edgebench.runtimes.executorch import XNNPACK_BACKEND

# XNNPACK nodes and portable kernels that do conv/matmul-class compute (what compute_dtypes counts).
_XNN_COMPUTE = ("XNNConv2d", "XNNDepthwiseConv2d", "XNNConvTranspose2d", "XNNFullyConnected", "XNNBatchMatrixMultiply")
_KERNEL_COMPUTE = ("aten::convolution", "aten::linear", "aten::addmm", "aten::mm", "aten::bmm")
_XNN_DTYPES = {"xnn_datatype_fp32": "float32", "xnn_datatype_fp16": "float16", "xnn_datatype_bf16": "bfloat16",
               "xnn_datatype_qint8": "int8", "xnn_datatype_qcint8": "int8", "xnn_datatype_qdint8": "int8",
               "xnn_datatype_quint8": "uint8", "xnn_datatype_qcint4": "int4", "xnn_datatype_qbint4": "int4"}
_NON_FINITE = {"inf": "Infinity", "nan": "NaN"}


class ExecuTorchConverter(Converter):
    """No options of its own; int8 calibrates on export's `calibration` clips with options["calibration_method"]."""

    format = "executorch"
    precisions = frozenset({"fp32", "int8"})
    calibrated = frozenset({"int8"})
    calibration_methods = frozenset({"minmax"})  # activation observer: MinMaxObserver
    refusals = {
        "fp16": "not wired up (XNNPACK runs fp16 only where the CPU has fp16 arithmetic)",
        "w8": "not wired up (the XNNPACK quantizer's weight-only int8 path is dynamic activation quantization)",
        "w8a16": "the XNNPACK quantizer has no 16-bit activation configuration",
    }
    suffix = ".pte"
    library = "executorch"
    keeps_io_names = False  # a .pte method has positional inputs and outputs, no names
    lowered_form = True  # XNNPACK takes no Conv3d, the portable kernel no 5-D convolution

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "torchao": package_version("torchao")}

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path,
               calibration: list[dict[str, np.ndarray]] | None = None) -> None:
        import torch
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        from edgebench.models.source import example_input

        example = (example_input(ref),)
        if len(ref.inputs) != 1:
            raise NotImplementedError("executorch: only single-input models are wired up (example_input gives one tensor)")
        with torch.no_grad():
            if precision == "int8":
                model = _quantize(model, example, ref, calibration, options.get("calibration_method", "minmax"))
            program = torch.export.export(model, example)
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            _refuse_portable_3d(edge.exported_program().graph)
            Path(out).write_bytes(edge.to_executorch().buffer)

    def op_census(self, out: Path) -> dict[str, int]:
        """`delegate_calls`, `xnnpack_delegated_nodes`, `xnnpack:<node>` per XNNPACK node type, and the
        operator name of every kernel call left to the portable kernels."""
        plan, payloads = _read_plan(out)
        census: Counter = Counter()
        for kind, what in _instructions(plan):
            if kind == "delegate":
                census["delegate_calls"] += 1
            else:
                census[what] += 1
        for graph in _xnnpack_graphs(payloads):
            census["xnnpack_delegated_nodes"] += len(graph["xnodes"])
            census.update("xnnpack:" + node["xnode_union_type"] for node in graph["xnodes"])
        return dict(census)

    def compute_dtypes(self, out: Path) -> dict[str, int]:
        """Conv/matmul ops per compute dtype: XNNPACK nodes by their filter value's datatype, portable
        kernels by their second operand's scalar type (a conv's or linear's weight)."""
        plan, payloads = _read_plan(out)
        dtypes: Counter = Counter()
        for graph in _xnnpack_graphs(payloads):
            values = {}
            for v in graph["xvalues"]:
                tensor = v["xvalue_union"].get("tensor_value", v["xvalue_union"])
                values[tensor["id_out"]] = tensor["datatype"]
            for node in graph["xnodes"]:
                if node["xnode_union_type"] in _XNN_COMPUTE:
                    args = node["xnode_union"]
                    weight = args.get("filter_id", args.get("input2_id"))
                    dtypes[_XNN_DTYPES.get(values.get(weight), str(values.get(weight)))] += 1
        for kind, what, args in _instructions(plan, with_args=True):
            if kind == "kernel" and what in _KERNEL_COMPUTE:
                dtypes[_tensor_dtype(plan.values[args[1]].val)] += 1
        return dict(dtypes)

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Shapes and dtypes of the `forward` method's inputs and outputs (names are positional: input_0, ...)."""
        plan, _ = _read_plan(out)
        spec = lambda kind, i, v: TensorSpec(f"{kind}_{i}", tuple(v.sizes), _tensor_dtype(v))  # noqa: E731
        return (tuple(spec("input", i, plan.values[k].val) for i, k in enumerate(plan.inputs)),
                tuple(spec("output", i, plan.values[k].val) for i, k in enumerate(plan.outputs)))


def _quantize(model: nn.Module, example: tuple, ref: ModelRef, calibration: list[dict[str, np.ndarray]] | None,
              method: str):
    """PT2E static int8: XNNPACK quantizer (per-channel symmetric weights), observers fed every calibration clip."""
    import dataclasses

    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e import MinMaxObserver
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not calibration:
        raise UserError("executorch int8: no calibration clips were given (static int8 calibrates its activations)")
    if method != "minmax":
        raise UserError(f"executorch int8: calibration method {method} is not offered (offered: minmax)")
    config = get_symmetric_quantization_config(is_per_channel=True)
    # The stock config observes activations with a HistogramObserver; `minmax` asks for their plain range.
    act = dataclasses.replace(config.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    quantizer = XNNPACKQuantizer().set_global(dataclasses.replace(config, input_activation=act, output_activation=act))
    prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    names = [t.name for t in ref.inputs]
    for clip in calibration:
        prepared(*(torch.from_numpy(np.ascontiguousarray(clip[n], dtype=np.float32)) for n in names))
    return convert_pt2e(prepared)


def _refuse_portable_3d(graph) -> None:
    """Raise if a 5-D convolution stayed outside XNNPACK: the portable kernel fails on it at run time."""
    left = [n.name for n in graph.nodes if n.op == "call_function" and "convolution" in str(n.target)
            and getattr(n.args[0].meta.get("val"), "ndim", 0) == 5]
    if left:
        raise ValueError(f"{len(left)} 3D convolutions left to the portable kernels, which take 3-D/4-D input only "
                         f"(XNNPACK skips Conv3d): export the 2D-lowered form (export_friendly.lower_3d)")


def _read_plan(out: Path):
    """The `forward` execution plan of the saved .pte and the payload bytes of each of its delegates."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(Path(out).read_bytes()).program
    plans = [p for p in program.execution_plan if p.name == "forward"]
    if not plans:
        raise ValueError(f"no forward method (methods: {', '.join(p.name for p in program.execution_plan)})")
    plan = plans[0]
    payloads = [(d.id, program.backend_delegate_data[d.processed.index].data) for d in plan.delegates]
    return plan, payloads


def _instructions(plan, with_args: bool = False):
    """("delegate", backend id) or ("kernel", operator name) per instruction of every chain."""
    for chain in plan.chains:
        for instruction in chain.instructions:
            call = instruction.instr_args
            if hasattr(call, "delegate_index"):
                row = ("delegate", plan.delegates[call.delegate_index].id, list(call.args))
            elif hasattr(call, "op_index"):
                row = ("kernel", plan.operators[call.op_index].name, list(call.args))
            else:
                continue  # moves, jumps, frees: no compute
            yield row if with_args else row[:2]


def _xnnpack_graphs(payloads: list[tuple[str, bytes]]) -> list[dict]:
    """Each XNNPACK payload's XNNGraph as JSON: flatc (shipped with executorch) with the backend's schema."""
    from executorch.backends.xnnpack.serialization import xnnpack_graph_serialize
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    blobs = [data for backend, data in payloads if backend == XNNPACK_BACKEND]
    if not blobs:
        return []
    schema = Path(xnnpack_graph_serialize.__file__).with_name("schema.fbs")
    with tempfile.TemporaryDirectory() as tmp:
        bins = []
        for i, blob in enumerate(blobs):
            header = XNNHeader.from_bytes(blob[:XNNHeader.EXPECTED_LENGTH])
            path = Path(tmp) / f"g{i}.bin"
            path.write_bytes(blob[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size])
            bins.append(str(path))
        subprocess.run([_get_flatc_path(), "--json", "--strict-json", "--defaults-json", "--raw-binary", "-o", tmp,
                        str(schema), "--", *bins], check=True, capture_output=True)
        # flatc writes non-finite floats (a clamp's output_max) as bare inf/nan, which JSON lacks
        texts = [Path(b).with_suffix(".json").read_text() for b in bins]
        return [json.loads(re.sub(r"\b(inf|nan)\b", lambda m: _NON_FINITE[m[1]], t)) for t in texts]


def _tensor_dtype(tensor) -> str:
    """numpy-style name of an ExecuTorch schema Tensor's scalar type (FLOAT -> float32, CHAR -> int8)."""
    from executorch.exir.scalar_type import ScalarType

    names = {ScalarType.FLOAT: "float32", ScalarType.HALF: "float16", ScalarType.DOUBLE: "float64",
             ScalarType.CHAR: "int8", ScalarType.BYTE: "uint8", ScalarType.INT: "int32", ScalarType.LONG: "int64",
             ScalarType.BOOL: "bool", ScalarType.BFLOAT16: "bfloat16"}
    return names.get(ScalarType(tensor.scalar_type), str(tensor.scalar_type))
