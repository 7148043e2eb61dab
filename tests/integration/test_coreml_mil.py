"""coreml-mil: saved MIL programs executed op by op, checked against numpy/torch written independently."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from edgebench.config import Tolerance
from edgebench.parity.check import check_parity
from edgebench.records import SKIPPED, Artifact
from edgebench.runtimes.base import NotSupported
from edgebench.runtimes.coreml_mil import supported_ops
from edgebench.runtimes.registry import get_runtime

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

RNG = np.random.default_rng(0)


def _save(prog, tmp_path, name="p", target=None) -> Artifact:
    """The program as a saved .mlpackage, exactly as written (no optimization passes)."""
    kwargs = {"minimum_deployment_target": target} if target else {}
    ml = ct.convert(prog, convert_to="mlprogram", pass_pipeline=ct.PassPipeline.EMPTY, **kwargs)
    path = tmp_path / f"{name}.mlpackage"
    ml.save(str(path))
    return Artifact(model="unit", format="coreml", precision="fp32", status="passed", path=str(path))


def _run(prog, tmp_path, feeds, **kw) -> np.ndarray:
    session = get_runtime("coreml-mil").load(_save(prog, tmp_path, **kw), None, 1)
    (out,) = session.run(feeds).values()
    return out


def _np_conv(x: np.ndarray, w: np.ndarray, pads: list[int], strides, dilations, groups=1, bias=None) -> np.ndarray:
    """Reference: numpy padding (MIL's begin/end per spatial dim) then torch's unpadded conv."""
    width = [(0, 0), (0, 0)] + [(pads[2 * i], pads[2 * i + 1]) for i in range(x.ndim - 2)]
    xp = torch.from_numpy(np.pad(x, width))
    conv = (F.conv1d, F.conv2d, F.conv3d)[x.ndim - 3]
    b = None if bias is None else torch.from_numpy(bias)
    return conv(xp, torch.from_numpy(w), b, stride=strides, dilation=dilations, groups=groups).numpy()


def test_supported_ops_cover_the_video_models():
    needed = {"const", "conv", "relu", "add", "mul", "sub", "real_div", "reduce_mean", "reshape", "transpose",
              "linear", "matmul", "softmax", "cast"}
    assert needed <= set(supported_ops())


def test_conv1d_custom_pad_stride_dilation(tmp_path):
    x = RNG.random((1, 2, 11), dtype=np.float32)
    w = RNG.normal(size=(4, 2, 3)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)])
    def prog(x_):
        return mb.conv(x=x_, weight=w, pad_type="custom", pad=[3, 0], strides=[2], dilations=[2])

    np.testing.assert_allclose(_run(prog, tmp_path, {"x_": x}), _np_conv(x, w, [3, 0], [2], [2]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pad_type,pads", [("same", [0, 1, 0, 1]), ("same_lower", [1, 0, 1, 0])])
def test_conv2d_same_puts_the_odd_pad_where_mil_says(tmp_path, pad_type, pads):
    x = RNG.random((1, 3, 6, 7), dtype=np.float32)
    w = RNG.normal(size=(5, 3, 2, 2)).astype(np.float32)  # even kernel: total pad 1, split by pad_type

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS16)  # same_lower: iOS16+
    def prog(x_):
        return mb.conv(x=x_, weight=w, pad_type=pad_type)

    out = _run(prog, tmp_path, {"x_": x}, target=ct.target.iOS16)
    assert out.shape == (1, 5, 6, 7)
    np.testing.assert_allclose(out, _np_conv(x, w, pads, [1, 1], [1, 1]), rtol=1e-5, atol=1e-6)


def test_conv2d_same_with_stride_gives_ceil_shape(tmp_path):
    x = RNG.random((1, 2, 7, 8), dtype=np.float32)
    w = RNG.normal(size=(3, 2, 3, 3)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)])
    def prog(x_):
        return mb.conv(x=x_, weight=w, pad_type="same", strides=[2, 2])

    out = _run(prog, tmp_path, {"x_": x})
    assert out.shape == (1, 3, 4, 4)  # ceil(7/2), ceil(8/2); total pads 2 and 1 -> [1, 1, 0, 1]
    np.testing.assert_allclose(out, _np_conv(x, w, [1, 1, 0, 1], [2, 2], [1, 1]), rtol=1e-5, atol=1e-6)


def test_conv3d_groups_bias_valid(tmp_path):
    x = RNG.random((1, 4, 5, 6, 6), dtype=np.float32)
    w = RNG.normal(size=(6, 2, 3, 1, 3)).astype(np.float32)
    b = RNG.normal(size=(6,)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)])
    def prog(x_):
        return mb.conv(x=x_, weight=w, bias=b, pad_type="valid", strides=[1, 2, 1], groups=2)

    expected = _np_conv(x, w, [0] * 6, [1, 2, 1], [1, 1, 1], groups=2, bias=b)
    np.testing.assert_allclose(_run(prog, tmp_path, {"x_": x}), expected, rtol=1e-5, atol=1e-5)


def test_elementwise_reductions_shapes_and_linear_algebra(tmp_path):
    x = RNG.random((2, 3, 4), dtype=np.float32)
    y = RNG.random((2, 4, 5), dtype=np.float32)
    wl = RNG.normal(size=(6, 5)).astype(np.float32)
    bl = RNG.normal(size=(6,)).astype(np.float32)
    c = np.float32(1.5)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape), mb.TensorSpec(shape=y.shape)])
    def prog(a, b):
        z = mb.real_div(x=mb.mul(x=mb.sub(x=a, y=0.25), y=c), y=2.0)
        z = mb.relu(x=z)
        z = mb.matmul(x=z, y=b)  # 2x3x5
        z = mb.add(x=z, y=mb.reduce_mean(x=z, axes=[1], keep_dims=True))
        z = mb.linear(x=z, weight=wl, bias=bl)  # 2x3x6
        z = mb.transpose(x=z, perm=[0, 2, 1])  # 2x6x3
        z = mb.reshape(x=z, shape=[2, -1])  # 2x18
        return mb.softmax(x=z, axis=-1)

    z = np.maximum((x - 0.25) * c / 2.0, 0) @ y
    z = z + z.mean(axis=1, keepdims=True)
    z = (z @ wl.T + bl).transpose(0, 2, 1).reshape(2, -1)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    expected = e / e.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(_run(prog, tmp_path, {"a": x, "b": y}), expected, rtol=1e-5, atol=1e-7)


def test_fp16_values_are_rounded_after_every_fp16_op(tmp_path):
    x = np.array([[1.0, 2.0, 1000.0, 0.1]], dtype=np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)])
    def prog(x_):
        h = mb.cast(x=x_, dtype="fp16")
        h = mb.add(x=h, y=np.float16(1e-4))  # below half an fp16 ulp of 1.0, so 1.0 stays 1.0
        h = mb.mul(x=h, y=np.float16(3.0))
        return mb.cast(x=h, dtype="fp32")

    out = _run(prog, tmp_path, {"x_": x})
    h = x.astype(np.float16)
    expected = ((h + np.float16(1e-4)).astype(np.float16) * np.float16(3.0)).astype(np.float16).astype(np.float32)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, expected)
    assert out[0, 0] == 3.0  # fp32 arithmetic would give 3.0003


def test_fp16_inputs_and_outputs(tmp_path):
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3), dtype=types.fp16)], opset_version=ct.target.iOS16)
    def prog(x_):
        return mb.add(x=x_, y=np.float16(0.5))

    out = _run(prog, tmp_path, {"x_": np.array([[0.1, 1.0, 2049.0]], np.float32)}, target=ct.target.iOS16)
    assert out.dtype == np.float16
    expected = (np.array([[0.1, 1.0, 2049.0]]).astype(np.float16) + np.float16(0.5)).astype(np.float16)
    np.testing.assert_array_equal(out, expected)


def _sin_program(tmp_path) -> Artifact:
    @mb.program(input_specs=[mb.TensorSpec(shape=(1, 3, 4, 32, 32))])
    def prog(video):
        return mb.sin(x=mb.relu(x=video))

    return _save(prog, tmp_path, "sin")


def test_unknown_op_fails_the_load_naming_it(tmp_path):
    with pytest.raises(NotSupported, match="no reference implementation of MIL op 'sin'"):
        get_runtime("coreml-mil").load(_sin_program(tmp_path), None, 1)


def test_unknown_op_makes_the_parity_row_skipped(tmp_path, small_ref):
    inputs = {"video": np.zeros((1, *small_ref.inputs[0].shape), np.float32)}
    reference = {"logits": np.zeros((1, 1, 400), np.float32)}
    r = check_parity(_sin_program(tmp_path), "coreml-mil", small_ref, inputs, reference, Tolerance(), threads=1)
    assert r.status == SKIPPED and "'sin'" in r.reason and r.runtime == "coreml-mil"
