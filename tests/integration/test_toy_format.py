"""A sixth format from one catalogue entry (tests/integration/toy_format.py, no edgebench file edited) shows up
in planning, export, parity, localization, `check`, results.csv, report.html, `edgebench info` and a re-judge."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from edgebench import api
from edgebench.catalogue import PLUGINS_ENV
from edgebench.external import detect_format
from edgebench.cli import main
from edgebench.config import load_pipeline_config
from edgebench.converters.export import plan_artifacts
from edgebench.models.source import build_module
from edgebench.parity.localize import reference_taps
from tests.conftest import SMALL_SHAPE

SHAPE_ARG = ",".join(map(str, SMALL_SHAPE))


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setenv(PLUGINS_ENV, "tests.integration.toy_format:TOY")  # children inherit it


def planted_layer(ref) -> str:
    """The fourth conv of the reference's forward, by module path (localization names layers so)."""
    taps = reference_taps(build_module(ref), {"video": np.zeros(SMALL_SHAPE, np.float32)}, ["video"])
    return [t.name for t in taps if t.kind == "conv"][3]


def test_a_toy_format_from_one_catalogue_entry_goes_everywhere(toy, small_ref, tmp_path, capsys):
    layer = planted_layer(small_ref)
    config = tmp_path / "pipeline.yaml"
    config.write_text(f"formats: {{toy: [fp32], onnx: [fp32]}}\nruntimes: [torch, toy, onnxruntime]\n"
                      f"converter_options: {{toy: {{scale_layer: {layer}}}}}\nparity: {{random_clips: 2}}\n")
    assert [(f, p) for f, p, _ in plan_artifacts(load_pipeline_config(config))] == [("toy", "fp32"), ("onnx", "fp32")]

    run = api.run(config=config, input_shape=SMALL_SHAPE, out=tmp_path / "out", bench=False)  # latency: no news
    toy_artifact = next(a for a in run.artifacts if a.format == "toy")
    assert toy_artifact.ok and toy_artifact.path.endswith(".toy") and toy_artifact.op_census["ReLU"] > 0
    rows = run.rows().set_index(["format", "runtime"])
    assert rows.loc[("toy", "toy"), "status"] == "parity_failed"  # the planted bug, caught ...
    assert rows.loc[("toy", "toy"), "first_divergent_layer"] == layer  # ... and named
    assert rows.loc[("onnx", "onnxruntime"), "status"] == "passed"  # negative control: the same run's good format
    report = run.report_html.read_text()
    assert "toy fp32" in report and layer in report

    copy = tmp_path / "elsewhere.bin"  # no known suffix: the toy sniffer recognizes the content
    shutil.copy(toy_artifact.path, copy)
    assert detect_format(copy) == "toy"
    outcome = api.check(copy, runtimes=["toy"], input_shape=SMALL_SHAPE, out=tmp_path / "checks")
    assert [(p.runtime, p.status, p.first_divergent_layer) for p in outcome.parity] == [("toy", "parity_failed", layer)]

    main(["info", "--model", "resnet_mixed"])
    assert "format       toy: fp32 on toy, 3d form; layer taps: yes" in capsys.readouterr().out

    lenient = tmp_path / "lenient.yaml"  # the kept outputs and layer errors judged again by a rule that forgives all
    lenient.write_text("parity: {tolerances: {fp32: {min_cosine: -1.0}}}\n"
                       "localize: {jump_factor: 1.0e+12, rel_floor: {fp32: 100.0}}\n")
    main(["parity", "--rejudge", str(run.run_dir), "--config", str(lenient)])
    assert "toy fp32 toy: parity_failed -> passed" in capsys.readouterr().out
