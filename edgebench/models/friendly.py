"""The export-friendly form of a model: same outputs, ops every converter takes."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from edgebench.config import ExportFriendlyConfig, PreprocessConfig

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ADAPTIVE_POOLS = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)


class GlobalMean(nn.Module):
    """Mean over the trailing `ndim` axes, kept: a global average pool as reduce_mean."""

    def __init__(self, ndim: int):
        super().__init__()
        self.dims = tuple(range(-ndim, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=self.dims, keepdim=True)


class Normalized(nn.Module):
    """Applies (x - mean) / std per channel, then the wrapped model: it takes [0, 1] input."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float], spatial_dims: int):
        super().__init__()
        shape = (1, len(mean)) + (1,) * spatial_dims
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(shape))
        self.register_buffer("inv_std", 1.0 / torch.tensor(std, dtype=torch.float32).reshape(shape))
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) * self.inv_std)


def _trailing_conv(seq: nn.Sequential, key: str) -> tuple[nn.Sequential, str] | None:
    """(container, key) of the conv that ends seq[key], looking inside nested Sequentials."""
    module = seq._modules[key]
    while isinstance(module, nn.Sequential) and len(module):
        seq, key = module, list(module._modules)[-1]
        module = seq._modules[key]
    return (seq, key) if isinstance(module, _CONVS) else None


def fold_batchnorms(model: nn.Module) -> int:
    """Fold every BatchNorm that directly follows a conv in an nn.Sequential; returns the count.

    The conv may end a nested Sequential, as in R(2+1)D's Conv2Plus1D followed by a BatchNorm.
    """
    folded = 0
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for prev, name in zip(names, names[1:]):
            norm, found = seq._modules[name], _trailing_conv(seq, prev)
            if found and isinstance(norm, _NORMS) and norm.track_running_stats:
                owner, key = found
                owner._modules[key] = fuse_conv_bn_eval(owner._modules[key], norm)
                seq._modules[name] = nn.Identity()
                folded += 1
    return folded


def replace_global_pools(model: nn.Module) -> int:
    """Swap adaptive average pools with output size 1 for a GlobalMean; returns the count."""
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _ADAPTIVE_POOLS):
                size = child.output_size
                sizes = size if isinstance(size, (tuple, list)) else (size,)
                if all(s == 1 for s in sizes):
                    ndim = {nn.AdaptiveAvgPool1d: 1, nn.AdaptiveAvgPool2d: 2, nn.AdaptiveAvgPool3d: 3}[type(child)]
                    setattr(parent, name, GlobalMean(ndim))
                    replaced += 1
    return replaced


def make_export_friendly(
    model: nn.Module, options: ExportFriendlyConfig, preprocess: PreprocessConfig, input_rank: int
) -> nn.Module:
    """Return the eval-mode model with the configured rewrites applied (the input is modified)."""
    model.eval()
    if options.fold_batchnorm:
        fold_batchnorms(model)
    if options.mean_pool:
        replace_global_pools(model)
    if options.normalize_inside:
        model = Normalized(model, preprocess.mean, preprocess.std, spatial_dims=input_rank - 2)
    return model.eval()
