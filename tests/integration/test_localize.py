"""Layer-wise localization: one weight of one conv altered in a real ONNX / TFLite / Core ML file is found
and named by its PyTorch module path (negative controls: the unaltered files pass and name nothing)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from edgebench.config import LocalizeConfig, PipelineConfig
from edgebench.converters.registry import get_converter
from edgebench.parity.localize import reference_taps
from tests import weight_edits
from tests.conftest import SMALL_SHAPE
from edgebench.models.source import build_module

SHAPE_ARG = ",".join(map(str, SMALL_SHAPE))
K = 5  # the k-th conv (0-based, in the reference's execution order) whose weight the tests alter


@pytest.fixture(scope="module")
def exported(small_ref, tmp_path_factory):
    """fp32 exports of the small resnet_mixed, in this process (the pipeline's child adds only start-up), each
    from the form its converter exports, recorded in Artifact.form as the pipeline does."""
    from edgebench.models.source import lowering_report
    from tests.integration.artifact_helpers import export, wrap

    folder = tmp_path_factory.mktemp("localize-artifacts")
    out = {}
    for fmt in ("onnx", "tflite", "coreml"):
        converter = get_converter(fmt)
        path = folder / f"model{converter.suffix}"
        export(build_module(small_ref, lowered=converter.lowered_form), small_ref, fmt, "fp32", path)
        out[fmt] = replace(wrap(small_ref, fmt, "fp32", path), form=lowering_report(small_ref, converter.lowered_form).form)
    return out


def conv_names(module) -> list[str]:
    taps = reference_taps(module, {"video": np.zeros(SMALL_SHAPE, np.float32)}, ["video"])
    return [t.name for t in taps if t.kind == "conv"]


def altered_copy(artifact, small_ref, tmp_path: Path) -> tuple[Path, str]:
    """A copy of the artifact with one weight of its K-th conv altered (tests/weight_edits.py), and its name."""
    from edgebench.models.lowering import LOWERED

    module = build_module(small_ref, lowered=artifact.form == LOWERED)
    name = conv_names(module)[K]
    return weight_edits.altered_copy(artifact.path, artifact.format, module, name, tmp_path / "altered"), name


def run_check(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from edgebench.cli import main

    monkeypatch.setattr(sys, "argv", ["edgebench", "check", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "pipeline.yaml"
    path.write_text("parity: {random_clips: 1}\n")
    return path


@pytest.mark.parametrize("fmt", ["onnx", "tflite", "coreml"])
def test_check_localize_names_the_altered_conv(fmt, exported, small_ref, one_clip, tmp_path, monkeypatch, capsys):
    artifact = exported[fmt]
    code, out = run_check(monkeypatch, capsys, artifact.path, "--input-shape", SHAPE_ARG, "--config", str(one_clip),
                          "--out", str(tmp_path / "ok"))
    assert code == 0, out  # the unaltered file passes
    assert "first divergent layer" not in out

    altered, name = altered_copy(artifact, small_ref, tmp_path)
    code, out = run_check(monkeypatch, capsys, str(altered), "--input-shape", SHAPE_ARG, "--config", str(one_clip),
                          "--out", str(tmp_path / "bad"), "--localize")
    assert code == 1, out
    assert f"first divergent layer {name} " in " ".join(out.split()), out


def test_parity_failure_in_a_run_carries_the_layer(exported, small_ref, tmp_path):
    """pipeline.parity_one localizes a failing row (localize.auto) and the report shows it."""
    from edgebench import pipeline
    from edgebench.records import PARITY_FAILED

    config = PipelineConfig(parity={"random_clips": 1}, formats={"onnx": ["fp32"]}, runtimes=["onnxruntime"])
    settings = pipeline.new_run(config, tmp_path)
    pm = pipeline.prepare_model(small_ref.name, settings, input_shape=SMALL_SHAPE)
    path, name = altered_copy(exported["onnx"], small_ref, tmp_path)
    artifact = replace(exported["onnx"], path=str(path))
    row = pipeline.parity_one(pm, artifact, "onnxruntime", settings)
    assert row.status == PARITY_FAILED
    assert row.first_divergent_layer == name
    assert f"first divergent layer {name}" in row.reason
    paths = pipeline.finish_run(settings, [pipeline.ModelResults(pm.ref, [artifact], [row])])
    html = Path(paths.report_html).read_text()
    assert "Localization: error against depth" in html and name in html
    import pandas as pd

    csv = pd.read_csv(paths.results_csv)
    assert list(csv["first_divergent_layer"].dropna()) == [name]


def test_torchscript_graph_taps_name_the_altered_conv(small_ref, tmp_path):
    """TorchScript keeps no module paths once frozen: the order mapping still names the conv (in process)."""
    import copy

    import torch

    from edgebench.parity.localize import localize
    from tests.integration.artifact_helpers import export, wrap

    x = {"video": np.random.default_rng(1).random(SMALL_SHAPE, dtype=np.float32)}
    module = build_module(small_ref)
    name = conv_names(module)[K]
    altered = copy.deepcopy(module)
    with torch.no_grad():
        weight = dict(altered.named_modules())[name].weight.view(-1)
        weight[weight.abs().argmax()] += weight_edits.SHARE * weight.abs().max()
    found = {}
    for variant, m in (("base", module), ("altered", altered)):
        path = tmp_path / f"{variant}.pt"
        export(m, small_ref, "torchscript", "fp32", path)
        artifact = replace(wrap(small_ref, "torchscript", "fp32", path), form="3d")
        found[variant] = localize(artifact, small_ref, x, LocalizeConfig())
    assert found["base"].first_divergent == "" and not found["base"].unmatched
    assert found["altered"].first_divergent == name
    assert found["altered"].mapping == {"order": len(found["altered"].layers)}
