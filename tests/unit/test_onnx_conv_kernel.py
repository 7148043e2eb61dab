"""The MLAS kernel an int8 ONNX conv gets, and the exact weight rewrite that moves it to the AMX GEMM path."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgebench.converters import onnx_conv_kernel as ck
from edgebench.converters.onnx import OnnxConverter
from edgebench.errors import UserError


def qdq_conv(cin: int, cout: int, group: int = 1, weight: np.ndarray | None = None, weight_zero: int = 0,
             float_weight: bool = False, activation=np.uint8) -> onnx.ModelProto:
    """x (float) -> Q/DQ uint8 -> Conv 3x3 (int8 per-channel weights through DequantizeLinear) -> y (float)."""
    rng = np.random.default_rng(0)
    if weight is None:
        weight = rng.integers(-127, 128, (cout, cin // group, 3, 3), dtype=np.int8)
    activation_zero = np.array(0 if activation == np.int8 else 128, activation)
    inits = [numpy_helper.from_array(np.array(0.02, np.float32), "xs"), numpy_helper.from_array(activation_zero, "xz"),
             numpy_helper.from_array(rng.uniform(1e-3, 2e-3, cout).astype(np.float32), "ws")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"])]
    if float_weight:
        inits.append(numpy_helper.from_array(weight.astype(np.float32) * 1e-3, "wf"))
        nodes.append(helper.make_node("Conv", ["xd", "wf"], ["y"], pads=[1] * 4, group=group))
    else:
        inits += [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(np.full(cout, weight_zero, np.int8), "wz")]
        nodes += [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wd"], axis=0),
                  helper.make_node("Conv", ["xd", "wd"], ["y"], pads=[1] * 4, group=group)]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, cin, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, cout, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)


def kernels(model: onnx.ModelProto, tmp_path) -> dict[str, int]:
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    return dict(ck.conv_kernels(path))


def run(model: onnx.ModelProto) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads, so.log_severity_level = 1, 3
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).uniform(-2, 2, session.get_inputs()[0].shape).astype(np.float32)
    return session.run(None, {"x": x})[0]


@pytest.mark.parametrize("cin, cout, group, want", [
    (16, 16, 1, "convsym"), (64, 128, 1, "convsym"),
    (9, 64, 1, "qgemm"),  # input channels not a multiple of 4 (mc3_18's stacked stem)
    (16, 8, 1, "qgemm"),  # fewer than 16 outputs
    (16, 16, 16, "depthwise"), (16, 16, 2, "qgemm"),
])
def test_kernel_follows_qlinearconvs_rules(cin, cout, group, want, tmp_path):
    assert kernels(qdq_conv(cin, cout, group), tmp_path) == {want: 1}


def test_float_16_bit_and_asymmetric_convs(tmp_path):
    assert kernels(qdq_conv(16, 16, float_weight=True), tmp_path) == {"float": 1}
    assert kernels(qdq_conv(16, 16, activation=np.uint16), tmp_path) == {"float": 1}  # w8a16: no QLinearConv
    assert kernels(qdq_conv(16, 16, activation=np.int8), tmp_path) == {"qgemm": 1}  # x86 has no s8 convsym
    assert kernels(qdq_conv(16, 16, weight_zero=3), tmp_path) == {"qgemm": 1}


def test_shift_is_exact_and_moves_the_conv_to_qgemm(tmp_path):
    model = qdq_conv(16, 32)
    before = run(model)
    assert ck.shift_weight_zero_points(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert kernels(model, tmp_path) == {"qgemm": 1}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert inits["w"].min() >= -128 and set(inits["w_zero_point_shifted"]) == {-1}
    assert "wz" not in inits  # the old zero point is gone, not left unused
    np.testing.assert_array_equal(run(model), before)  # not one bit changes


def test_weights_the_shift_cannot_hold_stay_as_they_are(tmp_path):
    """Negative controls: -128 has no w - 1 in int8, and a weight that already has a zero point is not symmetric."""
    extreme = np.random.default_rng(0).integers(-127, 128, (16, 16, 3, 3), dtype=np.int8)
    extreme[3, 2, 1, 1] = -128
    for model in (qdq_conv(16, 16, weight=extreme), qdq_conv(16, 16, weight_zero=3), qdq_conv(16, 16, float_weight=True)):
        before = model.SerializeToString()
        assert ck.shift_weight_zero_points(model) == 0
        assert model.SerializeToString() == before
    assert kernels(qdq_conv(16, 16, weight=extreme), tmp_path) == {"convsym": 1}


def test_auto_follows_the_cpu_and_bad_values_are_user_errors(monkeypatch):
    monkeypatch.setattr(ck, "cpu_isa", lambda: ["avx512f", "avx512_vnni", "amx_tile", "amx_int8"])
    assert OnnxConverter().merge_options({})["conv_kernel"] == "qgemm"
    monkeypatch.setattr(ck, "cpu_isa", lambda: ["avx512f", "avx512_vnni"])
    assert OnnxConverter().merge_options({})["conv_kernel"] == "convsym"
    assert OnnxConverter().merge_options({"conv_kernel": "qgemm"})["conv_kernel"] == "qgemm"
    with pytest.raises(UserError, match="conv_kernel must be one of auto, convsym, qgemm, not 'amx'"):
        OnnxConverter().merge_options({"conv_kernel": "amx"})
