"""Facts about a model for `edgebench info`: parameters, FLOPs, I/O, weights."""

from __future__ import annotations

from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgebench.models import sampling
from edgebench.models.lowering import op_mix
from edgebench.models.registry import load_model_config
from edgebench.models.source import build_base, build_module, example_input, lowering_report
from edgebench.records import ModelRef


def count_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass, counted by torch (a multiply-add is 2 FLOPs)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def model_info(ref: ModelRef) -> dict:
    """Parameters of the source model and of its export-friendly form, FLOPs, I/O, weights."""
    cfg = load_model_config(ref.config_path)
    base, _ = build_base(cfg, Path(ref.config_path), ref.weights_path)
    friendly = build_module(ref)
    flops = count_flops(friendly, example_input(ref))
    return {
        "model": ref.name,
        "parameters": sum(p.numel() for p in base.parameters()),
        "parameters_export_friendly": sum(p.numel() for p in friendly.parameters()),
        "flops": flops,
        "gflop": flops / 1e9,
        "gmac": flops / 2e9,
        "inputs": [f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" for t in ref.inputs],
        "outputs": [f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" for t in ref.outputs],
        "weights": ref.provenance,
        "labels": len(ref.labels),
        "sampling": sampling.describe(cfg.preprocess),
        "sampling_declared": cfg.preprocess.sampling_declared,
        **export_form(ref),
    }


def export_form(ref: ModelRef) -> dict:
    """The form artifacts are exported in (2d-lowered or 3d, and why), the share of FLOPs that runs lowered,
    the 3D ops kept as they are and where the folded tensor went back to 5-D, with the op mix of both forms."""
    report = lowering_report(ref)
    lowered = build_module(ref, lowered=True)
    return {
        "form": report.form,
        "form_reason": report.reason,
        "form_driver": {"graph": "the graph driver", "modules": "the module swap"}.get(report.driver, "")
                       + (f", {report.driver_note}" if report.driver_note else ""),
        "form_max_abs_diff": report.max_abs_diff,
        "lowered_share": report.lowered_share,
        "stayed_3d": dict(report.kept),
        "unfolded": dict(report.unfolded),
        "op_mix": op_mix(lowered),
        "op_mix_3d": op_mix(build_module(ref)),
    }
