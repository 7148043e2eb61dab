"""TFLite taps: LiteRT's Interpreter with experimental_preserve_all_tensors, builtin kernels only (a
delegate would compute its partition's tensors out of sight), get_tensor on every op output; int8 tensors
dequantized with their per-tensor scale and zero point.

Scope: litert-torch names each tensor after its location, `Class_attr` segments joined by `/`
(`...VideoResNet_model/torch.nn.modules.container.Sequential_layer1/...BasicBlock_0;1`); the first
location before `;` is the op's own; the attributes joined by dots are the module path.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.parity.taps.base import ArtifactTap
from edgebench.runtimes.litert import fed


def location_path(tensor_name: str) -> str:
    """The dotted attribute path of a litert-torch location ("" when the name holds none)."""
    first = tensor_name.split(";")[0]
    attrs = []
    for segment in first.split("/"):
        leaf = segment.rsplit(".", 1)[-1]
        if "_" in leaf:
            attrs.append(leaf.split("_", 1)[1])
    return ".".join(attrs)


def _fused_activations(path: Path) -> dict[int, str]:
    """Operator index -> fused activation name, for ops whose options carry one (ADD, CONV_3D, ...)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.ActivationFunctionType).items() if not k.startswith("_")}
    options = {v: k for k, v in vars(schema.BuiltinOptions).items() if not k.startswith("_")}
    model = schema.Model.GetRootAs(path.read_bytes(), 0)
    graph = model.Subgraphs(0)
    fused = {}
    for i in range(graph.OperatorsLength()):
        op = graph.Operators(i)
        cls = getattr(schema, options.get(op.BuiltinOptionsType(), ""), None)
        table = op.BuiltinOptions()
        if cls is None or table is None or not hasattr(cls, "FusedActivationFunction"):
            continue
        opts = cls()
        opts.Init(table.Bytes, table.Pos)
        act = names.get(opts.FusedActivationFunction(), "NONE")
        if act != "NONE":
            fused[i] = act.lower()
    return fused


def tflite_taps(path: str | Path, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """Every float op output of the main subgraph, for one input, in execution order."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    path = Path(path)
    interpreter = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True,
                              experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    interpreter.allocate_tensors()
    for name, detail in interpreter.get_signature_runner().get_input_details().items():
        interpreter.set_tensor(detail["index"], fed(inputs[name], detail))
    interpreter.invoke()
    details = {t["index"]: t for t in interpreter.get_tensor_details()}
    fused = _fused_activations(path)
    taps = []
    for op in interpreter._get_ops_details():  # noqa: SLF001 - the only API listing ops with their tensors
        for index in op["outputs"]:
            detail = details.get(int(index), {"name": str(index)})
            value = dequantized(interpreter.get_tensor(int(index)), detail)
            if value is not None:
                taps.append(ArtifactTap(detail["name"], op["op_name"], value, location_path(detail["name"]),
                                        fused.get(int(op["index"]), "")))
    return taps


def dequantized(value: np.ndarray, detail: dict) -> np.ndarray | None:
    """A float tensor as is; an 8/16-bit one with a per-tensor scale as (q - zero_point) * scale; else None
    (int32 biases, per-channel weights)."""
    if value.dtype.kind == "f":
        return value.copy()
    quant = detail.get("quantization_parameters") or {}
    scales, zeros = quant.get("scales", []), quant.get("zero_points", [])
    if value.dtype not in (np.int8, np.uint8, np.int16) or len(scales) != 1:
        return None
    return (value.astype(np.float32) - np.float32(zeros[0])) * np.float32(scales[0])
