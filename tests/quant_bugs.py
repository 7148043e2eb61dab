"""Quantization bugs injected into real quantized artifacts: the negative controls of the int8 / w8 / w8a16 bounds.

Used by tests/integration/test_quantization.py (small shapes) and benchmarks/quantization_noise.py (full model).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.converters.onnx import OnnxConverter

GARBAGE_FACTOR = 255.0  # calibration clips not divided by 255: a classic preprocessing slip


def _weight_dq(model, conv_index: int):
    """(conv node, weight DequantizeLinear node) of the conv_index-th Conv of a QDQ model."""
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    conv = convs[conv_index]
    dq = next(n for n in model.graph.node if conv.input[1] in n.output)
    return conv, dq


def _init(model, name: str):
    return next(t for t in model.graph.initializer if t.name == name)


def onnx_wrong_scale(src: Path, dst: Path, conv_index: int = 8, factor: float = 2.0) -> str:
    """One conv's weight scales multiplied by `factor` (its int8 weights kept): the layer's output scaled.
    Returns the module path the exporter recorded for that conv."""
    import onnx
    from onnx import numpy_helper

    from edgebench.parity.taps.onnx import node_scope

    model = onnx.load(str(src))
    conv, dq = _weight_dq(model, conv_index)
    scale = _init(model, dq.input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(factor), scale.name))
    onnx.save(model, str(dst))
    return node_scope(conv)


def onnx_swapped_channel(src: Path, dst: Path, conv_index: int = 8) -> None:
    """Output channels 0 and 1 of one conv's int8 weights swapped (scales kept in place)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    _, dq = _weight_dq(model, conv_index)
    weight = _init(model, dq.input[0])
    w = numpy_helper.to_array(weight).copy()
    w[[0, 1]] = w[[1, 0]]
    weight.CopyFrom(numpy_helper.from_array(w, weight.name))
    onnx.save(model, str(dst))


def onnx_scales_reversed(src: Path, dst: Path, conv_index: int = 8) -> None:
    """One conv's per-channel weight scales in reversed channel order: every channel dequantized with another's."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    _, dq = _weight_dq(model, conv_index)
    scale = _init(model, dq.input[1])
    scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale)[::-1].copy(), scale.name))
    onnx.save(model, str(dst))


def onnx_stem_channels_reversed(src: Path, dst: Path) -> None:
    """The first conv's input channels in reversed order (RGB read as BGR; frame order too in the 2D-lowered form)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    _, dq = _weight_dq(model, 0)
    weight = _init(model, dq.input[0])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[:, ::-1].copy(), weight.name))
    onnx.save(model, str(dst))


def tflite_wrong_scale(src: Path, dst: Path, conv_index: int = 8, factor: float = 2.0) -> str:
    """One CONV_2D's per-channel filter scales multiplied by `factor` in the .tflite flatbuffer (int8 weights kept).
    Returns the module path litert-torch recorded in that conv's output tensor name."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    from edgebench.parity.taps.tflite import location_path

    model = schema.ModelT.InitFromPackedBuf(Path(src).read_bytes(), 0)
    conv_code = schema.BuiltinOperator.CONV_2D
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    graph = model.subgraphs[0]
    conv = [op for op in graph.operators if codes[op.opcodeIndex] == conv_code][conv_index]
    quant = graph.tensors[conv.inputs[1]].quantization
    quant.scale = [float(v) * factor for v in quant.scale]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(dst).write_bytes(builder.Output())
    name = graph.tensors[conv.outputs[0]].name
    return location_path(name.decode() if isinstance(name, bytes) else name)


def conv_names(path: Path) -> list[str]:
    """Node names of the Conv nodes of an ONNX file, in graph order."""
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "Conv"]


def layer_conv_indices(path: Path, layer: str) -> list[int]:
    """Indices (among the Conv nodes) of the convs the exporter recorded under one module path."""
    import onnx

    from edgebench.parity.taps.onnx import node_scope

    convs = [n for n in onnx.load(str(path), load_external_data=False).graph.node if n.op_type == "Conv"]
    return [i for i, n in enumerate(convs) if node_scope(n) == layer]


class WrongScaleOnnx(OnnxConverter):
    """ONNX int8 files with one layer's weight scales x `factor` (onnx_wrong_scale), unless float_layers keeps that
    layer float: the injected failure a repair must undo by keeping exactly that layer in float."""

    def __init__(self, layer: str, factor: float = 2.0):
        self.layer, self.factor = layer, factor

    def export(self, model, ref, precision, options, out, calibration=None) -> None:
        super().export(model, ref, precision, options, out, calibration)
        if precision != "fp32" and self.layer not in options.get("float_layers", ()):
            for index in layer_conv_indices(Path(out), self.layer):
                onnx_wrong_scale(Path(out), Path(out), index, self.factor)


def garbage(calibration: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The same clips in 0..255 instead of 0..1."""
    return [{k: v * np.float32(GARBAGE_FACTOR) for k, v in clip.items()} for clip in calibration]


def mil_weight_bug(session, kind: str, index: int = 8, factor: float = 2.0) -> str:
    """In a coreml-mil session, the index-th conv's int8 weight dequantized with its scales times `factor`
    (`scale`), with its per-channel scales in reversed order (`reverse`), with output channels 0 and 1
    swapped (`swap`), or the first conv's input channels reversed (`stem`); returns the weight's var name."""
    import torch

    conv = [op for op in session.ops if op.op_type == "conv"][0 if kind == "stem" else index]
    name = conv.inputs["weight"].name
    source = conv.inputs["weight"].op  # constexpr_affine_dequantize: (q - zero_point) * scale along axis 0
    w = session.consts[name].clone()
    if kind == "swap":
        w[[0, 1]] = w[[1, 0]]
    elif kind == "stem":
        w = w.flip(1)
    else:
        scale = torch.as_tensor(np.asarray(source.inputs["scale"].val, dtype=np.float32))
        wrong = scale * factor if kind == "scale" else scale.flip(0)
        w = w * (wrong / scale).reshape(-1, *[1] * (w.dim() - 1))
    session.consts[name] = w
    return name


def executorch_wrong_scale(src: Path, dst: Path, conv_index: int = 8, factor: float = 2.0) -> str:
    """The conv_index-th XNNPACK conv's per-channel filter scales multiplied by `factor` in a .pte (its int8
    weights kept), written to `dst` with the scopes file beside it; returns that conv's module path."""
    import json
    import shutil

    from edgebench.runtimes.executorch_program import forward_plan, read_pte, scopes_path, xnnpack_graphs

    pte = read_pte(src)
    plan = forward_plan(pte.program)
    graphs = xnnpack_graphs([(d.id, pte.program.backend_delegate_data[d.processed.index].data) for d in plan.delegates])
    graph, conv = [(g, n) for g in graphs for n in g["xnodes"] if n["xnode_union_type"] == "XNNConv2d"][conv_index]
    value = next(v["xvalue_union"] for v in graph["xvalues"]
                 if v["xvalue_union"].get("tensor_value", {}).get("id_out") == conv["xnode_union"]["filter_id"])
    key = graph["constant_data"][value["quant_params"]["scale_buffer_idx"]]["named_key"]
    scales = pte.named_data.buffers[pte.named_data.pte_data[key].buffer_index]
    data = bytearray(Path(src).read_bytes())
    at = data.find(scales)
    assert at >= 0 and data.find(scales, at + 1) < 0, "the scales are not stored once"
    data[at:at + len(scales)] = (np.frombuffer(scales, np.float32) * np.float32(factor)).tobytes()
    Path(dst).write_bytes(bytes(data))
    shutil.copy(scopes_path(src), scopes_path(dst))
    return json.loads(scopes_path(src).read_text())["handles"].get(str(conv["debug_handle"]), "")


WRONG_SCALE = {"onnx": onnx_wrong_scale, "tflite": tflite_wrong_scale, "executorch": executorch_wrong_scale}


def conv_count(path: Path, fmt: str) -> int:
    """Quantized convs a WRONG_SCALE injector can pick from (its conv_index range)."""
    if fmt == "onnx":
        return len(conv_names(path))
    if fmt == "tflite":
        from ai_edge_litert import schema_py_generated as schema

        model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
        codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
        return sum(codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D for op in model.subgraphs[0].operators)
    from edgebench.runtimes.executorch_program import read_plan, xnnpack_graphs

    _, payloads = read_plan(path)
    return sum(n["xnode_union_type"] == "XNNConv2d" for g in xnnpack_graphs(payloads) for n in g["xnodes"])


def tflite_conv_layer(path: Path, conv_index: int, module) -> str:
    """The module path of the conv whose weights the conv_index-th CONV_2D of a .tflite holds, for a file that
    keeps no module paths (PT2E int8): the reference conv weight (a summed conv: one of its taps) closest in
    cosine to the CONV_2D's dequantized filter."""
    from ai_edge_litert import schema_py_generated as schema

    from tests.weight_edits import conv_layers

    model = schema.ModelT.InitFromPackedBuf(Path(path).read_bytes(), 0)
    codes = [max(c.builtinCode, c.deprecatedBuiltinCode) for c in model.operatorCodes]
    graph = model.subgraphs[0]
    conv = [op for op in graph.operators if codes[op.opcodeIndex] == schema.BuiltinOperator.CONV_2D][conv_index]
    tensor = graph.tensors[conv.inputs[1]]
    q = np.asarray(model.buffers[tensor.buffer].data, np.uint8).view(np.int8).reshape(tensor.shape)
    scale = np.asarray(tensor.quantization.scale, np.float32).reshape(-1, 1, 1, 1)
    weights = (q * scale).transpose(0, 3, 1, 2).ravel()  # OHWI -> OIHW

    def cosine(w: np.ndarray) -> float:
        return float(w.ravel() @ weights / (np.linalg.norm(w) * np.linalg.norm(weights) + 1e-30))

    scored = [(cosine(w), name) for name, ws in conv_layers(module).items() for w in ws if w.size == weights.size]
    return max(scored)[1] if scored else ""
