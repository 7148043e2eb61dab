"""TorchScript: torch.jit.trace of the export-friendly module, frozen by default, saved as .pt (or .ptl)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from torch import nn

from edgebench.converters.base import Converter
from edgebench.records import ModelRef, TensorSpec

# Graph plumbing, not compute: left out of the census so formats compare.
PLUMBING = frozenset({"prim::Constant", "prim::ListConstruct", "prim::TupleConstruct", "prim::TupleUnpack",
                      "prim::GetAttr", "prim::ListUnpack"})


class TorchScriptConverter(Converter):
    """Options: freeze (inline weights, fold constants), optimize_for_inference, lite (.ptl for the
    lite interpreter, after optimize_for_mobile unless optimize_for_mobile is false), check_trace
    (trace twice and compare: about 8 s more on the full model)."""

    format = "torchscript"
    library = "torch"
    keeps_io_names = False
    _AO = ("not wired up: torch 2.14 still has fbgemm/x86 quantized Conv3d/Conv2d kernels (torch.ao.nn.quantized), "
           "but their eager/FX quantization flow is deprecated for torchao's PT2E, which lowers through Inductor, "
           "not TorchScript")
    refusals = {"int8": _AO, "w8": _AO, "w8a16": "torch's quantized kernels take 8-bit activations only",
                "fp16": "not wired up (the Core ML converter covers fp16)"}

    def default_options(self) -> dict[str, Any]:
        return {"freeze": True, "optimize_for_inference": False, "lite": False, "optimize_for_mobile": True,
                "check_trace": True}

    def filename(self, options: dict[str, Any]) -> str:
        return "model.ptl" if options.get("lite") else "model.pt"

    def export(self, model: nn.Module, ref: ModelRef, precision: str, options: dict[str, Any], out: Path) -> None:
        import torch

        from edgebench.models.source import example_input

        with torch.no_grad():
            module = torch.jit.trace(model, (example_input(ref),), check_trace=bool(options["check_trace"]))
        if options["lite"] and options["optimize_for_mobile"]:
            from torch.utils.mobile_optimizer import optimize_for_mobile

            module = optimize_for_mobile(module)  # freezes too; needs a torch built with XNNPACK
        elif options["freeze"] or options["optimize_for_inference"]:
            module = torch.jit.freeze(module.eval())
        if options["optimize_for_inference"]:
            module = torch.jit.optimize_for_inference(module)
        if options["lite"]:
            module._save_for_lite_interpreter(str(out))  # noqa: SLF001 - the documented way to write .ptl
        else:
            module.save(str(out))

    def _load(self, out: Path):
        import torch

        return torch.jit.load(str(out), map_location="cpu")

    def op_census(self, out: Path) -> dict[str, int]:
        graph = self._load(out).inlined_graph
        return dict(Counter(n.kind() for n in graph.nodes() if n.kind() not in PLUMBING))

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        """TorchScript keeps no tensor names or shapes: only the counts are read back (names left empty)."""
        graph = self._load(out).graph
        n_in = len(list(graph.inputs())) - 1  # the first input is `self`
        n_out = sum(len(list(o.node().inputs())) if o.node().kind() == "prim::TupleConstruct" else 1
                    for o in graph.outputs())
        return tuple(TensorSpec("", ()) for _ in range(n_in)), tuple(TensorSpec("", ()) for _ in range(n_out))
