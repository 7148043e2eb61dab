"""ONNX: torch.onnx.export(dynamo=True), weights inside the file unless they pass 1.5 GB.

int8 and w8a16 are onnxruntime.quantization's static QDQ quantization of that fp32 file:
quant_pre_process (shape inference, graph optimization), then quantize_static with per-channel
int8 weights and uint8 (int8) or uint16 (w8a16) activations calibrated on the given clips. By
default the quantized files are exported with a static batch: the 2D-lowered form then moves frames
with 4-D Slice/Concat/Add only, which ONNX Runtime's NHWC transformer keeps in NHWC, where the
dynamic-batch form's 5-D Reshape/Pad/Gather cost a Transpose pair around every QLinearConv.
`float_layers` become quantize_static's `nodes_to_exclude`: every node the exporter recorded under
the layer's module path (its `pkg.torch.onnx.name_scopes` metadata, which quant_pre_process keeps).
`conv_kernel` picks the MLAS kernel ONNX Runtime runs the int8 convs on through the weights' zero point
(converters/onnx_conv_kernel.py): `auto` takes the AMX GEMM path on CPUs with AMX-INT8.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgebench.converters import onnx_conv_kernel as conv_kernel
from edgebench.converters.base import Converter, package_version
from edgebench.errors import UserError
from edgebench.parity.taps.onnx import node_scope
from edgebench.records import ModelRef, TensorSpec

ACTIVATIONS = {"int8": "QUInt8", "w8a16": "QUInt16"}  # precision -> onnxruntime QuantType of activations
METHODS = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}  # -> CalibrationMethod
COMPUTE_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm"})
INTEGER_OPS = frozenset({"QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger"})
_BITS = {"INT8": 8, "UINT8": 8, "INT16": 16, "UINT16": 16, "INT4": 4, "UINT4": 4}


class OnnxConverter(Converter):
    """Options: opset (18), dynamic_batch (axis 0 of every input and output is named `batch`),
    static_batch_quantized (int8 / w8a16 files keep the model's batch whatever dynamic_batch says),
    optimize (the exporter's onnxscript graph optimizer), per_channel (int8 weights per output channel),
    reduce_range (7-bit weights, for x86 CPUs without VNNI), conv_kernel (auto | convsym | qgemm: the MLAS
    kernel of the int8 convs; `auto` is resolved to this host's choice when the options are merged)."""

    format = "onnx"
    calibrated = frozenset({"int8", "w8a16"})
    calibration_methods = frozenset(METHODS)
    mixable = frozenset({"int8", "w8a16"})
    keep_in = frozenset({"fp32"})
    refusals = {
        "fp16": "not wired up (onnxconverter-common's float16 pass is not installed); Core ML covers fp16",
        "w8": "onnxruntime.quantization has no weight-only int8 for Conv (quantize_dynamic quantizes "
              "activations at run time; MatMulNBits covers MatMul only)",
    }
    library = "onnx"

    def default_options(self) -> dict[str, Any]:
        return {"opset": 18, "dynamic_batch": True, "static_batch_quantized": True, "optimize": True,
                "per_channel": True, "reduce_range": False, "conv_kernel": "auto"}

    def merge_options(self, options: dict[str, Any] | None) -> dict[str, Any]:
        """The defaults and `options`, with conv_kernel `auto` replaced by this host's kernel: the cache key
        and artifact.json then say which weight form the file holds."""
        merged = super().merge_options(options)
        return {**merged, "conv_kernel": conv_kernel.resolve(merged["conv_kernel"])}

    def check_options(self, options: dict[str, Any]) -> None:
        if options["conv_kernel"] not in conv_kernel.CHOICES:
            raise UserError(f"onnx: option conv_kernel must be one of {', '.join(conv_kernel.CHOICES)}, "
                            f"not '{options['conv_kernel']}'")

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "onnxscript": package_version("onnxscript"),
                "onnxruntime": package_version("onnxruntime")}

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path,
               calibration: list[dict[str, np.ndarray]] | None = None) -> None:
        if precision == "fp32":
            self._export_fp32(model, ref, options, out)
            return
        if options["static_batch_quantized"]:  # the layout-friendly form (module docstring, docs/converters.md)
            options = {**options, "dynamic_batch": False}
        with tempfile.TemporaryDirectory(prefix="fp32-", dir=Path(out).parent) as tmp:
            fp32 = Path(tmp) / "model.fp32.onnx"
            self._export_fp32(model, ref, options, fp32)
            quantize(fp32, Path(out), calibration or [], precision, options)
        check_onnx(out)

    def _export_fp32(self, model: nn.Module, ref: ModelRef, options: dict[str, Any], out: Path) -> None:
        import torch

        from edgebench.models.source import example_input

        dynamic = None
        if options["dynamic_batch"]:
            batch = torch.export.Dim("batch", min=1, max=1024)
            dynamic = tuple({0: batch} for _ in ref.inputs)
        program = torch.onnx.export(
            model, (example_input(ref),), input_names=[t.name for t in ref.inputs],
            output_names=[t.name for t in ref.outputs], opset_version=int(options["opset"]), dynamo=True,
            dynamic_shapes=dynamic, optimize=bool(options["optimize"]), verbose=False)
        # Weights inside the file; past 1.5 GB of weights (protobuf stops at 2 GB) the exporter writes
        # them to one `model.onnx.data` beside it instead, which files() then includes.
        program.save(str(out), external_data=False)
        check_onnx(out)

    def files(self, out: Path) -> list[Path]:
        """The graph file, plus the one external data file export() writes beside it for models over 2 GB."""
        data = Path(str(out) + ".data")
        return [Path(out)] + ([data] if data.exists() else [])

    def compute_dtypes(self, out: Path) -> dict[str, int]:
        """Conv/MatMul/Gemm nodes by what feeds them: `int8` (8-bit weights and activations through
        DequantizeLinear), `w8a16`, `w8` (only the weight), else the float dtype of the node's input."""
        import onnx

        graph = onnx.load(str(out), load_external_data=False).graph
        producers = {o: n for n in graph.node for o in n.output}
        inits = {t.name: t for t in graph.initializer}
        return dict(Counter(_compute_dtype(node, graph, producers, inits) for node in graph.node
                            if node.op_type in COMPUTE_OPS | INTEGER_OPS))

    def op_census(self, out: Path) -> dict[str, int]:
        import onnx

        model = onnx.load(str(out), load_external_data=False)
        return dict(Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}"
                            for n in model.graph.node))

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """Names, shapes (a symbolic dimension such as `batch` is -1) and dtypes of the graph's inputs/outputs."""
        import onnx

        graph = onnx.load(str(out), load_external_data=False).graph
        weights = {t.name for t in graph.initializer}
        return (tuple(_spec(v) for v in graph.input if v.name not in weights), tuple(_spec(v) for v in graph.output))


class ClipReader:
    """onnxruntime's CalibrationDataReader over the calibration clips (one input dict per call)."""

    def __init__(self, clips: list[dict[str, np.ndarray]]):
        self.clips = iter(clips)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.clips, None)


def quantize(fp32: Path, out: Path, calibration: list[dict[str, np.ndarray]], precision: str,
             options: dict[str, Any], exclude: tuple[str, ...] = ()) -> None:
    """Static QDQ quantization of an fp32 ONNX file with onnxruntime's own tools (`exclude`: node names left
    float, besides the nodes of options["float_layers"]); int8 files then store their conv weights for the MLAS
    kernel options["conv_kernel"] names (ONNX Runtime has no 16-bit QLinearConv: w8a16 convs run DequantizeLinear
    + float Conv, no kernel to pick)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static

    if not calibration:
        raise ValueError(f"onnx {precision}: no calibration clips")
    pre = fp32.with_name("model.pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=False)
    exclude = (*exclude, *layer_nodes(pre, options.get("float_layers", ())))
    quantize_static(
        str(pre), str(out), ClipReader(calibration), quant_format=QuantFormat.QDQ,
        per_channel=bool(options["per_channel"]), reduce_range=bool(options["reduce_range"]),
        activation_type=getattr(QuantType, ACTIVATIONS[precision]), weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, METHODS[options.get("calibration_method", "minmax")]),
        # no CalibMaxIntermediateOutputs: onnxruntime 1.32's MinMaxCalibrater drops each batch without merging its
        # ranges (clear_collected_data, no compute_data), so every min-max calibration failed "No data is collected."
        nodes_to_exclude=list(exclude))
    if precision == "int8" and conv_kernel.resolve(options.get("conv_kernel", "auto")) == "qgemm":
        model = onnx.load(str(out))
        conv_kernel.shift_weight_zero_points(model)
        onnx.save(model, str(out))


def layer_nodes(path: Path, layers) -> list[str]:
    """Names of the nodes the exporter recorded under each layer's module path (or below it); a layer with
    none is a ValueError naming the module paths the graph has."""
    import onnx

    if not layers:
        return []
    scoped = [(n.name, node_scope(n)) for n in onnx.load(str(path), load_external_data=False).graph.node]
    found = []
    for layer in layers:
        names = [name for name, scope in scoped if scope == layer or scope.startswith(layer + ".")]
        if not names:
            known = sorted({scope for _, scope in scoped if scope})
            raise ValueError(f"float_layers: no node of the ONNX graph belongs to {layer} (module paths: {', '.join(known)})")
        found += names
    return found


def _compute_dtype(node, graph, producers: dict, inits: dict) -> str:
    """`int8`, `w8a16`, `w8`, `w<bits>a<bits>` or (a float weight) its float dtype, for one conv/matmul node."""
    import onnx

    if node.op_type in INTEGER_OPS:
        return "int8"

    def bits(name: str) -> int | None:
        dq = producers.get(name)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        for source in (dq.input[0], dq.input[2] if len(dq.input) > 2 else ""):  # the data, else its zero point
            if source in inits:
                return _BITS.get(onnx.TensorProto.DataType.Name(inits[source].data_type))
            q = producers.get(source)
            if q is not None and q.op_type == "QuantizeLinear" and len(q.input) > 2 and q.input[2] in inits:
                return _BITS.get(onnx.TensorProto.DataType.Name(inits[q.input[2]].data_type))
        return 8  # DequantizeLinear without a zero point: uint8 by the ONNX spec
    a, w = bits(node.input[0]), bits(node.input[1])
    if w is None:  # a float weight: the node computes in float whatever feeds its activation
        return _float_dtype(node.input[1], graph, inits)
    if a is None:
        return f"w{w}"
    return "int8" if (a, w) == (8, 8) else f"w{w}a{a}"


def _float_dtype(name: str, graph, inits) -> str:
    import onnx

    for v in [*graph.value_info, *graph.input, *graph.output]:
        if v.name == name:
            return onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
    if name in inits:
        return onnx.helper.tensor_dtype_to_np_dtype(inits[name].data_type).name
    return "float32"


def check_onnx(path: Path) -> None:
    """onnx.checker (full check, by path so external data works) and strict shape inference; raise if invalid."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    inferred = Path(str(path) + ".inferred")
    try:
        onnx.shape_inference.infer_shapes_path(str(path), str(inferred), check_type=True, strict_mode=True)
    finally:
        inferred.unlink(missing_ok=True)


def _spec(value) -> TensorSpec:
    import onnx

    tensor = value.type.tensor_type
    shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
    return TensorSpec(value.name, shape, dtype)
