"""Core ML: an ML program (.mlpackage folder) from coremltools, fp32 or fp16 compute precision, or w8.

w8 is coremltools.optimize's linear_quantize_weights of the fp32 program: per-channel symmetric int8
weights stored as constexpr dequantize ops (constexpr_affine_dequantize up to iOS17,
constexpr_blockwise_shift_scale from iOS18), float activations. `float_layers` keep their float weights:
an `op_name_configs` entry of None for each weight const coremltools named after the layer's parameter
(`model.layer1.0.conv1.0` -> `model_layer1_0_conv1_0_weight`).

The output stays the `logits` tensor: the class labels go into the model's user-defined metadata
(`labels`, a JSON list) rather than a ClassifierConfig, which would replace the tensor by a
label string and a label -> score dictionary that no other format produces and parity cannot compare.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgebench.converters.base import Converter
from edgebench.errors import UserError
from edgebench.records import ModelRef, TensorSpec
from edgebench.runtimes.coreml_mil import load_program

FRONTENDS = ("trace", "export")  # torch.jit.trace or torch.export: both convert this model
COMPUTE_OPS = frozenset({"conv", "conv_transpose", "linear", "matmul"})
_FLOAT_NAMES = {"fp16": "float16", "fp32": "float32", "fp64": "float64"}
_ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}


class CoreMLConverter(Converter):
    """Options: minimum_deployment_target (a coremltools target name, iOS16), frontend (trace | export).
    Inputs and outputs stay float32 at both precisions; fp16 casts inside the program."""

    format = "coreml"
    refusals = {
        "int8": "coremltools' linear_quantize_activations calibrates by MLModel.predict (ModelDebugger.step), "
                "which needs macOS",
        "w8a16": "coremltools quantizes activations to 8 bits only",
    }
    mixable = frozenset({"w8"})
    keep_in = frozenset({"fp32"})
    library = "coremltools"

    def default_options(self) -> dict[str, Any]:
        return {"minimum_deployment_target": "iOS16", "frontend": "trace"}

    def check_options(self, options: dict[str, Any]) -> None:
        if options["frontend"] not in FRONTENDS:
            raise UserError(f"coreml: option frontend must be one of {', '.join(FRONTENDS)}, not '{options['frontend']}'")

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path,
               calibration=None) -> None:
        import coremltools as ct
        import torch

        from edgebench.models.source import example_input

        target = getattr(ct.target, options["minimum_deployment_target"], None)
        if target is None:
            raise UserError(f"coreml: unknown minimum_deployment_target '{options['minimum_deployment_target']}'")
        example = example_input(ref)
        with torch.no_grad():
            if options["frontend"] == "trace":  # only the converter's input: parity checks what comes out
                source = torch.jit.trace(model, (example,), check_trace=False)
            else:
                source = torch.export.export(model, (example,)).run_decompositions({})
        mlmodel = ct.convert(
            source,
            inputs=[ct.TensorType(name=t.name, shape=t.shape, dtype=np.float32) for t in ref.inputs],
            outputs=[ct.TensorType(name=t.name, dtype=np.float32) for t in ref.outputs],
            convert_to="mlprogram",
            minimum_deployment_target=target,
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
        )
        if precision == "w8":
            mlmodel = quantize_weights(mlmodel, options.get("float_layers", ()))
        mlmodel.short_description = f"{ref.name} ({ref.provenance}), {precision}"
        meta = mlmodel.user_defined_metadata
        meta["edgebench.model"] = ref.name
        meta["edgebench.weights_sha256"] = ref.weights_sha256
        if ref.labels:
            meta["labels"] = json.dumps(list(ref.labels))
        mlmodel.save(str(out))

    def _spec(self, out: Path):
        import coremltools as ct

        return ct.models.MLModel(str(out), skip_model_load=True).get_spec()

    def op_census(self, out: Path) -> dict[str, int]:
        """MIL op types of every function and block of the saved program, `const` (weights) left out."""
        spec = self._spec(out)
        counts: Counter = Counter()
        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                _count_ops(block, counts)
        counts.pop("const", None)
        return dict(counts)

    def compute_dtypes(self, out: Path) -> dict[str, int]:
        """conv/linear/matmul ops by their weight and activation: `w8` (int8 weight from a constexpr
        dequantize op), `int8` (that, and an activation from a dequantize op), else the weight's float dtype."""
        program, _ = load_program(str(out))
        counts: Counter = Counter()
        for function in program.functions.values():
            for op in function.operations:
                if op.op_type in COMPUTE_OPS:
                    counts[_compute_dtype(op)] += 1
        return dict(counts)

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        desc = self._spec(out).description
        return tuple(_feature(f) for f in desc.input), tuple(_feature(f) for f in desc.output)


def quantize_weights(mlmodel, float_layers=()):
    """coremltools.optimize's per-channel symmetric int8 weight quantization of a float program, the weights of
    `float_layers` (module paths) left float."""
    import coremltools.optimize as cto

    config = cto.coreml.OptimizationConfig(
        global_config=cto.coreml.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8",
                                                          granularity="per_channel", weight_threshold=0),
        op_name_configs={name: None for name in layer_weights(mlmodel, float_layers)})
    return cto.coreml.linear_quantize_weights(mlmodel, config)


def layer_weights(mlmodel, layers) -> list[str]:
    """The weight consts of each layer: coremltools names a parameter's const after its module path with `_`
    for `.` (`model_fc_weight`, `model_fc_weight_to_fp16`); a layer with none is a ValueError."""
    consts = [op.name for function in mlmodel._mil_program.functions.values()  # noqa: SLF001 - the program converted
              for op in function.operations if op.op_type == "const"]
    found = []
    for layer in layers:
        prefix = layer.replace(".", "_") + "_weight"
        names = [c for c in consts if c == prefix or c.startswith(prefix + "_")]
        if not names:
            raise ValueError(f"float_layers: no weight const named {prefix}* in the Core ML program")
        found += names
    return found


def _compute_dtype(op) -> str:
    """One compute op's dtype label from the ops that produce its weight and its activation."""
    from coremltools.converters.mil.mil import types

    weight = op.inputs.get("weight", op.inputs.get("y"))
    x = op.inputs["x"]
    source = weight.op if weight is not None else None
    if source is not None and source.op_type.startswith("constexpr_"):
        data = source.inputs.get("quantized_data", source.inputs.get("data"))
        bits = data.dtype.get_bitwidth() if data is not None and types.is_int(data.dtype) else None
        act = x.op.op_type == "dequantize" if x.op is not None else False
        return f"{'int' if act else 'w'}{bits}" if bits else source.op_type
    dtype = (weight if weight is not None else x).dtype
    return _FLOAT_NAMES.get(types.builtin_to_string(dtype), types.builtin_to_string(dtype))


def _count_ops(block, counts: Counter) -> None:
    for op in block.operations:
        counts[op.type] += 1
        for inner in op.blocks:
            _count_ops(inner, counts)


def _feature(feature) -> TensorSpec:
    from coremltools.proto import FeatureTypes_pb2

    array = feature.type.multiArrayType
    dtype = FeatureTypes_pb2.ArrayFeatureType.ArrayDataType.Name(array.dataType)
    return TensorSpec(feature.name, tuple(int(d) for d in array.shape), _ARRAY_DTYPES.get(dtype, dtype.lower()))


def labels_of(path: Path) -> tuple[str, ...]:
    """The class labels stored in a saved package's metadata (empty when it has none)."""
    import coremltools as ct

    meta = ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata
    return tuple(json.loads(meta["labels"])) if "labels" in meta else ()
