"""ExecuTorch: torch.export -> to_edge_transform_and_lower with the XNNPACK partitioner -> a .pte program.

fp32, and int8 through PT2E with the XNNPACK quantizer (per-channel symmetric int8 weights, static
int8 activations calibrated on the calibration clips); `float_layers` are kept out by the quantizer's
`set_filter_function` and run in XNNPACK's float32 kernels. The XNNPACK partitioner skips Conv3d, and the
portable convolution kernel takes 3-D or 4-D input only (a 3D conv left to it fails at run time),
so the export uses the 2D-lowered module. Everything else is read back from the saved .pte: the
program's instruction chain (delegate calls, kernel calls left to the portable kernels) and each
XNNPACK payload's node list (decoded with the flatc and schema shipped in the package).
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgebench.converters.base import Converter, module_paths, outside_layers, package_version
from edgebench.errors import UserError
from edgebench.records import ModelRef, TensorSpec
from edgebench.runtimes.executorch_program import (instructions, read_plan, scopes_path, tensor_dtype,
                                                  xnnpack_graphs)

# XNNPACK nodes and portable kernels that do conv/matmul-class compute (what compute_dtypes counts).
_XNN_COMPUTE = ("XNNConv2d", "XNNDepthwiseConv2d", "XNNConvTranspose2d", "XNNFullyConnected", "XNNBatchMatrixMultiply")
_KERNEL_COMPUTE = ("aten::convolution", "aten::linear", "aten::addmm", "aten::mm", "aten::bmm")
_XNN_DTYPES = {"xnn_datatype_fp32": "float32", "xnn_datatype_fp16": "float16", "xnn_datatype_bf16": "bfloat16",
               "xnn_datatype_qint8": "int8", "xnn_datatype_qcint8": "int8", "xnn_datatype_qdint8": "int8",
               "xnn_datatype_quint8": "uint8", "xnn_datatype_qcint4": "int4", "xnn_datatype_qbint4": "int4"}


class ExecuTorchConverter(Converter):
    """No options of its own; int8 calibrates on export's `calibration` clips with options["calibration_method"]."""

    format = "executorch"
    calibrated = frozenset({"int8"})
    calibration_methods = frozenset({"minmax"})  # activation observer: MinMaxObserver
    mixable = frozenset({"int8"})
    keep_in = frozenset({"fp32"})
    refusals = {
        "fp16": "not wired up (XNNPACK runs fp16 only where the CPU has fp16 arithmetic)",
        "w8": "not wired up (the XNNPACK quantizer's weight-only int8 path is dynamic activation quantization)",
        "w8a16": "the XNNPACK quantizer has no 16-bit activation configuration",
    }
    library = "executorch"
    keeps_io_names = False  # a .pte method has positional inputs and outputs, no names

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
                model = _quantize(model, example, ref, calibration, options.get("calibration_method", "minmax"),
                                  options.get("float_layers", ()))
            program = torch.export.export(model, example)
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            _refuse_portable_3d(edge.exported_program().graph, program.graph)
            manager = edge.to_executorch()
            Path(out).write_bytes(manager.buffer)
            scopes_path(out).write_text(json.dumps(_layer_scopes(edge, manager)))

    def files(self, out: Path) -> list[Path]:
        """The program and the scopes file export() writes beside it (localization names its tensors with it)."""
        scopes = scopes_path(out)
        return [Path(out)] + ([scopes] if scopes.exists() else [])

    def op_census(self, out: Path) -> dict[str, int]:
        """`delegate_calls`, `xnnpack_delegated_nodes`, `xnnpack:<node>` per XNNPACK node type, and the
        operator name of every kernel call left to the portable kernels."""
        plan, payloads = read_plan(out)
        census: Counter = Counter()
        for kind, what in instructions(plan):
            if kind == "delegate":
                census["delegate_calls"] += 1
            else:
                census[what] += 1
        for graph in xnnpack_graphs(payloads):
            census["xnnpack_delegated_nodes"] += len(graph["xnodes"])
            census.update("xnnpack:" + node["xnode_union_type"] for node in graph["xnodes"])
        return dict(census)

    def compute_dtypes(self, out: Path) -> dict[str, int]:
        """Conv/matmul ops per compute dtype: XNNPACK nodes by their filter value's datatype, portable
        kernels by their second operand's scalar type (a conv's or linear's weight)."""
        plan, payloads = read_plan(out)
        dtypes: Counter = Counter()
        for graph in xnnpack_graphs(payloads):
            values = {}
            for v in graph["xvalues"]:
                tensor = v["xvalue_union"].get("tensor_value", v["xvalue_union"])
                values[tensor["id_out"]] = tensor["datatype"]
            for node in graph["xnodes"]:
                if node["xnode_union_type"] in _XNN_COMPUTE:
                    args = node["xnode_union"]
                    weight = args.get("filter_id", args.get("input2_id"))
                    dtypes[_XNN_DTYPES.get(values.get(weight), str(values.get(weight)))] += 1
        for kind, what, args in instructions(plan, with_args=True):
            if kind == "kernel" and what in _KERNEL_COMPUTE:
                dtypes[tensor_dtype(plan.values[args[1]].val)] += 1
        return dict(dtypes)

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Shapes and dtypes of the `forward` method's inputs and outputs (names are positional: input_0, ...)."""
        plan, _ = read_plan(out)
        spec = lambda kind, i, v: TensorSpec(f"{kind}_{i}", tuple(v.sizes), tensor_dtype(v))  # noqa: E731
        return (tuple(spec("input", i, plan.values[k].val) for i, k in enumerate(plan.inputs)),
                tuple(spec("output", i, plan.values[k].val) for i, k in enumerate(plan.outputs)))


def _quantize(model: nn.Module, example: tuple, ref: ModelRef, calibration: list[dict[str, np.ndarray]] | None,
              method: str, float_layers=()):
    """PT2E static int8: XNNPACK quantizer (per-channel symmetric weights), observers fed every calibration clip;
    the modules named in `float_layers` left float."""
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
    if float_layers:  # set_module_name takes no None config (an assert): the quantizer's node filter instead
        quantizer.set_filter_function(outside_layers(module_paths(model, float_layers)))
    prepared = prepare_pt2e(torch.export.export(model, example).module(), quantizer)
    names = [t.name for t in ref.inputs]
    for clip in calibration:
        prepared(*(torch.from_numpy(np.ascontiguousarray(clip[n], dtype=np.float32)) for n in names))
    return convert_pt2e(prepared)


def _layer_scopes(edge, manager) -> dict:
    """What names the program's tensors after the model's modules: `handles` (debug handle -> the module path of
    its node, from nn_module_stack; XNNPACK nodes keep their handle) and `instructions` (kernel instruction index
    of the forward chain -> debug handles), as ExecuTorch's ETRecord pairs them, without the program's weights."""
    from executorch.exir.lowered_backend_module import LoweredBackendModule

    module = edge.exported_program().graph_module
    graphs = [module.graph] + [m.original_module.graph for m in module.children() if isinstance(m, LoweredBackendModule)]
    handles: dict[int, str] = {}
    for graph in graphs:
        for node in graph.nodes:
            handle, stack = node.meta.get("debug_handle"), node.meta.get("nn_module_stack")
            path = list(stack.values())[-1][0] if stack else ""
            if isinstance(handle, int) and path:  # quantize/dequantize nodes share their op's handle, with no path
                handles[handle] = path
    chain = manager.debug_handle_map.get("forward", {})
    return {"handles": handles,
            "instructions": {i: list(h) if isinstance(h, (list, tuple)) else [h] for i, h in chain.items()}}


def _refuse_portable_3d(graph, exported) -> None:
    """Raise if a 5-D convolution stayed outside XNNPACK: the portable kernel fails on it at run time. The
    message says the share of the model's conv/matmul FLOPs (in the `exported` graph) XNNPACK would have run."""
    left = [n for n in graph.nodes if n.op == "call_function" and "convolution" in str(n.target)
            and getattr(n.args[0].meta.get("val"), "ndim", 0) == 5]
    if left:
        total = sum(_matmul_flops(n) for n in exported.nodes)
        share = f" ({100 * (1 - sum(map(_matmul_flops, left)) / total):.0f} % of the conv/matmul FLOPs delegated)" \
            if total else ""
        raise ValueError(f"{len(left)} 3D convolutions left to the portable kernels{share}, which take 3-D/4-D input "
                         f"only (XNNPACK skips Conv3d): export the 2D-lowered form (export_friendly.lower_3d)")


def _matmul_flops(node) -> int:
    """2 x multiply-adds of a convolution or linear node, from its output's and weight's shapes; 0 for others."""
    if node.op != "call_function" or not any(k in str(node.target) for k in ("convolution", "conv", "linear")):
        return 0
    out, weight = node.meta.get("val"), getattr(node.args[1], "meta", {}).get("val") if len(node.args) > 1 else None
    if out is None or weight is None or weight.ndim < 2:
        return 0
    return 2 * out.numel() * weight[0].numel()
