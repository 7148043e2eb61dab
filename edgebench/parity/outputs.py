"""Kept outputs: what one (artifact, runtime) produced on the run's clips, saved apart from any verdict.

Polygraphy keeps each runner's RunResults and compares them separately; so do we. A run writes every
session's outputs to `<run>/outputs/<key>.npz`, the key a hash of what decides them (the artifact's
bytes, the runtime and its options, the inputs), so the same run twice finds the same file. A verdict
is then a pure function of a saved file, the reference and a tolerance (parity/verdict.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.config import stable_hash
from edgebench.records import atomic_path

META = "__edgebench__"  # the npz entry holding what made the outputs (JSON), beside the named outputs


def outputs_key(artifact_sha256: str, runtime: str, options: dict[str, Any], inputs: dict[str, np.ndarray],
                device: str = "local") -> str:
    """The content key of one session's outputs: artifact bytes, runtime and options, device, input values."""
    digest = stable_hash({name: _array_sha(v) for name, v in sorted(inputs.items())})
    return stable_hash({"artifact": artifact_sha256, "runtime": runtime, "options": options, "device": device,
                        "inputs": digest})[:20]


def _array_sha(value: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()


def save_outputs(folder: str | Path, key: str, outputs: dict[str, np.ndarray], meta: dict[str, Any]) -> Path:
    """Write `<folder>/<key>.npz` (outputs as named, plus `meta`) under a temporary name, then rename."""
    path = Path(folder) / f"{key}.npz"
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **{name: np.asarray(v) for name, v in outputs.items()},
                     **{META: np.array(json.dumps(meta, sort_keys=True, default=str))})
    return path


def load_outputs(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The saved outputs ({name: clips x output shape}) and what made them."""
    with np.load(path, allow_pickle=True) as data:  # our own file: outputs of unequal shapes are object arrays
        outputs = {name: data[name] for name in data.files if name != META}
        meta = json.loads(str(data[META])) if META in data.files else {}
    return outputs, meta
