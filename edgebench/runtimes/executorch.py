"""ExecuTorch's compiled runtime (the pybindings' `_C` extension): a .pte on the CPU, XNNPACK inside."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, name_outputs, resolve_threads

XNNPACK_BACKEND = "XnnpackBackend"  # the delegate id the converter's partitioner writes into the .pte


def _pybindings():
    """The compiled runtime itself, imported without `executorch.runtime` and `portable_lib`.

    Both wrap the same `_C` extension, but `portable_lib` imports `executorch.exir` (the whole compiler,
    about 5 s) for one warning class: every parity and benchmark child would pay that for nothing.
    torch comes first: the extension links against libtorch.
    """
    import torch  # noqa: F401
    from executorch.extension.pybindings import _C

    return _C


class ExecuTorchSession(Session):
    """The program's `forward` method, fed by position in the model's input order (a .pte keeps no names)."""

    def __init__(self, program, method, ref: ModelRef, options: dict[str, Any]):
        self.program = program  # owns the method's memory
        self.method = method
        self.inputs = [(t.name, np.dtype(t.dtype)) for t in ref.inputs]
        self.output_names = [t.name for t in ref.outputs]
        self.options = options

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=dtype)) for n, dtype in self.inputs]
        return name_outputs([v.numpy().copy() for v in self.method(args)], self.output_names)

    def close(self) -> None:
        self.method = self.program = None


class ExecuTorchRuntime(Runtime):
    """`executorch`: `_load_program(path).load_method("forward")` (what `executorch.runtime.Runtime` does);
    threads through the pybindings' process-wide threadpool (`_unsafe_reset_threadpool`), which XNNPACK
    takes when the method loads, read back with `_threadpool_get_thread_count`."""

    name = "executorch"
    library = "executorch"

    def unavailable_reason(self) -> str | None:
        try:
            pybindings = _pybindings()
        except (ImportError, OSError) as e:  # e.g. the compiled runtime built against another torch
            return f"executorch runtime cannot be loaded ({type(e).__name__}: {e})"
        if not pybindings._is_available(XNNPACK_BACKEND):  # noqa: SLF001
            return f"executorch runtime has no {XNNPACK_BACKEND} registered"
        return None

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        pybindings = _pybindings()
        threads = resolve_threads(threads)
        # Reset before the method loads: the XNNPACK delegate binds the pool when it builds its runtime.
        pybindings._unsafe_reset_threadpool(threads)  # noqa: SLF001 - the only thread control the pybindings offer
        program = pybindings._load_program(  # noqa: SLF001
            str(artifact.path), program_verification=pybindings.Verification.InternalConsistency)
        names = {program.get_method_name(i) for i in range(program.num_methods())}
        if "forward" not in names:
            raise RuntimeError(f"{artifact.path} has no forward method (it has {', '.join(sorted(names)) or 'none'})")
        options = {
            "threads": threads,
            "threadpool_threads": pybindings._threadpool_get_thread_count(),  # noqa: SLF001 - read back
            "backends": pybindings._get_registered_backend_names(),  # noqa: SLF001
        }
        return ExecuTorchSession(program, program.load_method("forward"), ref, options)
