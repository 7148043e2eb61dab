"""ExecuTorch taps: a copy of the .pte whose forward method also returns every layer's tensor, run by the
ExecuTorch runtime itself (Polygraphy's "mark all", in the program's own terms).

Inside an XNNPACK payload a layer's value is flagged as an external output (XNNPACK's own mechanism for a
delegate's outputs) and gets a new argument of the delegate call: a tensor of its own in a new planned
buffer. A tensor that already is a method value (a delegate's output, a portable kernel's result) is moved to
that buffer (the memory plan would reuse its bytes). Both are appended to the method's outputs. XNNPACK works
channels-last: values its convolutions and pools produce (followed through the graph) come back NCHW; int8
values are dequantized with their per-tensor scale and zero point.

Scope: the scopes file the converter writes beside the .pte (debug handle -> module path, the pairing
ExecuTorch's ETRecord holds); a .pte without one is mapped by kind, shape and order.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.parity.taps.base import ArtifactTap, kind_of
from edgebench.runtimes.executorch import XNNPACK_BACKEND, _pybindings
from edgebench.runtimes.executorch_program import (forward_plan, read_pte, scopes_path, split_payload, tensor_dtype,
                                                  xnnpack_graphs, xnnpack_payload)

EXTERNAL_OUTPUT = 2  # XNN_VALUE_FLAG_EXTERNAL_OUTPUT
NO_ID = 0xFFFFFFFF  # XNN_INVALID_VALUE_ID
# XNNPACK operators that compute in NHWC: their outputs are channels-last
_NHWC_MAKERS = {"XNNConv2d", "XNNDepthwiseConv2d", "XNNConvTranspose2d", "XNNMaxPooling2d", "XNNAvgPooling2d",
                "XNNGlobalAvgPooling2d", "XNNArgMaxPooling2d"}
_TO_NHWC, _TO_NCHW = [0, 2, 3, 1], [0, 3, 1, 2]
# XNNPACK value datatype -> the ExecuTorch scalar type of the method output it is written to
_SCALAR_TYPES = {"xnn_datatype_fp32": "FLOAT", "xnn_datatype_fp16": "HALF", "xnn_datatype_qint8": "CHAR",
                 "xnn_datatype_quint8": "BYTE"}


@dataclass
class _Tap:
    """One value made a method output: where it lands, what made it, how to read it back."""

    name: str
    op_type: str
    scope: str
    fused: str = ""
    nhwc: bool = False
    scale: float | None = None  # dequantize: (q - zero_point) * scale
    zero_point: int = 0
    position: int = -1  # index in the method's outputs


def _tensor(value: dict) -> dict:
    return value["xvalue_union"].get("tensor_value", value["xvalue_union"])


def _inputs(node: dict) -> list[int]:
    args = node["xnode_union"]
    return [v for k, v in args.items() if k.startswith("input") and k.endswith("_id") and v != NO_ID]


def channels_last(graph: dict) -> set[int]:
    """Ids of the values XNNPACK holds channels-last: made by an NHWC operator or a transpose to NHWC, or
    inherited from a first input that is (elementwise ops, slices, concatenations keep the layout)."""
    nhwc: set[int] = set()
    for node in graph["xnodes"]:
        kind, args = node["xnode_union_type"], node["xnode_union"]
        out = args.get("output_id")
        if kind == "XNNStaticTranspose":
            made = args["perm"] == _TO_NHWC
        elif kind in _NHWC_MAKERS:
            made = True
        elif kind in ("XNNStaticReshape", "XNNFullyConnected"):
            made = False
        else:
            made = bool(_inputs(node)) and _inputs(node)[0] in nhwc
        if made and out is not None:
            nhwc.add(out)
    return nhwc


def _fused(node: dict) -> str:
    """"relu" when the node clamps its output to [0, inf) (XNNPACK fused the ReLU after it)."""
    bounds = node.get("output_min_max") or {}
    return "relu" if bounds.get("output_min") == 0 and bounds.get("output_max") == float("inf") else ""


def _scope(scopes: dict, handles: list) -> str:
    return next((scopes["handles"][str(h)] for h in handles if str(h) in scopes.get("handles", {})), "")


class _Rewriter:
    """Appends tap outputs to a deserialized program's forward plan, each in a new planned buffer."""

    def __init__(self, plan):
        self.plan = plan
        self.buffer = len(plan.non_const_buffer_sizes)  # a buffer of its own: nothing else is planned into it
        plan.non_const_buffer_sizes.append(0)
        self.taps: list[_Tap] = []

    def _place(self, tensor) -> None:
        from executorch.exir.schema import AllocationDetails

        offset = self.plan.non_const_buffer_sizes[self.buffer]
        nbytes = int(np.prod(tensor.sizes, dtype=np.int64)) * np.dtype(_np_dtype(tensor)).itemsize
        tensor.allocation_info = AllocationDetails(memory_id=self.buffer, memory_offset_low=offset & NO_ID,
                                                   memory_offset_high=offset >> 32)
        self.plan.non_const_buffer_sizes[self.buffer] = offset + (nbytes + 63) // 64 * 64

    def new_tensor(self, dims: list[int], scalar_type: str) -> int:
        """A new planned tensor value; its index."""
        from executorch.exir.scalar_type import ScalarType
        from executorch.exir.schema import EValue, Tensor, TensorShapeDynamism

        tensor = Tensor(scalar_type=ScalarType[scalar_type], storage_offset=0, sizes=list(dims),
                        dim_order=list(range(len(dims))), requires_grad=False, layout=0, data_buffer_idx=0,
                        allocation_info=None, shape_dynamism=TensorShapeDynamism.STATIC)
        self._place(tensor)
        self.plan.values.append(EValue(tensor))
        return len(self.plan.values) - 1

    def output(self, index: int, tap: _Tap, move: bool) -> None:
        """Make value `index` a method output (moved to the taps' buffer first when the plan reuses its memory;
        a value the method returns already is read where it is)."""
        if index not in self.plan.outputs:
            if move:
                self._place(self.plan.values[index].val)
            self.plan.outputs.append(index)
        tap.position = self.plan.outputs.index(index)
        self.taps.append(tap)


def _np_dtype(tensor):
    return np.dtype(tensor_dtype(tensor))


def _tap_delegate(rewriter: _Rewriter, call, graph: dict, scopes: dict, d: int) -> dict:
    """Flag every layer value of one XNNPACK graph as an external output bound to a new delegate argument."""
    values = {_tensor(v)["id_out"]: v for v in graph["xvalues"]}
    nhwc = channels_last(graph)
    for node in graph["xnodes"]:
        kind = node["xnode_union_type"]
        out = node["xnode_union"].get("output_id")
        fused = _fused(node)
        if out is None or (kind_of(kind) == "other" and not fused):
            continue
        value = values[out]
        tensor = _tensor(value)
        if tensor["datatype"] not in _SCALAR_TYPES:
            continue
        quant = value["xvalue_union"].get("quant_params") if value["xvalue_union_type"] == "XNNQuantizedTensorValue" else None
        if quant is not None and "zero_point" not in quant:
            continue  # per-channel / dynamic parameters: only weights and dynamic activations use them
        tap = _Tap(f"delegate{d}:{out}", kind, _scope(scopes, [node["debug_handle"]]), fused,
                   out in nhwc and tensor["num_dims"] == 4, quant and quant["scale"], quant["zero_point"] if quant else 0)
        if tensor["flags"] & EXTERNAL_OUTPUT:  # already a delegate output: the method value it is written to,
            tap.nhwc = False  # whose dim order the executor honours
            rewriter.output(call.args[tensor["external_id"]], tap, move=True)
            continue
        tensor["flags"] |= EXTERNAL_OUTPUT
        tensor["external_id"] = graph["num_externs"]  # the delegate call's argument index (XNNExecutor)
        graph["num_externs"] += 1
        graph["output_ids"].append(out)
        index = rewriter.new_tensor(tensor["dims"], _SCALAR_TYPES[tensor["datatype"]])
        call.args.append(index)
        rewriter.output(index, tap, move=False)
    return graph


def tapped_program(path: str | Path, out: Path) -> list[_Tap]:
    """Write the tapped copy of the .pte at `path` to `out`; the taps in the order of their outputs."""
    from executorch.exir._serialize._program import serialize_pte_binary
    from executorch.exir.schema import BackendDelegateInlineData

    scopes_file = scopes_path(path)
    scopes = json.loads(scopes_file.read_text()) if scopes_file.exists() else {}
    pte = read_pte(path)
    plan = forward_plan(pte.program)
    rewriter = _Rewriter(plan)
    for i, instruction in enumerate(plan.chains[0].instructions):
        call = instruction.instr_args
        if hasattr(call, "delegate_index"):
            delegate = plan.delegates[call.delegate_index]
            if delegate.id != XNNPACK_BACKEND:
                continue
            data = pte.program.backend_delegate_data[delegate.processed.index]
            graph = xnnpack_graphs([(delegate.id, data.data)])[0]
            graph = _tap_delegate(rewriter, call, graph, scopes, call.delegate_index)
            pte.program.backend_delegate_data[delegate.processed.index] = BackendDelegateInlineData(
                data=xnnpack_payload(graph, split_payload(data.data)[1]))
        elif hasattr(call, "op_index"):
            name = plan.operators[call.op_index].name
            result = plan.values[call.args[-1]].val if call.args else None  # an out-variant kernel returns its out
            if kind_of(name) != "other" and hasattr(result, "allocation_info") and _np_dtype(result).kind == "f":
                handles = scopes.get("instructions", {}).get(str(i), [])
                rewriter.output(call.args[-1], _Tap(f"instruction{i}:{name}", name, _scope(scopes, handles)), move=True)
    out.write_bytes(bytes(serialize_pte_binary(pte, extract_delegate_segments=True)))
    return rewriter.taps


def executorch_taps(path: str | Path, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """Every layer tensor of the forward method for one input (positional, in the model's input order), in
    execution order, as the ExecuTorch runtime computes it."""
    import torch

    runtime = _pybindings()
    with tempfile.TemporaryDirectory() as tmp:
        program_path = Path(tmp) / "tapped.pte"
        taps = tapped_program(path, program_path)
        program = runtime._load_program(str(program_path), program_verification=runtime.Verification.InternalConsistency)  # noqa: SLF001
        outputs = program.load_method("forward")([torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()])
    found = []
    for tap in taps:
        value = outputs[tap.position].numpy().copy()
        if tap.scale is not None:
            value = (value.astype(np.float32) - np.float32(tap.zero_point)) * np.float32(tap.scale)
        if tap.nhwc:
            value = np.moveaxis(value, -1, 1)
        found.append(ArtifactTap(tap.name, tap.op_type, value, tap.scope, tap.fused))
    return found
