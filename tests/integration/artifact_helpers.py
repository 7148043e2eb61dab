"""Test artifacts made in-process with the real converters, from any module (a changed weight, a NaN).

Each (ref, format, precision, variant) is exported once per test process into one temporary folder.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import torch

from edgebench.converters.registry import get_converter
from edgebench.records import PASSED, Artifact, ModelRef
from edgebench.models.source import build_module

_DIR = Path(tempfile.mkdtemp(prefix="edgebench-test-artifacts-"))
atexit.register(shutil.rmtree, _DIR, True)
_CACHE: dict[tuple, Artifact] = {}


def export(module: torch.nn.Module, ref: ModelRef, fmt: str, precision: str, path: Path) -> None:
    """Write `module` to `path` with the format's converter and its default options."""
    converter = get_converter(fmt)
    converter.export(module, ref, precision, converter.merge_options(None), path)


def wrap(ref: ModelRef, fmt: str, precision: str, path: Path) -> Artifact:
    return Artifact(model=ref.name, format=fmt, precision=precision, status=PASSED, path=str(path),
                    inputs=ref.inputs, outputs=ref.outputs)


def make_artifact(ref: ModelRef, fmt: str, precision: str = "fp32", module: torch.nn.Module | None = None,
                  variant: str = "") -> Artifact:
    """The artifact of `module` (default build_module(ref)), exported once; `variant` names a modified module."""
    key = (ref, fmt, precision, variant)
    if key not in _CACHE:
        path = _DIR / f"{ref.name}-{variant or 'base'}-{precision}{get_converter(fmt).suffix}"
        export(module if module is not None else build_module(ref), ref, fmt, precision, path)
        _CACHE[key] = wrap(ref, fmt, precision, path)
    return _CACHE[key]


def scratch_dir() -> Path:
    """A folder for files a test writes by hand (corrupt copies, edited graphs)."""
    path = _DIR / "scratch"
    path.mkdir(exist_ok=True)
    return path
