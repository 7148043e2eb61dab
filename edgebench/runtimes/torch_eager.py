"""PyTorch eager: runs the export-friendly module itself, the fp32 reference every artifact is judged against."""

from __future__ import annotations

import numpy as np

from edgebench.catalogue import EAGER
from edgebench.packages import package_version
from edgebench.records import PASSED, Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, name_outputs, resolve_threads


def eager_artifact(ref: ModelRef) -> Artifact:
    """The pseudo-artifact for the eager baseline: the eager format ("pytorch"), fp32, nothing on disk."""
    return Artifact(
        model=ref.name, format=EAGER.format, precision="fp32", status=PASSED,
        versions={"torch": package_version("torch")}, inputs=ref.inputs, outputs=ref.outputs,
    )


class TorchModuleSession(Session):
    """Any callable torch module (eager or TorchScript): numpy in, numpy out, under inference mode."""

    def __init__(self, module, ref: ModelRef, threads: int, options: dict):
        import torch

        self.module = module
        self.input_names = [t.name for t in ref.inputs]
        self.output_names = [t.name for t in ref.outputs]
        torch.set_num_threads(threads)
        self.options = {"threads": threads, **options}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in self.input_names]
        with torch.inference_mode():
            out = self.module(*args)
        values = out if isinstance(out, (tuple, list)) else (out,)
        return name_outputs([v.detach().cpu().numpy() for v in values], self.output_names)


class TorchEagerRuntime(Runtime):
    """`torch`: build_module(ref) run as is: the unlowered 3D form, what a PyTorch user runs (the lowered
    one is for artifacts and is slower in eager)."""

    name = EAGER.runtime
    library = "torch"

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        from edgebench.models.source import build_module

        return TorchModuleSession(build_module(ref), ref, resolve_threads(threads), {})
