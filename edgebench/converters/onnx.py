"""ONNX: torch.onnx.export(dynamo=True), weights inside the file unless they pass 1.5 GB."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from edgebench.converters.base import Converter, package_version
from edgebench.records import ModelRef, TensorSpec


class OnnxConverter(Converter):
    """Options: opset (18), dynamic_batch (axis 0 of every input and output is named `batch`),
    optimize (the exporter's onnxscript graph optimizer)."""

    format = "onnx"
    suffix = ".onnx"
    library = "onnx"

    def default_options(self) -> dict[str, Any]:
        return {"opset": 18, "dynamic_batch": True, "optimize": True}

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "onnxscript": package_version("onnxscript")}

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path) -> None:
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
