"""A sixth format made in a test, from one catalogue entry: `$EDGEBENCH_FORMATS=tests.integration.toy_format:TOY`.

A `.toy` file is the magic `TOY1` followed by `torch.save` of the pickled export-friendly module and its I/O
specs; the `toy` runtime runs that module, its tapper hooks every leaf module. The converter option
`scale_layer` multiplies one layer's weight by 1.5: a planted bug that parity must catch and localization name.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.catalogue import THREE_D, FormatEntry, Ref, none
from edgebench.converters.base import Converter
from edgebench.parity.taps.base import ArtifactTap
from edgebench.records import Artifact, ModelRef, TensorSpec
from edgebench.runtimes.base import Runtime, Session, name_outputs, resolve_threads

MAGIC = b"TOY1"

TOY = FormatEntry(
    name="toy", converter=Ref("tests.integration.toy_format:ToyConverter"),
    runtimes={"toy": Ref("tests.integration.toy_format:ToyRuntime")},
    precisions=("fp32",), default_precisions=("fp32",), export_form=THREE_D, suffixes=(".toy",),
    tapper=Ref("tests.integration.toy_format:toy_taps"), sniffer=Ref("tests.integration.toy_format:is_toy"),
    float_layers=none("a toy: it has only fp32"))


def _load(path: str | Path) -> dict:
    import torch

    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path}: not a toy file")
    return torch.load(io.BytesIO(data[4:]), weights_only=False)


def is_toy(path: Path) -> bool:
    return path.is_file() and path.open("rb").read(4) == MAGIC


class ToyConverter(Converter):
    """The module itself, pickled."""

    format = "toy"
    library = "torch"

    def default_options(self) -> dict[str, Any]:
        return {"scale_layer": ""}

    def export(self, model, ref: ModelRef, precision: str, options: dict[str, Any], out: Path,
               calibration=None) -> None:
        import torch

        if options["scale_layer"]:
            with torch.no_grad():
                model.get_submodule(options["scale_layer"]).weight.mul_(1.5)
        buffer = io.BytesIO()
        torch.save({"module": model, "inputs": ref.inputs, "outputs": ref.outputs}, buffer)
        Path(out).write_bytes(MAGIC + buffer.getvalue())

    def op_census(self, out: Path) -> dict[str, int]:
        module = _load(out)["module"]
        return dict(Counter(type(m).__name__ for m in module.modules() if not list(m.children())))

    def io_specs(self, out: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        saved = _load(out)
        return tuple(saved["inputs"]), tuple(saved["outputs"])


class ToySession(Session):
    def __init__(self, module, ref: ModelRef, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.module, self.ref, self.options = module, ref, {"threads": threads}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.no_grad():
            out = self.module(*(torch.from_numpy(np.ascontiguousarray(inputs[t.name])) for t in self.ref.inputs))
        return name_outputs([out.numpy()], [t.name for t in self.ref.outputs])


class ToyRuntime(Runtime):
    name = "toy"
    library = "torch"

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        return ToySession(_load(artifact.path)["module"].eval(), ref, resolve_threads(threads))


def toy_taps(path: str | Path, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """Every leaf module's output, named and scoped by its module path."""
    import torch

    module = _load(path)["module"].eval()
    taps: list[ArtifactTap] = []

    def hook(name: str):
        def fn(m, _args, out):
            op = "conv" if isinstance(m, torch.nn.modules.conv._ConvNd) else type(m).__name__  # torchvision's Conv3DSimple
            taps.append(ArtifactTap(name, op, out.detach().clone().numpy(), scope=name))
        return fn

    handles = [m.register_forward_hook(hook(name)) for name, m in module.named_modules()
               if name and not list(m.children())]
    with torch.no_grad():
        module(*(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))
    for h in handles:
        h.remove()
    return taps
