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
from edgebench.parity.layermap import RefTap, by_order, map_taps
from edgebench.parity.localize import reference_taps
from edgebench.parity.taps.base import ArtifactTap
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


# ---------------------------------------------------------------- the rule and the mapping, on plain numbers


def _ref(name, kind, shape=(1, 4, 2, 2)):
    return RefTap(name, kind, np.random.default_rng(len(name)).standard_normal(shape).astype(np.float32))


def test_order_mapping_untangles_interchangeable_siblings():
    """Frozen TorchScript computes a block's downsample before its conv2: same kind and shape, swapped order."""
    conv2, down = _ref("block.conv2", "conv"), _ref("block.downsample", "conv")
    arts = [ArtifactTap("d", "aten::_convolution", down.value), ArtifactTap("c", "aten::_convolution", conv2.value)]
    pairs = by_order([conv2, down], arts)
    assert pairs[0].art.name == "c" and pairs[1].art.name == "d"


def test_scope_mapping_takes_the_last_op_of_a_module_and_moves_channels_back():
    conv = _ref("model.conv", "conv", (1, 3, 2, 2, 2))
    nhwc = np.moveaxis(conv.value, 1, -1)
    arts = [ArtifactTap("pad", "PAD", np.zeros((1, 4, 4, 4, 3), np.float32), "wrap.model.conv"),
            ArtifactTap("out", "CONV_3D", nhwc, "wrap.model.conv")]
    pairs, unmatched = map_taps([conv], arts)
    assert [p.art.name for p in pairs] == ["out"] and not unmatched and pairs[0].method == "scope"
    np.testing.assert_array_equal(pairs[0].value, conv.value)


def test_localize_config_defaults_cover_every_precision():
    from typing import get_args

    from edgebench.config import Precision

    assert set(get_args(Precision)) <= set(LocalizeConfig().rel_floor)


def test_a_tensor_whose_layouts_read_alike_is_read_in_the_layout_closer_to_the_reference():
    """N x 8 x 8 x 8 x 8: NDHWC and NCDHW have the same shape (TFLite keeps no layout): the reading within
    rounding of the reference wins over the one at ~100 % error (negative control: the NCDHW tensor as is)."""
    relu = _ref("m.relu", "relu", (1, 8, 8, 8, 8))
    channels_last = ArtifactTap("r", "RELU", np.ascontiguousarray(np.moveaxis(relu.value, 1, -1)), "m.relu")
    as_is = ArtifactTap("r", "RELU", relu.value.copy(), "m.relu")
    for art in (channels_last, as_is):
        pairs, _ = map_taps([relu], [art])
        np.testing.assert_array_equal(pairs[0].value, relu.value)


def test_a_conv_whose_bias_add_carries_the_fused_relu_takes_that_tensor():
    """litert-torch: CONV_3D, then the bias ADD with the ReLU fused, recorded under the ReLU's path. The conv's
    own tensor lacks its bias; the conv is compared through the ReLU's tensor."""
    conv = _ref("m.conv", "conv", (1, 3, 2, 4, 4))
    relu = RefTap("m.relu", "relu", np.maximum(conv.value, 0))
    bias = np.float32(0.5)
    arts = [ArtifactTap("c", "CONV_3D", conv.value - bias, "m.conv"),
            ArtifactTap("a", "ADD", relu.value, "m.relu", fused="relu")]
    pairs, unmatched = map_taps([conv, relu], arts)
    assert [p.art.name for p in pairs] == ["a", "a"] and not unmatched
    assert pairs[0].note == "fused relu: compared with m.relu"
    np.testing.assert_array_equal(pairs[0].target, relu.value)
