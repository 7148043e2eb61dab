"""Pairing reference layers with artifact tensors (parity/layermap.py), on plain numbers: by scope, by order,
summed convs, fused activations, layouts that read alike."""

from __future__ import annotations

import numpy as np

from edgebench.config import LocalizeConfig
from edgebench.parity.layermap import RefTap, by_order, map_taps
from edgebench.parity.localize import mapping_fit
from edgebench.parity.taps.base import ArtifactTap


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


def test_order_mapping_takes_the_add_that_completes_a_summed_conv():
    """A lowered Conv3d with summed taps (kt = 3) is three convs and two adds in a file without module paths
    (TFLite int8): its output is the second add, not the one partial conv with every row (negative control:
    the same reference layer not marked summed takes that partial conv)."""
    conv = _ref("m.conv", "conv", (4, 3, 2, 2))
    relu = RefTap("m.relu", "relu", np.maximum(conv.value, 0))
    partial = conv.value / 3
    arts = [ArtifactTap("c0", "CONV_2D", partial[:3]), ArtifactTap("c1", "CONV_2D", partial),
            ArtifactTap("a0", "ADD", 2 * partial), ArtifactTap("c2", "CONV_2D", partial[1:]),
            ArtifactTap("a1", "ADD", relu.value, fused="relu")]
    summed = RefTap(conv.name, "conv", conv.value, summed=3)
    pairs = by_order([summed, relu], arts)
    assert pairs[0].art.name == "a1" and pairs[0].note == "fused relu: compared with m.relu"
    assert by_order([conv, relu], arts)[0].art.name == "c1"


def test_a_folded_tensor_with_as_many_frames_as_channels_is_read_in_the_folded_form():
    """(T, C, H, W) with T == C squeezes to the 5-D form's (C, T, H, W) in the wrong order: both forms pair every
    layer, the folded one without a reshape, and only that reading matches (the other is ~100 % off)."""
    folded = RefTap("model.conv", "conv", np.random.default_rng(0).standard_normal((8, 8, 4, 4)).astype(np.float32))
    five_d = RefTap("model.conv", "conv", np.ascontiguousarray(folded.value.transpose(1, 0, 2, 3))[None])
    arts = [ArtifactTap("out", "Conv", folded.value.copy(), "model.conv")]
    as_folded, _ = map_taps([folded], arts)
    as_5d, _ = map_taps([five_d], arts)
    assert len(as_folded) == len(as_5d) == 1
    assert mapping_fit(as_folded) > mapping_fit(as_5d)
    assert np.abs(as_5d[0].value - as_5d[0].target).max() > 1.0  # the wrong reading, had it been chosen
    np.testing.assert_array_equal(as_folded[0].value, as_folded[0].target)


def test_a_fused_relu_of_a_functional_activation_is_applied_to_the_conv_reference():
    """F.relu in forward leaves no module to tap: the CONV_2D with a fused RELU is compared with relu(conv); a wrong
    value still shows (negative control)."""
    conv, fc = _ref("model.conv", "conv"), _ref("model.fc", "linear", (1, 3))
    relu_out = np.maximum(conv.value, 0)
    pairs, _ = map_taps([conv, fc], [ArtifactTap("c", "CONV_2D", relu_out, fused="relu"),
                                     ArtifactTap("f", "FULLY_CONNECTED", fc.value)])
    assert [p.ref.name for p in pairs] == ["model.conv", "model.fc"] and "applied" in pairs[0].note
    np.testing.assert_array_equal(pairs[0].value, pairs[0].target)
    wrong, _ = map_taps([conv, fc], [ArtifactTap("c", "CONV_2D", relu_out + 1, fused="relu"),
                                     ArtifactTap("f", "FULLY_CONNECTED", fc.value)])
    assert np.abs(wrong[0].value - wrong[0].target).max() == 1.0
