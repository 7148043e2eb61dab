"""Core ML taps: the coreml-mil runtime executes the ML program op by op and keeps every value.

Scope: none. coremltools names MIL ops after TorchScript's value names (`input_5`, `out_1`), which
carry no module path, so Core ML taps are mapped by kind, shape and program order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.parity.taps.base import ArtifactTap
from edgebench.runtimes.base import resolve_threads
from edgebench.runtimes.coreml_mil import MilSession, load_program


def coreml_taps(path: str | Path, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """Every float op output of the program's main function, for one input, in program order."""
    program, spec = load_program(str(path))
    session = MilSession(program, spec, resolve_threads(0))
    return [ArtifactTap(op.name, op.op_type, value, "") for op, value in session.intermediates(inputs)
            if value.dtype.kind == "f"]
