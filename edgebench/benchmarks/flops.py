"""Model FLOPs of one inference, counted by torch.utils.flop_counter (a multiply-add counts as 2)."""

from __future__ import annotations

from edgebench.records import ModelRef


def model_flops(ref: ModelRef) -> int:
    """FLOPs of one forward pass of the export-friendly module on an input of the ref's shape."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from edgebench.models.source import example_input

    module = ref.build()
    x = example_input(ref)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        module(x)
    return int(counter.get_total_flops())
