"""One trial of a repair: a layer set exported through the toolchain's own per-layer mechanism, judged like any
artifact (the accuracy bound on the run's dataset when there is one, else the parity bound on every runtime)."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable

from edgebench.converters.export import export_artifact
from edgebench.evaluation.evaluate import evaluation_config, judge_drops
from edgebench.records import PASSED, SKIPPED, AccuracyResult, Artifact, ParityResult
from edgebench.repair.search import Trial

if TYPE_CHECKING:
    from edgebench.converters.base import Converter
    from edgebench.evaluation.clips import EvalSet
    from edgebench.runs import PreparedModel, RunSettings

_FIGURES = ("psnr_db", "cosine", "max_abs_err", "top1", "top1_drop", "top1_drop_low", "top1_drop_high")


def verdict_of(rows: list) -> tuple[bool, str, str]:
    """(passed, status, reason) of judged rows: passed when at least one ran and none failed."""
    ran = [r for r in rows if r.status != SKIPPED]
    failed = [r for r in ran if r.status != PASSED]
    if failed:
        return False, failed[0].status, f"{failed[0].runtime}: {failed[0].reason}"
    if not ran:
        return False, SKIPPED, "; ".join(sorted({f"{r.runtime}: {r.reason}" for r in rows})) or "no runtime ran it"
    return True, PASSED, ""


def figures_of(rows: list) -> dict:
    """The judged rows' figures per runtime: {runtime: {psnr_db: ..., top1_drop: ...}}."""
    return {r.runtime: {f: getattr(r, f) for f in _FIGURES if getattr(r, f, None) is not None} for r in rows}


@dataclass(frozen=True)
class TrialSteps:
    """The pipeline's own steps a trial is judged with (passed down: the pipeline sits above this package)."""

    check: Callable[..., ParityResult]  # pipeline.parity_one(pm, artifact, runtime, settings, tag)
    score: Callable[..., AccuracyResult]  # pipeline.evaluate_one(pm, eset, artifact, runtime, settings, tag)
    runtimes: list[str]  # the runtimes that run the format


@dataclass
class TrialJudge:
    """Callable on a layer set: exports it (cached by its set), judges it, returns the Trial. Small and picklable
    state only: the prepared model, the run settings, the format's options and the eager accuracy row."""

    pm: PreparedModel
    fmt: str
    precision: str
    options: dict
    settings: RunSettings  # with automatic localization off: a failing trial needs no per-layer table
    steps: TrialSteps
    eset: EvalSet | None = None  # given: the accuracy bound judges
    eager: AccuracyResult | None = None  # the eager row the accuracy drops are measured against
    converter: Converter | None = None  # tests inject faults; default: the registry's

    def export(self, layers: tuple[str, ...]) -> Artifact:
        s = self.settings
        return export_artifact(self.pm.ref, self.fmt, self.precision, {**self.options, "float_layers": list(layers)},
                               s.cache_dir, s.config.export_timeout_s, use_cache=s.use_cache, converter=self.converter,
                               calibration=s.config.calibration)

    def judge(self, artifact: Artifact, tag: str) -> list[ParityResult] | list[AccuracyResult]:
        """The rows the verdict is read from: accuracy rows judged against eager, else parity rows."""
        if self.eset is None:
            return [self.steps.check(self.pm, artifact, rt, self.settings, tag) for rt in self.steps.runtimes]
        rows = [self.steps.score(self.pm, self.eset, artifact, rt, self.settings, tag) for rt in self.steps.runtimes]
        return judge_drops([replace(self.eager), *rows], evaluation_config(self.pm.ref))[1:]

    def __call__(self, layers: tuple[str, ...]) -> Trial:
        start = time.perf_counter()
        artifact = self.export(layers)
        if not artifact.ok:
            return Trial(layers, False, artifact.status, artifact.reason, round(time.perf_counter() - start, 3),
                         artifact=artifact.path, cached=artifact.cached)
        rows = self.judge(artifact, f"trial-{artifact.cache_key[:8]}")
        passed, status, reason = verdict_of(rows)
        return Trial(layers, passed, status, reason, round(time.perf_counter() - start, 3), figures_of(rows),
                     artifact.path, artifact.cached)
