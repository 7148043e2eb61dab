"""Repair one failing reduced-precision file: rank its layers, search a small float set, keep the trials.

The result is an artifact like any other, precision `<precision>-mixed`, or a `repair_failed` record
naming what was tried (never a float file under that name). The trials go to
<run>/repair/<model>-<format>-<precision>.json: the ranking and every trial (layer set, verdict, seconds).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, get_args

import numpy as np

from edgebench.config import Precision, mixed_precision
from edgebench.converters.registry import get_converter
from edgebench.errors import UserError
from edgebench.isolation import IsolatedFailure, run_isolated
from edgebench.models.calibration import make_calibration
from edgebench.parity.localize import Localization
from edgebench.records import (
    ACCURACY_FAILED,
    PARITY_FAILED,
    REPAIR_FAILED,
    SKIPPED,
    AccuracyResult,
    Artifact,
    ParityResult,
    RepairResult,
    write_json_atomic,
)
from edgebench.repair.search import SearchResult, default_max_float, default_max_trials, find_float_layers
from edgebench.repair.sensitivity import LAYER_KINDS, Sensitivity, order_for_search, rank_layers
from edgebench.repair.trials import TrialJudge, TrialSteps

if TYPE_CHECKING:
    from edgebench.config import PipelineConfig
    from edgebench.converters.base import Converter
    from edgebench.evaluation.clips import EvalSet
    from edgebench.runs import PreparedModel, RunSettings

REPAIRED, NOT_NEEDED = "repaired", "not_needed"


@dataclass
class RepairOutcome:
    """The repair's record, and the artifact it adds to the run (None when there was nothing to do)."""

    result: RepairResult
    artifact: Artifact | None = None


def failing(artifact: Artifact, parity: list[ParityResult], accuracy: list[AccuracyResult], by_accuracy: bool,
            precision: str | None = None) -> bool:
    """Whether a file (or the same format's file of `precision`) fails its judge: the accuracy bound with a
    dataset, else the parity bound."""
    rows = accuracy if by_accuracy else parity
    bad = ACCURACY_FAILED if by_accuracy else PARITY_FAILED
    return any(r.status == bad for r in rows if (r.model, r.format, r.precision) ==
               (artifact.model, artifact.format, precision or artifact.precision))


def divergent_layers(parity: list[ParityResult], artifact: Artifact) -> tuple[list[str], int]:
    """The conv/linear layers the localization of the file's failing rows blames (its culprit first, then every
    divergent one in depth order), and how many conv/linear layers it saw (0: no localization)."""
    paths = {r.localization_path for r in parity if r.localization_path and r.status == PARITY_FAILED
             and (r.model, r.format, r.precision) == (artifact.model, artifact.format, artifact.precision)}
    names: list[str] = []
    seen: set[str] = set()
    for path in sorted(p for p in paths if Path(p).exists()):
        loc = Localization.load(path)
        layers = {row.name: row for row in loc.layers if row.kind in LAYER_KINDS}
        blamed, _ = loc.blame(failed=True)
        names += [name for name in [blamed, *(n for n, row in layers.items() if row.divergent)] if name in layers]
        seen |= set(layers)
    return list(dict.fromkeys(names)), len(seen)


def _rank_job(ref, lowered: bool, precision: str, clips_path: str) -> list[Sensitivity]:
    """In the child: the single-layer quantization error of every candidate layer on the calibration clips."""
    from edgebench.models.source import build_module

    with np.load(clips_path) as data:
        clips = list(data["clips"])
    return rank_layers(build_module(ref, lowered=lowered), precision, clips)


def trials_path(settings: RunSettings, artifact: Artifact) -> Path:
    return settings.run_dir / "repair" / f"{artifact.model}-{artifact.format}-{artifact.precision}.json"


def repair_artifact(pm: PreparedModel, artifact: Artifact, settings: RunSettings, parity: list[ParityResult],
                    steps: TrialSteps, eset: EvalSet | None = None, eager: AccuracyResult | None = None,
                    converter: Converter | None = None) -> RepairOutcome:
    """Search the smallest set of layers to keep in float that makes `artifact` (failing) pass its judge
    (`steps`: the pipeline's parity and accuracy steps each trial is judged with)."""
    cfg = settings.config.repair
    converter = converter or get_converter(artifact.format)
    record = RepairResult(artifact.model, artifact.format, artifact.precision, SKIPPED,
                          judge="accuracy" if eset is not None else "parity", keep_in=cfg.keep_in)
    if why := converter.mix_refusal(artifact.precision, cfg.keep_in):
        record.reason = why
        return RepairOutcome(record)
    options = {**settings.config.converter_options.get(artifact.format, {}), "keep_in": cfg.keep_in}
    start = time.perf_counter()
    out = trials_path(settings, artifact)
    clips = make_calibration(pm.ref, settings.config.calibration, Path(settings.cache_dir))
    quiet = replace(settings, config=settings.config.model_copy(
        update={"localize": settings.config.localize.model_copy(update={"auto": False})}))
    judge = TrialJudge(pm, artifact.format, artifact.precision, options, quiet, steps, eset, eager, converter)
    divergent, record.candidates = divergent_layers(parity, artifact)
    first = [judge(tuple(divergent[:1]))] if divergent else []  # the failing file's own first divergent layer: often enough
    ranking = []
    if first and first[0].passed:
        order = divergent
        found = SearchResult(first[0].layers, "", first)
    else:
        ranking = run_isolated(_rank_job, (pm.ref, converter.lowered_form, artifact.precision, clips.path),
                               cfg.budget_s, out.with_suffix(".ranking.log"))
        if isinstance(ranking, IsolatedFailure):
            record.status, record.reason = REPAIR_FAILED, f"repair_failed: ranking the layers failed: {ranking.reason}"
            return RepairOutcome(record, _failed(artifact, record.reason))
        order = order_for_search(ranking, divergent)
        found = find_float_layers(order, judge, cfg.max_float_layers or default_max_float(len(order)),
                                  cfg.max_trials or default_max_trials(len(order)), cfg.budget_s, first)
    record.candidates = len(ranking) or record.candidates
    record.max_trials = cfg.max_trials or default_max_trials(record.candidates)
    record.trials, record.seconds = len(found.trials), round(time.perf_counter() - start, 3)
    record.trials_path = str(out)
    if found.layers is None:
        record.status = REPAIR_FAILED
        record.reason = f"repair_failed: {found.reason}; {_tried(found)}"
        _write_trials(out, record, ranking, order, found)
        return RepairOutcome(record, _failed(artifact, record.reason))
    record.status, record.float_layers = REPAIRED, found.layers
    record.reason = (f"{len(found.layers)} of {record.candidates} layers kept in {cfg.keep_in}: {', '.join(found.layers)} "
                     f"({len(found.trials)} trials, {record.seconds:.0f} s)")
    _write_trials(out, record, ranking, order, found)
    return RepairOutcome(record, judge.export(found.layers))  # the passing trial's file, from the cache


def not_needed(artifact: Artifact, judge: str) -> RepairOutcome:
    """The record of a reduced-precision file that passes its bound: nothing to repair, said so."""
    return RepairOutcome(RepairResult(artifact.model, artifact.format, artifact.precision, NOT_NEEDED, judge=judge,
                                      reason=f"{artifact.format} {artifact.precision} passes its {judge} bound: "
                                             "nothing to repair"))


def _failed(artifact: Artifact, reason: str) -> Artifact:
    """The row of a repair that found nothing: precision <precision>-mixed, status repair_failed, no file."""
    return Artifact(model=artifact.model, format=artifact.format, precision=mixed_precision(artifact.precision),
                    status=REPAIR_FAILED, reason=reason, versions=artifact.versions, calibration=artifact.calibration)


def _tried(found: SearchResult) -> str:
    """What was tried, for the row: every layer set with its verdict."""
    sets = "; ".join(f"{{{', '.join(t.layers)}}} {t.verdict}" for t in found.trials)
    return f"tried {len(found.trials)} sets: {sets}" if found.trials else "tried no set"


def _write_trials(path: Path, record: RepairResult, ranking: list[Sensitivity], order: list[str],
                  found: SearchResult) -> None:
    write_json_atomic(path, {
        "repair": record.to_dict(), "search_order": order,
        "ranking": [{"layer": s.layer, "single_layer_error": s.error} for s in ranking],
        "trials": [{"n": i + 1, "layers": list(t.layers), "verdict": t.verdict, "passed": t.passed,
                    "seconds": t.seconds, "cached": t.cached, "reason": t.reason, "figures": t.figures,
                    "artifact": t.artifact} for i, t in enumerate(found.trials)],
        "result": list(found.layers) if found.layers is not None else None, "why_not": found.reason,
    })


def repair_config(config: PipelineConfig, formats: list[str] | None, precision: str) -> PipelineConfig:
    """The run config of `edgebench repair`: each format in fp32 and `precision`, the repair step on.

    Default formats: the configured ones whose converter can keep layers of a `precision` file in repair.keep_in.
    A format named on the command line that cannot is a UserError saying why.
    """
    reduced = [p for p in get_args(Precision) if p != "fp32"]
    if precision not in reduced:
        raise UserError(f"--precision: {precision!r} is not a reduced precision; choose one of {', '.join(reduced)}")
    keep_in = config.repair.keep_in
    if formats:
        for fmt in formats:
            if why := get_converter(fmt).mix_refusal(precision, keep_in):
                raise UserError(f"--formats: {why}")
    else:
        formats = [f for f in config.formats if get_converter(f).mix_refusal(precision, keep_in) is None]
        if not formats:
            raise UserError(f"repair: no configured format can keep layers of a {precision} file in {keep_in}")
    return config.model_copy(update={"formats": {f: ["fp32", precision] for f in formats},
                                     "repair": config.repair.model_copy(update={"enabled": True})})
