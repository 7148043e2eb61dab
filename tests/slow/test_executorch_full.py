"""The full resnet_mixed as a default ExecuTorch artifact: XNNPACK took every conv, and the demo ranks like PyTorch."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


def test_executorch_full_is_delegated_and_the_demo_agrees_with_pytorch(artifacts, bikes):
    from edgebench.demo import classify

    a = artifacts[("executorch", "fp32")]
    assert a.form == "2d-lowered" and a.op_census["xnnpack:XNNConv2d"] == 20 and "aten::convolution" not in a.op_census
    by_torch = classify(bikes, top=5)
    by_pte = classify(bikes, artifact=a.path, top=5)
    assert by_pte.runtime == "executorch"
    assert [label for label, _ in by_pte.top] == [label for label, _ in by_torch.top]
    for (_, p), (_, q) in zip(by_pte.top, by_torch.top):
        assert abs(p - q) < 1e-4
