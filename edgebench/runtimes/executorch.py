"""ExecuTorch's Python runtime (executorch.runtime, the portable_lib pybindings): a .pte on the CPU, XNNPACK inside."""

from __future__ import annotations

from typing import Any

import numpy as np

from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session, name_outputs, resolve_threads

XNNPACK_BACKEND = "XnnpackBackend"  # the delegate id the converter's partitioner writes into the .pte


class ExecuTorchSession(Session):
    """The program's `forward` method, fed by position in the model's input order (a .pte keeps no names)."""

    def __init__(self, method, ref: ModelRef, options: dict[str, Any]):
        self.method = method
        self.inputs = [(t.name, np.dtype(t.dtype)) for t in ref.inputs]
        self.output_names = [t.name for t in ref.outputs]
        self.options = options

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=dtype)) for n, dtype in self.inputs]
        return name_outputs([v.numpy().copy() for v in self.method.execute(args)], self.output_names)

    def close(self) -> None:
        self.method = None


class ExecuTorchRuntime(Runtime):
    """`executorch`: Runtime.get().load_program(path).load_method("forward"); threads through the
    pybindings' process-wide threadpool (`_unsafe_reset_threadpool`), which XNNPACK takes when the method
    loads, read back with `_threadpool_get_thread_count`."""

    name = "executorch"
    formats = frozenset({"executorch"})
    library = "executorch"

    def unavailable_reason(self) -> str | None:
        try:
            from executorch.runtime import Runtime as ETRuntime

            backends = ETRuntime.get().backend_registry
        except (ImportError, OSError) as e:  # e.g. the compiled runtime built against another torch
            return f"executorch runtime cannot be loaded ({type(e).__name__}: {e})"
        if not backends.is_available(XNNPACK_BACKEND):
            return f"executorch runtime has no {XNNPACK_BACKEND} registered"
        return None

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        from executorch.extension.pybindings import portable_lib
        from executorch.runtime import Runtime as ETRuntime

        threads = resolve_threads(threads)
        # Reset before the method loads: the XNNPACK delegate binds the pool when it builds its runtime.
        portable_lib._unsafe_reset_threadpool(threads)  # noqa: SLF001 - the only thread control the pybindings offer
        runtime = ETRuntime.get()
        method = runtime.load_program(artifact.path).load_method("forward")
        if method is None:
            raise RuntimeError(f"{artifact.path} has no forward method")
        options = {
            "threads": threads,
            "threadpool_threads": portable_lib._threadpool_get_thread_count(),  # noqa: SLF001 - read back
            "backends": runtime.backend_registry.registered_backend_names,
        }
        return ExecuTorchSession(method, ref, options)
