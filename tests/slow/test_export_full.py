"""The default artifacts of the full 1x3x16x112x112 resnet_mixed, exported once, each loaded back."""

from __future__ import annotations

import numpy as np
import pytest
from tests import CONVS_3D, CONVS_LOWERED

pytestmark = pytest.mark.slow


def test_default_artifacts(artifacts):
    from edgebench.config import PipelineConfig

    assert sorted(artifacts) == sorted((f, p) for f, ps in PipelineConfig().formats.items() for p in ps)
    for (fmt, precision), a in artifacts.items():
        fp32 = artifacts[(fmt, "fp32")].size_bytes
        assert len(a.sha256) == 64 and fp32 > 40_000_000
        if precision in ("int8", "w8", "w8a16"):  # one byte per weight: about a quarter of fp32
            assert 0.2 * fp32 < a.size_bytes < 0.3 * fp32, (fmt, precision, a.size_bytes)
            convs = CONVS_LOWERED if a.form == "2d-lowered" else CONVS_3D
            assert a.compute_dtypes == {precision: convs + 1}, a.compute_dtypes  # the convs + the fc, all quantized


def test_torchscript_full(artifacts, full_ref):
    import torch

    module = torch.jit.load(artifacts[("torchscript", "fp32")].path)
    with torch.no_grad():
        assert module(torch.rand(full_ref.inputs[0].shape)).shape == (1, 400)


def test_onnx_full(artifacts, full_ref):
    import onnxruntime as ort

    session = ort.InferenceSession(artifacts[("onnx", "fp32")].path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["video"]
    (out,) = session.run(["logits"], {"video": np.random.rand(*full_ref.inputs[0].shape).astype(np.float32)})
    assert out.shape == (1, 400)


def test_coreml_full(artifacts):
    import coremltools as ct

    fp32, fp16 = artifacts[("coreml", "fp32")], artifacts[("coreml", "fp16")]
    for a in (fp32, fp16):
        spec = ct.models.MLModel(a.path, skip_model_load=True).get_spec()
        assert [i.name for i in spec.description.input] == ["video"]
        assert [o.name for o in spec.description.output] == ["logits"]
        assert "batch_norm" not in a.op_census and a.op_census["conv"] == CONVS_3D
    assert fp16.size_bytes < 0.6 * fp32.size_bytes
    assert fp16.op_census.get("cast") == 2  # float32 in and out, fp16 inside


def test_tflite_full(artifacts, full_ref):
    from ai_edge_litert.interpreter import Interpreter

    a = artifacts[("tflite", "fp32")]
    runner = Interpreter(model_path=a.path).get_signature_runner()
    out = runner(video=np.random.rand(*full_ref.inputs[0].shape).astype(np.float32))["logits"]
    assert out.shape == (1, 400)
    assert a.form == "2d-lowered" and "CONV_3D" not in a.op_census and a.op_census["CONV_2D"] == CONVS_LOWERED


def test_executorch_full(artifacts):
    a = artifacts[("executorch", "fp32")]
    assert a.form == "2d-lowered" and a.op_census["xnnpack:XNNConv2d"] == CONVS_LOWERED and "aten::convolution" not in a.op_census


@pytest.mark.parametrize("fmt,runtime", [("onnx", "onnxruntime"), ("executorch", "executorch")])
def test_demo_runs_an_exported_artifact_like_pytorch(artifacts, bikes, fmt, runtime):
    """`edgebench demo --artifact model.onnx` (or .pte) ranks the same labels as PyTorch, through its runtime."""
    from edgebench.demo import classify

    art = artifacts[(fmt, "fp32")]
    by_torch = classify(bikes, top=5)
    by_art = classify(bikes, artifact=art.path, top=5)
    assert by_art.runtime == runtime
    assert [label for label, _ in by_art.top] == [label for label, _ in by_torch.top]
    for (_, p), (_, q) in zip(by_art.top, by_torch.top):
        assert abs(p - q) < 1e-4
