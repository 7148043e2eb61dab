"""Core ML: an ML program (.mlpackage folder) from coremltools, fp32 or fp16 compute precision.

The output stays the `logits` tensor: the class labels go into the model's user-defined metadata
(`labels`, a JSON list) rather than a ClassifierConfig, which would replace the tensor by a
label string and a label -> score dictionary that no other format produces and parity cannot compare.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from edgebench.converters.base import Converter
from edgebench.errors import UserError
from edgebench.records import ModelRef, TensorSpec

FRONTENDS = ("trace", "export")  # torch.jit.trace or torch.export: both convert this model
_ARRAY_DTYPES = {"FLOAT32": "float32", "FLOAT16": "float16", "DOUBLE": "float64", "INT32": "int32"}


class CoreMLConverter(Converter):
    """Options: minimum_deployment_target (a coremltools target name, iOS16), frontend (trace | export).
    Inputs and outputs stay float32 at both precisions; fp16 casts inside the program."""

    format = "coreml"
    precisions = frozenset({"fp32", "fp16"})
    suffix = ".mlpackage"
    library = "coremltools"

    def default_options(self) -> dict[str, Any]:
        return {"minimum_deployment_target": "iOS16", "frontend": "trace"}

    def check_options(self, options: dict[str, Any]) -> None:
        if options["frontend"] not in FRONTENDS:
            raise UserError(f"coreml: option frontend must be one of {', '.join(FRONTENDS)}, not '{options['frontend']}'")

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path) -> None:
        import coremltools as ct
        import numpy as np
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

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        desc = self._spec(out).description
        return tuple(_feature(f) for f in desc.input), tuple(_feature(f) for f in desc.output)


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
