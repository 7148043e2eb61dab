"""Runtime name -> instance; adding a runtime is one module and one line here."""

from __future__ import annotations

from typing import Any

from edgebench.errors import UserError
from edgebench.runtimes.base import Runtime
from edgebench.runtimes.coreml import CoreMLRuntime
from edgebench.runtimes.coreml_mil import CoreMLMilRuntime
from edgebench.runtimes.executorch import ExecuTorchRuntime
from edgebench.runtimes.litert import LiteRTRuntime
from edgebench.runtimes.onnxruntime import OnnxRuntimeRuntime
from edgebench.runtimes.torch_eager import TorchEagerRuntime
from edgebench.runtimes.torchscript import TorchScriptRuntime

RUNTIMES: dict[str, Runtime] = {
    r.name: r
    for r in (TorchEagerRuntime(), TorchScriptRuntime(), OnnxRuntimeRuntime(), LiteRTRuntime(),
              CoreMLRuntime(), CoreMLMilRuntime(), ExecuTorchRuntime())
}


def get_runtime(name: str, options: dict[str, Any] | None = None) -> Runtime:
    """The registered runtime; with `options`, a new instance configured with them (e.g. {"xnnpack": False})."""
    if name not in RUNTIMES:
        raise UserError(f"unknown runtime '{name}'; known runtimes: {', '.join(RUNTIMES)}")
    if not options:
        return RUNTIMES[name]
    try:
        return type(RUNTIMES[name])(**options)
    except TypeError:
        raise UserError(f"runtime '{name}': unknown option(s) {', '.join(sorted(options))}") from None


def runtimes_for(fmt: str) -> list[Runtime]:
    """Every registered runtime that can execute artifacts of format `fmt`, in registry order."""
    return [r for r in RUNTIMES.values() if fmt in r.formats]
