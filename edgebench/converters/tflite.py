"""TFLite: litert-torch (the renamed ai-edge-torch) lowers the module to a .tflite flatbuffer, fp32 or int8.

int8 is litert-torch's PT2E static quantization (per-channel symmetric int8 weights, int8 activations
observed by min-max over the calibration clips) of the 2D-lowered module; `float_layers` are left out of
it (litert-torch's quantizer annotates with a filter that skips their nodes) and run in float32. On the 3D form PT2E leaves
every CONV_3D in float32 (LiteRT's builtin CONV_3D takes float32 only), which the compute dtype census
then reports as a mislabelled file. No fp16: litert-torch cannot lower an fp16 module (tfl.pad in fp16
fails to legalize), measured (docs/converters.md).
"""

from __future__ import annotations

import copy
import functools
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgebench.converters.base import Converter, module_paths, outside_layers, package_version
from edgebench.records import ModelRef, TensorSpec


class NamedIO(nn.Module):
    """Takes the inputs as keywords and returns a dict: litert-torch names the signature after them."""

    def __init__(self, model: nn.Module, output_names: list[str]):
        super().__init__()
        self.model = model
        self.output_names = output_names

    def forward(self, **inputs):
        out = self.model(*inputs.values())
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return dict(zip(self.output_names, outs))


def named_io(model: nn.Module, input_names: list[str], output_names: list[str]) -> nn.Module:
    """The module litert-torch converts: inputs by keyword, a dict of named outputs.

    A traced module (the 2D-lowered form is an fx.GraphModule) gets the names in its own graph instead of a
    NamedIO around it: torch.export keeps the module path of each op (`nn_module_stack`, which litert-torch
    writes into tensor names and localization reads) only for a GraphModule at the root; inside another
    module it would record the leaf module alone.
    """
    from torch import fx

    if not isinstance(model, fx.GraphModule) or type(model.graph._codegen) is not fx.graph.CodeGen:  # noqa: SLF001
        return NamedIO(model, output_names)  # a plain module, or an exported program's (PT2E int8: pytree I/O)
    named = fx.GraphModule(model, copy.deepcopy(model.graph), class_name=type(model).__name__)
    for node, name in zip([n for n in named.graph.nodes if n.op == "placeholder"], input_names):
        node.target = name
    out = next(n for n in named.graph.nodes if n.op == "output")
    values = out.args[0] if isinstance(out.args[0], (tuple, list)) else (out.args[0],)
    out.args = (dict(zip(output_names, values)),)
    named.recompile()
    return named


COMPUTE_OPS = frozenset({"CONV_2D", "CONV_3D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "BATCH_MATMUL",
                         "TRANSPOSE_CONV"})
_LABELS = {(8, 8): "int8", (16, 8): "w8a16", (None, 8): "w8"}  # (activation bits, weight bits) -> compute dtype
_BITS = {"INT8": 8, "UINT8": 8, "INT16": 16}


class TFLiteConverter(Converter):
    """Options: strict_export (litert-torch's torch.export mode: false, true or "auto")."""

    format = "tflite"
    calibrated = frozenset({"int8"})
    calibration_methods = frozenset({"minmax"})  # PT2E observers; the quantizer's default is a histogram one
    mixable = frozenset({"int8"})
    quantized_io = frozenset({"int8", "uint8"})  # runtimes.litert.fed / _real
    keep_in = frozenset({"fp32"})
    refusals = {
        "fp16": "litert-torch cannot lower an fp16 module (tfl.pad in fp16 fails to legalize)",
        "w8": "not wired up: PT2E dynamic quantization quantizes activations at run time (not weight-only)",
        "w8a16": "litert-torch's PT2E quantizer offers int8 activations only",
    }
    library = "litert-torch"

    def default_options(self) -> dict[str, Any]:
        return {"strict_export": False}

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "ai-edge-litert": package_version("ai-edge-litert")}

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path,
               calibration: list[dict[str, np.ndarray]] | None = None) -> None:
        import litert_torch

        from edgebench.models.source import example_input

        example = example_input(ref)
        if len(ref.inputs) != 1:
            raise NotImplementedError("tflite: only single-input models are wired up (example_input gives one tensor)")
        extra = {}
        if precision == "int8":
            model, extra["quant_config"] = pt2e_int8(model, example, [c[ref.inputs[0].name] for c in calibration or []],
                                                     options.get("float_layers", ()))
        wrapped = named_io(model, [t.name for t in ref.inputs], [t.name for t in ref.outputs]).eval()
        edge = litert_torch.convert(wrapped, sample_kwargs={ref.inputs[0].name: example},
                                    strict_export=options["strict_export"], **extra)
        edge.export(str(out))

    def compute_dtypes(self, out: Path) -> dict[str, int]:
        """Conv/matmul operators by the types of their input and filter tensors (a filter made by DEQUANTIZE
        counts as its source's type): int8, w8a16, w8 (int8 filter, float input), else the float type."""
        from ai_edge_litert import schema_py_generated as schema

        types = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
        model = schema.Model.GetRootAs(Path(out).read_bytes(), 0)
        counts: Counter = Counter()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            ops = [graph.Operators(i) for i in range(graph.OperatorsLength())]
            names = [_op_name(model, op) for op in ops]
            made_by = {op.Outputs(j): i for i, op in enumerate(ops) for j in range(op.OutputsLength())}

            def source_type(tensor: int) -> str:
                maker = made_by.get(tensor)
                if maker is not None and names[maker] == "DEQUANTIZE":
                    tensor = ops[maker].Inputs(0)
                return types.get(graph.Tensors(tensor).Type(), "?")

            for op, name in zip(ops, names):
                if name in COMPUTE_OPS:
                    act, weight = graph.Tensors(op.Inputs(0)).Type(), source_type(op.Inputs(1))
                    key = (_BITS.get(types.get(act, "?")), _BITS.get(weight))
                    float_name = types.get(act, "?").lower()
                    counts[_LABELS.get(key) or (float_name if key == (None, None) else f"w{key[1]}a{key[0]}")] += 1
        return dict(counts)

    def op_census(self, out: Path) -> dict[str, int]:
        """Operator codes of every subgraph, read from the flatbuffer with LiteRT's schema module."""
        from ai_edge_litert import schema_py_generated as schema

        model = schema.Model.GetRootAs(Path(out).read_bytes(), 0)
        counts: Counter = Counter()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for i in range(graph.OperatorsLength()):
                counts[_op_name(model, graph.Operators(i))] += 1
        return dict(counts)

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """The default signature's inputs and outputs, as LiteRT's Interpreter reads them."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(out))
        runner = interpreter.get_signature_runner()
        spec = lambda name, d: TensorSpec(name, tuple(int(x) for x in d["shape_signature"]), d["dtype"].__name__)  # noqa: E731
        return (tuple(spec(k, d) for k, d in runner.get_input_details().items()),
                tuple(spec(k, d) for k, d in runner.get_output_details().items()))


def _op_name(model, op) -> str:
    """The builtin operator name of one operator (CUSTOM:<code> for custom ones)."""
    from ai_edge_litert import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    code = model.OperatorCodes(op.OpcodeIndex())
    builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
    name = names.get(builtin, f"BUILTIN_{builtin}")
    return "CUSTOM:" + (code.CustomCode() or b"?").decode() if name == "CUSTOM" else name


def _data_first_quantizer(float_layers=()):
    """litert-torch's PT2EQuantizer, except that a torch.cat shares the observer of its first input that is
    not a zero padding frame (`x[:1] * 0.0`, the 2D-lowered form's time padding) instead of input 0's.

    TFLite's int8 CONCATENATION needs one scale for all inputs; the stock annotation takes input 0's
    observer, and when input 0 is a padding frame it has seen only zeros: the whole clip was then clipped
    to [0, 2^-12] (logits 16x too small, PSNR 12 dB against 44 dB for the same PT2E module in torch).
    Zeros lose nothing under the data's scale (min-max ranges always hold 0).
    """
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer
    from litert_torch.quantize.pt2e_quantizer_utils import get_input_act_qspec
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

    aten = torch.ops.aten
    # ops whose output keeps its input's scale: the views, and the average pool (TFLite's int8 AVERAGE_POOL_2D
    # needs one scale in and out; litert-torch annotates only the adaptive pool)
    views = {aten.transpose.int, aten.flatten.using_ints, aten.view.default, aten.reshape.default,
             aten.permute.default, aten.unflatten.int, aten.slice.Tensor, aten.avg_pool2d.default}

    def zero_frame(model, node) -> bool:
        """`x * 0.0` (the quantizer has made the 0.0 a tensor attribute by now)."""
        if not isinstance(node, torch.fx.Node) or node.target != aten.mul.Tensor:
            return False
        factor = node.args[1]
        if isinstance(factor, torch.fx.Node) and factor.op == "get_attr":
            factor = functools.reduce(getattr, factor.target.split("."), model)
        return isinstance(factor, (int, float, torch.Tensor)) and bool((torch.as_tensor(factor) == 0).all())

    def observed(node):
        """The node itself or, through views, the producer whose output is observed (None if there is none)."""
        while isinstance(node, torch.fx.Node):
            made = node.meta.get("quantization_annotation")
            if made is not None and made.output_qspec is not None:
                return node
            node = node.args[0] if node.target in views and node.args else None
        return None

    class DataFirst(PT2EQuantizer):
        def _annotate_for_static_quantization_config(self, model):
            """The global config on every node outside `float_layers`. (set_module_name takes no None config, and
            its name filter reads nn_module_stack's keys as `L__self___<path with _>` where torch 2.14 writes
            `L__self__<dotted path>`: the module paths of the values decide here.)"""
            return self._annotate_all_static_patterns(model, self.global_config, outside_layers(float_layers))

        def annotate(self, model):
            model = super().annotate(model)
            for node in model.graph.nodes:  # a padding frame keeps its source's scale (converted as zeros of it)
                source = observed(node.args[0]) if zero_frame(model, node) else None
                if source is not None:
                    made = node.meta["quantization_annotation"]
                    made.input_qspec_map[node.args[0]] = SharedQuantizationSpec(source)
                    made.output_qspec = SharedQuantizationSpec(source)
            for node in model.graph.nodes:
                if node.op != "call_function" or node.target != aten.cat.default:
                    continue
                inputs = [i for i in node.args[0] if isinstance(i, torch.fx.Node)]
                first = next((i for i in inputs if not zero_frame(model, i)), inputs[0])
                source = observed(first)  # its scale, unchanged: a requantization across views fails to convert
                own = SharedQuantizationSpec(source) if source is not None else get_input_act_qspec(self.global_config)
                shared = SharedQuantizationSpec((first, node))
                node.meta["quantization_annotation"] = QuantizationAnnotation(
                    input_qspec_map={i: own if i is first else shared for i in inputs}, output_qspec=shared,
                    _annotated=True)
            return model

    return DataFirst()


def pt2e_int8(model: nn.Module, example, clips: list[np.ndarray], float_layers=()):
    """litert-torch's PT2E static int8 quantization, min-max observed over `clips`, `float_layers` (module
    paths) left float: (quantized module, QuantConfig)."""
    import torch
    from litert_torch.quantize.pt2e_quantizer import get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import allow_exported_model_train_eval
    from torchao.quantization.pt2e.observer import MinMaxObserver
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    if not clips:
        raise ValueError("tflite int8: no calibration clips")
    config = get_symmetric_quantization_config(is_per_channel=True)
    act = replace(config.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    quantizer = _data_first_quantizer(module_paths(model, float_layers))
    quantizer.set_global(replace(config, input_activation=act, output_activation=act))
    prepared = prepare_pt2e(torch.export.export(model, (example,)).module(), quantizer)
    with torch.no_grad():
        for clip in clips:
            prepared(torch.from_numpy(clip))
    quantized = convert_pt2e(prepared, fold_quantize=False)
    allow_exported_model_train_eval(quantized)  # NamedIO's .eval() reaches it
    return quantized, QuantConfig(pt2e_quantizer=quantizer)
