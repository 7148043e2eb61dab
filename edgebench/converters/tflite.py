"""TFLite: litert-torch (the renamed ai-edge-torch) lowers the module to a .tflite flatbuffer, fp32 only.

fp32 only, measured (docs/converters.md): LiteRT's builtin CONV_3D kernel takes float32 input and
filter only, litert-torch cannot lower an fp16 module (tfl.pad in fp16 fails to legalize), and both
PT2E dynamic quantization and ai-edge-quantizer leave every CONV_3D in float32 (they quantize the
single FULLY_CONNECTED), so an "fp16" or "int8" file would be a mislabelled fp32 one.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from edgebench.converters.base import Converter, package_version
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


class TFLiteConverter(Converter):
    """Options: strict_export (litert-torch's torch.export mode: false, true or "auto")."""

    format = "tflite"
    suffix = ".tflite"
    library = "litert-torch"

    def default_options(self) -> dict[str, Any]:
        return {"strict_export": False}

    def versions(self) -> dict[str, str]:
        return {**super().versions(), "ai-edge-litert": package_version("ai-edge-litert")}

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path) -> None:
        import litert_torch

        from edgebench.models.source import example_input

        example = example_input(ref)
        if len(ref.inputs) != 1:
            raise NotImplementedError("tflite: only single-input models are wired up (example_input gives one tensor)")
        wrapped = NamedIO(model, [t.name for t in ref.outputs]).eval()
        edge = litert_torch.convert(wrapped, sample_kwargs={ref.inputs[0].name: example},
                                    strict_export=options["strict_export"])
        edge.export(str(out))

    def op_census(self, out: Path) -> dict[str, int]:
        """Operator codes of every subgraph, read from the flatbuffer with LiteRT's schema module."""
        from ai_edge_litert import schema_py_generated as schema

        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        model = schema.Model.GetRootAs(Path(out).read_bytes(), 0)
        counts: Counter = Counter()
        for s in range(model.SubgraphsLength()):
            graph = model.Subgraphs(s)
            for i in range(graph.OperatorsLength()):
                code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
                builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
                name = names.get(builtin, f"BUILTIN_{builtin}")
                if name == "CUSTOM":
                    name = "CUSTOM:" + (code.CustomCode() or b"?").decode()
                counts[name] += 1
        return dict(counts)

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """The default signature's inputs and outputs, as LiteRT's Interpreter reads them."""
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(out))
        runner = interpreter.get_signature_runner()
        spec = lambda name, d: TensorSpec(name, tuple(int(x) for x in d["shape_signature"]), d["dtype"].__name__)  # noqa: E731
        return (tuple(spec(k, d) for k, d in runner.get_input_details().items()),
                tuple(spec(k, d) for k, d in runner.get_output_details().items()))
