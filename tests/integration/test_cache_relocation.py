"""The artifact cache survives moving: a copied output folder runs from its cache, a damaged entry is rebuilt."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from edgebench import api
from tests.conftest import SMALL_SHAPE

CONFIG = "formats: {onnx: [fp32, int8]}\nruntimes: [torch, onnxruntime]\n"  # int8: the calibration set moves too


def _run(out: Path, parity: bool = True):
    config = out.parent / "config.yaml"
    config.write_text(CONFIG)
    return api.run(config=config, input_shape=SMALL_SHAPE, out=out, bench=False, parity=parity)


def test_a_copied_output_folder_hits_its_cache_and_a_truncated_file_is_rebuilt(tmp_path, caplog):
    first = _run(tmp_path / "first")
    assert [(a.format, a.precision) for a in first.artifacts] == [("onnx", "fp32"), ("onnx", "int8")]
    assert all(a.ok and not a.cached for a in first.artifacts)

    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "first", moved, symlinks=True)  # the first folder stays: its files must not be used
    again = _run(moved)
    assert all(a.ok and a.cached for a in again.artifacts), [(a.format, a.reason) for a in again.artifacts]
    assert all(Path(a.path).is_relative_to(moved / "cache") and Path(a.path).exists() for a in again.artifacts)
    assert [a.sha256 for a in again.artifacts] == [a.sha256 for a in first.artifacts]
    assert {p.status for p in again.parity} == {"passed"} and len(again.parity) == 2  # the moved files load and run

    victim = next(a for a in again.artifacts if a.format == "onnx" and a.precision == "fp32")
    data = Path(victim.path).read_bytes()
    Path(victim.path).write_bytes(data[: len(data) // 2])
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="edgebench.converters.export"):
        third = _run(moved, parity=False)
    warnings = [r.getMessage() for r in caplog.records if "artifact cache" in r.getMessage()]
    assert len(warnings) == 1 and "model.onnx changed since its export" in warnings[0], warnings
    assert "\n" not in warnings[0]
    rebuilt = next(a for a in third.artifacts if a.format == "onnx" and a.precision == "fp32")
    assert rebuilt.ok and not rebuilt.cached and rebuilt.path == victim.path
    assert Path(rebuilt.path).stat().st_size > len(data) // 2
    assert [a.cached for a in third.artifacts] == [False, True]
