"""A small video CNN, and the outlier channel that breaks its int8 files: the failing fixture of the repair tests."""

from __future__ import annotations

import torch
from torch import nn

from tests.evaluation_model import DIRECTIONS

OUTLIER_LAYER, NEXT_LAYER = "block2.0", "block3.0"  # module paths inside the net (the export form adds `model.`)
OUTLIER_FACTOR = 1000.0


def _conv(cin: int, cout: int, kernel, stride=1) -> nn.Sequential:
    padding = tuple(k // 2 for k in kernel)
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, stride=stride, padding=padding), nn.ReLU())


class OutlierNet(nn.Module):
    """A 3x3x3 stem and block, three per-frame (1,3,3) blocks, a global average pool and a linear layer: 6 layers."""

    def __init__(self, classes: int = len(DIRECTIONS)):
        super().__init__()
        self.stem = _conv(3, 16, (3, 3, 3), (1, 2, 2))
        self.block1 = _conv(16, 16, (3, 3, 3))
        self.block2 = _conv(16, 32, (1, 3, 3), (1, 2, 2))
        self.block3 = _conv(32, 32, (1, 3, 3))
        self.block4 = _conv(32, 32, (1, 3, 3))
        self.pool = nn.AdaptiveAvgPool3d(1)  # the export-friendly form makes it a mean the lowering takes
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        x = self.block4(self.block3(self.block2(self.block1(self.stem(x)))))
        return self.fc(self.pool(x).flatten(1))


def outlier_net() -> nn.Module:
    return OutlierNet()


def add_outlier(model: nn.Module, sample: torch.Tensor, factor: float = OUTLIER_FACTOR) -> nn.Module:
    """The output channel of OUTLIER_LAYER most active on `sample` (model inputs) `factor` times larger,
    divided back by NEXT_LAYER's weights.

    ReLU commutes with a positive scale, so the float outputs do not change (up to rounding); a tensor
    quantized with one scale for all its channels loses every channel but the outlier.
    """
    layers = dict(model.named_modules())
    grown, shrunk = layers[OUTLIER_LAYER], layers[NEXT_LAYER]
    seen = []
    hook = layers[OUTLIER_LAYER.rsplit(".", 1)[0]].register_forward_hook(lambda _m, _i, out: seen.append(out))
    with torch.no_grad():
        model(sample)
    hook.remove()
    channel = int(seen[0].mean(dim=(0, 2, 3, 4)).argmax())  # a dead channel would hide the outlier
    with torch.no_grad():
        grown.weight[channel] *= factor
        grown.bias[channel] *= factor
        shrunk.weight[:, channel] /= factor
    return model
