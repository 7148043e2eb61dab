"""TorchScript: torch.jit.load of the saved .pt, run on the CPU."""

from __future__ import annotations

import warnings

from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, resolve_threads
from edgebench.runtimes.torch_eager import TorchModuleSession


class TorchScriptRuntime(Runtime):
    """`torchscript`: the .pt file, loaded with torch.jit.load (map_location cpu)."""

    name = "torchscript"
    library = "torch"

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        import torch

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # "torch.jit.load is deprecated": the format is the point
            module = torch.jit.load(artifact.path, map_location="cpu").eval()
        return TorchModuleSession(module, ref, resolve_threads(threads), {})
