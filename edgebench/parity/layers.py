"""The per-layer table of a localization and its two verdicts: each layer judged on its own (its SQNR
against the precision's floor) and by growth (its error over the worst error of the layers before it).

The table is what a reader of the report, and a repair that ranks layers by sensitivity, consume: one
`LayerRow` per reference layer paired with an artifact tensor, in execution order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

JUMP = "jump"  # the culprit's error jumps past jump_factor x the worst before it (and is under its floor)
FLOOR = "floor"  # no layer jumps; the culprit is the first layer under its own floor
LARGEST = "largest jump"  # every layer is within its floor; the culprit is where the error grows the most


@dataclass
class LayerRow:
    """One reference layer against the artifact's tensor for it (one clip, float64)."""

    depth: int  # position in the table (execution order of the reference)
    name: str  # module path in the export-friendly model: model.layer3.0.conv2.0
    kind: str  # conv | linear | relu | pool | block
    op: str  # the artifact op that made the tensor: Conv, CONV_2D, XNNConv2d, aten::_convolution, ...
    tensor: str  # the tensor's name in the artifact
    mapping: str  # how the pair was found: scope (a module path the exporter kept) | order
    shape: list[int]
    note: str  # e.g. "fused relu: compared with model.stem.2"
    max_abs_err: float
    rel_err: float  # ||artifact - reference|| / ||reference||
    cosine: float
    sqnr_db: float  # -20 log10 rel_err: the layer's signal-to-noise ratio (inf when exact)
    within_floor: bool  # its own verdict: rel_err <= the precision's floor
    jump: float  # rel_err / max(worst rel_err of the layers before, floor / jump_factor)
    divergent: bool  # jump > jump_factor: above its floor and jump_factor x anything before it

    @classmethod
    def from_dict(cls, d: dict) -> "LayerRow":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


def layer_errors(out: np.ndarray, ref: np.ndarray) -> dict:
    """max abs err, relative L2 error ||out - ref|| / ||ref||, cosine and SQNR of one layer (float64)."""
    a, b = out.astype(np.float64).ravel(), ref.astype(np.float64).ravel()
    d = a - b
    nb, na = float(np.linalg.norm(b)), float(np.linalg.norm(a))
    rel = float(np.linalg.norm(d)) / nb if nb > 0 else (0.0 if na == 0 else math.inf)
    cos = float(a @ b / (na * nb)) if na > 0 and nb > 0 else (1.0 if na == nb else 0.0)
    return {"max_abs_err": float(np.abs(d).max()) if d.size else 0.0, "rel_err": rel, "cosine": cos,
            "sqnr_db": sqnr_db(rel)}


def sqnr_db(rel_err: float) -> float:
    """-20 log10 of a relative L2 error: inf when exact."""
    return math.inf if rel_err == 0 else -20.0 * math.log10(rel_err)


def judge_layers(rows: list[dict], rel_floor: float, jump_factor: float) -> None:
    """Give every row its own verdict (`within_floor`) and its growth (`jump`, `divergent`), in order.

    jump = rel err / max(worst rel err before it, rel_floor / jump_factor): a layer diverges when its error is
    above the floor *and* jump_factor times anything before it. Growth, not level: fp32 rounding grows slowly
    with depth and never jumps; a wrong weight jumps at its layer.
    """
    worst = 0.0
    for r in rows:
        r["within_floor"] = bool(r["rel_err"] <= rel_floor)
        r["jump"] = r["rel_err"] / max(worst, rel_floor / jump_factor, 1e-30)  # a zero floor: exact layers before
        r["divergent"] = bool(r["jump"] > jump_factor)
        worst = max(worst, r["rel_err"])


def first_divergent(rows: list[LayerRow]) -> str:
    return next((r.name for r in rows if r.divergent), "")


def first_below_floor(rows: list[LayerRow]) -> str:
    return next((r.name for r in rows if not r.within_floor), "")


def largest_jump(rows: list[LayerRow]) -> str:
    return max(rows, key=lambda r: r.jump).name if rows else ""


def culprit(rows: list[LayerRow], failed: bool) -> tuple[str, str]:
    """(layer, rule) a row is blamed on: the first divergent layer (JUMP) always; when the row failed and none
    jumps, the first layer under its own floor (FLOOR), else the layer with the largest jump (LARGEST), so a
    failing file always names one. ("", "") for a passing row with no divergent layer."""
    if name := first_divergent(rows):
        return name, JUMP
    if not failed or not rows:
        return "", ""
    if name := first_below_floor(rows):
        return name, FLOOR
    return largest_jump(rows), LARGEST
