"""Rank the layers a repair may keep in float: the model's output error when that layer alone is quantized.

Simulated in PyTorch, not through a toolchain (n exports would spend the whole trial budget on the
ranking): the layer's weights fake-quantized per output channel (symmetric), its input and output
per tensor (asymmetric, over the range the calibration clips reach), everything else float. An
outlier channel makes both layers around it lose the other channels; a layer whose weights span
orders of magnitude loses its small ones. The ranking only orders the search; the verdicts come from
the toolchain's files. Layers that a failing file's localization names divergent go first.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from edgebench.parity.localize import module_kind

LAYER_KINDS = ("conv", "linear")  # what a repair keeps in float
# precision -> (weight bits, activation bits); None: that side stays float
BITS = {"int8": (8, 8), "w8": (8, None), "w8a16": (8, 16)}


@dataclass(frozen=True)
class Sensitivity:
    """One layer and the relative L2 error of the model's output when only that layer is quantized."""

    layer: str
    error: float


def candidate_layers(module) -> list[str]:
    """Module paths of the conv and linear layers of a module (parity.localize's kinds), in definition order."""
    return [name for name, m in module.named_modules() if name and module_kind(m) in LAYER_KINDS]


def _fake_activation(x, lo: float, hi: float, bits: int):
    """x through asymmetric per-tensor quantization over [lo, hi] (0 always inside, as toolchains keep it)."""
    import torch

    lo, hi = min(lo, 0.0), max(hi, 0.0)
    levels = 2**bits - 1
    scale = max(hi - lo, 1e-12) / levels
    zero = round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, levels) - zero) * scale


def _fake_weight(w, bits: int):
    """w through symmetric per-output-channel (axis 0) quantization."""
    import torch

    top = 2 ** (bits - 1) - 1
    scale = w.abs().flatten(1).amax(1).clamp_min(1e-12).reshape(-1, *[1] * (w.dim() - 1)) / top
    return torch.clamp(torch.round(w / scale), -top, top) * scale


@contextmanager
def _quantized(module, ranges: tuple[tuple[float, float], tuple[float, float]], weight_bits, act_bits):
    """Inside: `module` computes with fake-quantized weights, input and output; restored on exit."""
    weights = [p for name, p in module.named_parameters() if name.split(".")[0] == "weight"]
    saved = [p.data for p in weights]
    handles = []
    try:
        if weight_bits:
            for p in weights:
                p.data = _fake_weight(p.data, weight_bits)
        if act_bits:
            (ilo, ihi), (olo, ohi) = ranges
            handles.append(module.register_forward_pre_hook(
                lambda _m, args: (_fake_activation(args[0], ilo, ihi, act_bits), *args[1:])))
            handles.append(module.register_forward_hook(lambda _m, _a, out: _fake_activation(out, olo, ohi, act_bits)))
        yield
    finally:
        for p, data in zip(weights, saved):
            p.data = data
        for h in handles:
            h.remove()


def _ranges(model, layers: dict, clips: list) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """(input min/max, output min/max) of every layer over the clips."""
    import torch

    seen: dict[str, list[float]] = {name: [np.inf, -np.inf, np.inf, -np.inf] for name in layers}

    def hook(name):
        def record(_m, args, out):
            r = seen[name]
            r[:] = [min(r[0], float(args[0].min())), max(r[1], float(args[0].max())),
                    min(r[2], float(out.min())), max(r[3], float(out.max()))]
        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in layers.items()]
    try:
        with torch.no_grad():
            for clip in clips:
                model(clip)
    finally:
        for h in handles:
            h.remove()
    return {name: ((r[0], r[1]), (r[2], r[3])) for name, r in seen.items()}


def rank_layers(model, precision: str, clips: list[np.ndarray], error_clips: int = 2) -> list[Sensitivity]:
    """Every candidate layer of `model` with its single-layer quantization error, most sensitive first.

    Ranges come from all `clips` (the calibration clips); errors from the first `error_clips` of them.
    """
    import torch

    weight_bits, act_bits = BITS[precision]
    layers = {name: model.get_submodule(name) for name in candidate_layers(model)}
    tensors = [torch.from_numpy(np.ascontiguousarray(c, dtype=np.float32)) for c in clips]
    ranges = _ranges(model, layers, tensors)
    probe = tensors[:error_clips]
    with torch.no_grad():
        reference = torch.cat([model(x).flatten() for x in probe])
        found = []
        for name, module in layers.items():
            with _quantized(module, ranges[name], weight_bits, act_bits):
                out = torch.cat([model(x).flatten() for x in probe])
            error = float(torch.linalg.norm(out - reference) / torch.linalg.norm(reference).clamp_min(1e-12))
            found.append(Sensitivity(name, error))
    return sorted(found, key=lambda s: -s.error)


def order_for_search(ranked: list[Sensitivity], divergent: list[str]) -> list[str]:
    """The search order: layers a localization found divergent (in depth order) first, then by error."""
    names = [s.layer for s in ranked]
    first = [name for name in divergent if name in names]
    return first + [name for name in names if name not in first]
