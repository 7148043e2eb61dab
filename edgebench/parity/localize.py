"""Layer-wise localization: every intermediate output of the reference module against the artifact's
own tensors, each layer judged on its own and by growth (parity/layers.py), and the layer a failure is
blamed on.

Reference taps come from forward hooks on the same form the artifact was exported from; artifact taps
from parity.taps (one module per format); parity.layermap pairs them by the module paths the exporter
kept, else by kind, shape and order. docs/parity.md explains the rule and its limits.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from rich.table import Table

from edgebench.catalogue import LOWERED, THREE_D
from edgebench.config import LocalizeConfig, base_precision
from edgebench.isolation import IsolatedFailure, run_isolated
from edgebench.parity.layermap import Pair, RefTap, map_taps
from edgebench.parity.layers import (FLOOR, JUMP, LARGEST, LayerRow, culprit, first_below_floor, first_divergent,
                                     judge_layers, largest_jump, layer_errors, sqnr_db)
from edgebench.parity.taps import artifact_taps
from edgebench.records import PARITY_FAILED, PASSED, Artifact, ModelRef, ParityResult, write_json_atomic
from edgebench.tables import number

_SKIPPED_MODULES = ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d")  # their output is their input


@dataclass
class Localization:
    """The per-layer table of one artifact against its reference, and the layers its verdicts name."""

    model: str
    format: str
    precision: str
    reference_form: str
    mapping: dict[str, int]  # how many layers each mapping paired: {"scope": 37} or {"order": 37}
    unmatched: list[str]  # reference layers with no artifact tensor
    layers: list[LayerRow] = field(default_factory=list)
    first_divergent: str = ""  # the first layer whose error jumps (a defect even when the outputs pass)
    first_below_floor: str = ""  # the first layer under its own floor
    largest_jump: str = ""
    culprit: str = ""  # the layer a failing row of this artifact is blamed on (layers.culprit)
    culprit_rule: str = ""  # jump | floor | largest jump
    rel_floor: float = 0.0  # the precision's floor: rel err, i.e. an SQNR of -20 log10(rel_floor) dB
    jump_factor: float = 0.0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> "Localization":
        data = json.loads(Path(path).read_text())
        return cls(**{**data, "layers": [LayerRow.from_dict(r) for r in data["layers"]]})

    def layer(self, name: str) -> LayerRow | None:
        return next((r for r in self.layers if r.name == name), None)

    @property
    def floor_db(self) -> float:
        return sqnr_db(self.rel_floor)

    def blame(self, failed: bool) -> tuple[str, str]:
        """(layer, rule) for a row of this artifact that failed parity (or passed it)."""
        return culprit(self.layers, failed)

    def summary(self, failed: bool = True) -> str:
        """One line for a row's reason."""
        name, rule = self.blame(failed)
        if not self.layers:
            return f"no reference layer paired with an artifact tensor ({len(self.unmatched)} unmatched)"
        if not name:
            worst = self.layer(self.largest_jump)
            tail = f"; largest jump at {self.largest_jump} ({worst.jump:.3g}x)" if worst else ""
            return f"no layer's error jumps past {self.jump_factor:g}x above its floor ({self.floor_db:.0f} dB SQNR){tail}"
        r = self.layer(name)
        why = {JUMP: f"{r.jump:.3g}x the layers before",
               FLOOR: f"under its floor of {self.floor_db:.0f} dB; no layer jumps {self.jump_factor:g}x",
               LARGEST: f"the largest jump, {r.jump:.3g}x; every layer is within its floor of {self.floor_db:.0f} dB"}
        return (f"first divergent layer {r.name} ({r.kind}, rel err {r.rel_err:.2e}, SQNR {r.sqnr_db:.1f} dB, "
                f"{why[rule]}; mapped by {r.mapping})")


# ---------------------------------------------------------------- reference taps


def reference_forms(ref: ModelRef, artifact: Artifact) -> list[str]:
    """The form(s) the artifact may come from: its recorded Artifact.form, else (a file from elsewhere) the
    unlowered form and, when the model lowers, the 2D-lowered one too (localize keeps the better mapped)."""
    from edgebench.models.source import lowering_report  # imports torch

    if artifact.form:
        return [artifact.form]
    return [THREE_D] + ([LOWERED] if lowering_report(ref, True).form == LOWERED else [])


def module_kind(module) -> str:
    """conv, linear, relu, pool (torchvision's Conv3DSimple is a Conv3d), block for containers, else other."""
    from torch import nn
    from torch.nn.modules import conv, pooling

    from edgebench.models.friendly import GlobalMean

    kinds = ((conv._ConvNd, "conv"), (nn.Linear, "linear"), (nn.ReLU, "relu"),
             ((pooling._AvgPoolNd, pooling._MaxPoolNd, pooling._AdaptiveAvgPoolNd, GlobalMean), "pool"))
    kind = next((k for cls, k in kinds if isinstance(module, cls)), None)
    if kind is None and "conv" in type(module).__name__.lower() and hasattr(module, "weight"):
        kind = "conv"  # a rewritten conv (models/lowering.FoldedConv3d) keeps the conv's module path
    return kind or ("block" if any(True for _ in module.children()) else "other")


def reference_taps(module, inputs: dict[str, np.ndarray], input_names: list[str]) -> list[RefTap]:
    """Every module's output for one input, in completion order, copied at hook time (in-place ops such as
    BasicBlock's `out += residual; relu_` would overwrite them). A container returning the tensor one of its
    modules returned (a Sequential, a block ending in its relu) becomes an alias of that tap."""
    import torch

    taps: list[RefTap] = []
    by_object: dict[int, RefTap] = {}
    live: list = []  # keeps the hooked tensors alive so id() stays unique during the forward

    def hook(name: str, kind: str):
        def fn(_module, _args, out):
            if not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return
            if kind == "block" and id(out) in by_object:
                by_object[id(out)].aliases.append(name)
                return
            summed = _module.kt if getattr(_module, "summed", False) else 1  # models/lowering.FoldedConv3d
            tap = RefTap(name, kind, out.detach().clone().float().numpy(), summed=summed)  # an in-place relu_ too
            by_object[id(out)] = tap
            live.append(out)
            taps.append(tap)

        return fn

    handles = [m.register_forward_hook(hook(name, module_kind(m))) for name, m in module.named_modules()
               if name and type(m).__name__ not in _SKIPPED_MODULES]
    try:
        with torch.no_grad():
            module(*(torch.from_numpy(np.ascontiguousarray(inputs[n], dtype=np.float32)) for n in input_names))
    finally:
        for h in handles:
            h.remove()
    return taps


# ---------------------------------------------------------------- the table


def localize(artifact: Artifact, ref: ModelRef, inputs: dict[str, np.ndarray], cfg: LocalizeConfig) -> Localization:
    """Reference and artifact taps for one input, paired, compared, and the first divergent layer named."""
    from edgebench.models.source import build_module  # imports torch

    start = time.perf_counter()
    names = [t.name for t in ref.inputs]
    art_taps = artifact_taps(artifact.format, artifact.path, {n: inputs[n] for n in names})
    candidates = []
    for form in reference_forms(ref, artifact):
        ref_taps = reference_taps(build_module(ref, lowered=form == LOWERED), inputs, names)
        candidates.append((form, *map_taps(ref_taps, art_taps)))
    form, pairs, unmatched = max(candidates, key=lambda c: mapping_fit(c[1]))
    rows = [{"depth": depth, "name": p.ref.name, "kind": p.ref.kind, "op": p.art.op_type, "tensor": p.art.name[:200],
             "mapping": p.method, "shape": list(p.ref.value.shape), "note": p.note, **layer_errors(p.value, p.target)}
            for depth, p in enumerate(pairs)]
    counts: dict[str, int] = {}
    for p in pairs:
        counts[p.method] = counts.get(p.method, 0) + 1
    table = Localization(model=artifact.model, format=artifact.format, precision=artifact.precision,
                         reference_form=form, mapping=counts, unmatched=unmatched)
    return replace(judged_table(table, rows, cfg), seconds=round(time.perf_counter() - start, 3))


def mapping_fit(pairs: list[Pair]) -> tuple[int, int]:
    """How well a reference form maps: layers paired, then those whose tensor has the reference's exact shape.
    A folded (N*T, C, H, W) tensor with T == C also reads as the 5-D (1, C, T, H, W) once squeezed, in the
    wrong order: the form it truly comes from pairs it without a reshape."""
    return len(pairs), sum(p.art.value.shape == p.ref.value.shape for p in pairs)


def judged_table(loc: Localization, rows: list[dict], cfg: LocalizeConfig) -> Localization:
    """The table with every layer judged by the config's rule (its precision's floor, the jump factor) and the
    layers its verdicts name: a pure function of the per-layer errors (a re-judge calls it on saved rows)."""
    floor = cfg.rel_floor.get(base_precision(loc.precision), max(cfg.rel_floor.values(), default=1e-4))
    rows = [dict(r) for r in rows]
    judge_layers(rows, floor, cfg.jump_factor)
    layers = [LayerRow.from_dict(r) for r in rows]
    blamed, rule = culprit(layers, failed=True)
    return replace(loc, layers=layers, first_divergent=first_divergent(layers),
                   first_below_floor=first_below_floor(layers), largest_jump=largest_jump(layers), culprit=blamed,
                   culprit_rule=rule, rel_floor=floor, jump_factor=cfg.jump_factor)


# ---------------------------------------------------------------- in a child, attached to a parity row


def first_clip(inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clip 0 of parity inputs shaped {name: clips x input shape}."""
    return {name: np.asarray(v[0]) for name, v in inputs.items()}


def localize_isolated(artifact: Artifact, ref: ModelRef, inputs: dict[str, np.ndarray], cfg: LocalizeConfig,
                      log_path: str | Path) -> Localization | IsolatedFailure:
    """localize() on the first clip in a child process with the configured budget as its hard timeout."""
    return run_isolated(localize, (artifact, ref, first_clip(inputs), cfg), cfg.timeout_s, log_path)


def attach_localization(result: ParityResult, artifact: Artifact, ref: ModelRef, inputs: dict[str, np.ndarray],
                        cfg: LocalizeConfig, json_path: str | Path) -> Localization | None:
    """Localize (once per artifact: another runtime's row may have done it) and record it on the row:
    first_divergent_layer, localization_path, and the reason's tail."""
    json_path = Path(json_path)
    if json_path.exists():
        found = Localization.load(json_path)
    else:
        found = localize_isolated(artifact, ref, inputs, cfg, json_path.with_suffix(".log"))
        if isinstance(found, IsolatedFailure):
            result.reason = _join(result.reason, f"localization failed: {found.reason} (log: {found.log_path})")
            return None
        write_json_atomic(json_path, found.to_dict())
    record_localization(result, found, json_path)
    return found


def record_localization(result: ParityResult, found: Localization, json_path: str | Path) -> None:
    """The row's culprit layer, the table's path and the reason's tail; a passing row whose layer jumps fails."""
    failed = result.status == PARITY_FAILED
    blamed, rule = found.blame(failed)
    result.first_divergent_layer = blamed
    result.localization_path = str(json_path)
    if result.status == PASSED and rule == JUMP:  # a layer's error jumps though the outputs hide it: a defect
        result.status = PARITY_FAILED
        result.reason = _join(result.reason, f"outputs within bounds, but {found.summary(failed=False)}")
    elif failed or blamed:
        result.reason = _join(result.reason, found.summary(failed))


def should_localize(result: ParityResult, cfg: LocalizeConfig | None) -> bool:
    """A row with values to compare (not a structure mismatch) when the run localizes automatically: a failing
    one, or a passing one too with `all_rows` (a layer that jumps then fails it)."""
    wanted = result.status == PARITY_FAILED or (result.status == PASSED and bool(cfg and cfg.all_rows))
    return bool(cfg and cfg.auto and wanted and result.max_abs_err is not None)


def _join(reason: str, more: str) -> str:
    return f"{reason}; {more}" if reason else more


def localization_table(loc: Localization, rows: int = 12):
    """A short rich table: the layers around the first divergent one (or the largest jumps when none)."""

    title = f"{loc.model} {loc.format} {loc.precision}: per-layer error ({loc.summary()})"
    table = Table(title=title)
    numeric = ("depth", "max abs err", "rel err", "SQNR dB", "cosine", "jump")
    for col in ("depth", "layer", "kind", "op", "mapping", *numeric[1:], "within floor"):
        table.add_column(col, justify="right" if col in numeric else "left")
    focus = loc.layer(loc.culprit or loc.largest_jump)
    if focus is None:
        return table
    lo = max(0, focus.depth - rows // 3)
    for r in loc.layers[lo: lo + rows]:
        mark = "[bold red]" if r.name == loc.culprit else ""
        table.add_row(str(r.depth), f"{mark}{r.name}", r.kind, r.op, r.mapping, number(r.max_abs_err, ".2e"),
                      number(r.rel_err, ".2e"), number(r.sqnr_db, ".1f"), number(r.cosine, ".6f"),
                      number(r.jump, ".3g"), "yes" if r.within_floor else "[red]no")
    return table
