"""Export-friendly rewrites of single ops a converter cannot take, each applied only for the formats that need it.

A rewrite changes the traced graph (an fx.GraphModule) so that it computes the same values with ops the
toolchain takes. Each is checked against the output of the module before the rewrite, undone with a
warning when it differs, and listed in the artifact record (`Artifact.rewrites`).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Callable

import torch
from torch import fx
from torchvision.models.video import mvit, swin_transformer

from edgebench.models import rewrite_ops
from edgebench.models.lowering import mismatch
from edgebench.models.lowering_graph import shape_values

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rewrite:
    """One export-friendly change: for which formats, the failure it avoids, and the change itself."""

    name: str
    formats: frozenset[str]
    avoids: str  # the toolchain's failure without it: op and toolchain
    apply: Callable[[fx.GraphModule, torch.Tensor], int]  # changes the graph in place; returns how many ops


def swap(target: Callable, replacement: Callable) -> Callable[[fx.GraphModule, torch.Tensor], int]:
    """A rewrite that makes every traced call of `target` call `replacement` (same arguments, same values)."""

    def apply(gm: fx.GraphModule, example: torch.Tensor) -> int:
        nodes = [n for n in gm.graph.nodes if n.op == "call_function" and n.target is target]
        for n in nodes:
            n.target = replacement
        return len(nodes)

    return apply


def shapes_as_constants(gm: fx.GraphModule, example: torch.Tensor) -> int:
    """Shape arithmetic (`x.size()`, `x.shape`, and every call computed from them alone) as the constants it
    gives for the fixed input shape: a traced converter then sees no shape ops."""
    values = shape_values(gm, example)
    derived: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n not in values:
            continue
        reads_shape = (n.op == "call_method" and n.target in ("size", "dim")) or (
            n.op == "call_function" and n.target is getattr and n.args[1] in ("shape", "ndim"))
        if reads_shape or (n.op in ("call_function", "call_method") and n.all_input_nodes
                           and all(a in derived for a in n.all_input_nodes)):
            derived.add(n)
    replaced = 0
    for n in derived:
        outside = [u for u in n.users if u not in derived]
        for user in outside:
            user.args = fx.node.map_arg(user.args, lambda a: values[n] if a is n else a)
            user.kwargs = fx.node.map_arg(user.kwargs, lambda a: values[n] if a is n else a)
        replaced += bool(outside)
    for n in reversed(list(gm.graph.nodes)):  # not eliminate_dead_code: it would drop calls kept for their
        if n in derived and not n.users:      # side effect (mvit's in-place `_add_shortcut`)
            gm.graph.erase_node(n)
    return replaced


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("tensor_split->slices", frozenset({"coreml"}), "coremltools: no converter for tensor_split "
            "(MViT's attention pooling)", swap(torch.tensor_split, rewrite_ops.split_as_slices)),
    Rewrite("shapes->constants", frozenset({"coreml"}), "coremltools: the traced int() of a shape fails to "
            "convert (swin3d's patch padding)", shapes_as_constants),
    Rewrite("window-attention-5d", frozenset({"executorch"}), "ExecuTorch: XNNPACK takes tensors of up to 6 dims "
            "(xnn_status_unsupported_parameter at load); swin3d's window attention permutes 8-D ones",
            swap(swin_transformer.shifted_window_attention_3d, rewrite_ops.window_attention_5d)),
    Rewrite("rel-pos-5d", frozenset({"tflite", "executorch"}), "litert-torch: failed to legalize 'tfl.add' of 8-D "
            "tensors, PT2E int8: an int64 input to an observer; XNNPACK: up to 6 dims (MViT v2's relative positions)",
            swap(mvit._add_rel_pos, rewrite_ops.add_rel_pos_5d)),
)


def needed(fmt: str | None) -> list[Rewrite]:
    """The rewrites registered for format `fmt` (none for no format)."""
    return [r for r in REWRITES if fmt in r.formats]


def apply_rewrites(gm: fx.GraphModule, fmt: str, example: torch.Tensor, want: torch.Tensor) -> list[str]:
    """Apply `fmt`'s rewrites to the traced module in place, each kept only if the output still equals `want`;
    returns what was applied (`tensor_split->slices x51`)."""
    applied = []
    for rewrite in needed(fmt):
        saved = copy.deepcopy(gm.graph)
        try:
            count = rewrite.apply(gm, example)
            gm.recompile()
            with torch.no_grad():
                why = mismatch(gm(example), want, names=("rewritten", "original")) if count else None
        except Exception as e:  # noqa: BLE001 - a rewrite that cannot run is undone like a wrong one
            count, why = 1, f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        if why:
            log.warning("rewrite %s undone for %s: %s", rewrite.name, fmt, why)
        if why or not count:
            gm.graph = saved
            gm.recompile()
            continue
        applied.append(f"{rewrite.name} x{count}")
    return applied
