"""`edgebench check`: a file built elsewhere through the pipeline's own steps (pipeline.model_branch), in their
order: its I/O against the model's first, then parity on every configured runtime that runs its format (every
row localized with `--localize`), latency with `--bench`, and the run's reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from edgebench.errors import UserError
from edgebench.external import external_artifact
from edgebench.models.inputs import load_inputs
from edgebench.parity.localize import Localization, attach_localization
from edgebench.pipeline import Steps, finish_run, localization_path, model_branch, parity_runtimes
from edgebench.records import PASSED, SKIPPED, Artifact, LatencyResult, ParityResult
from edgebench.runs import PreparedModel, RunSettings


@dataclass
class CheckOutcome:
    """What `edgebench check` found: the artifact, its rows, the per-layer tables and the exit code."""

    artifact: Artifact
    parity: list[ParityResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    localizations: list[Localization] = field(default_factory=list)
    report_html: str = ""

    @property
    def exit_code(self) -> int:
        """0: every row that ran passed and one did; 1: a check failed or nothing could run it."""
        ran = [r for r in [*self.parity, *self.latency] if r.status != SKIPPED]
        return 0 if ran and any(r.status == PASSED for r in self.parity) and all(r.status == PASSED for r in ran) else 1


class LocalizeEveryRow(Steps):
    """The steps of a run, each parity row also localized (a run localizes only failing ones)."""

    def check(self, pm: PreparedModel, artifact: Artifact, runtimes: list[str]) -> list:
        rows = super().check(pm, artifact, runtimes)
        inputs = load_inputs(Path(pm.inputs_path))
        for row in rows:
            if row.status != SKIPPED and not row.localization_path and row.max_abs_err is not None:
                attach_localization(row, artifact, pm.ref, inputs, self.settings.config.localize,
                                    localization_path(self.settings, artifact))
        return rows


def check_file(path: str | Path, model: str, settings: RunSettings, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None, precision: str = "fp32", fmt: str | None = None,
               bench: bool = False, localize_all: bool = False) -> CheckOutcome:
    """Spec check first (a UserError before any value), then the model's branch with this one artifact."""
    from edgebench.models.source import resolve_model  # imports torch

    artifact = external_artifact(path, resolve_model(model, weights, input_shape), precision, fmt)
    if not parity_runtimes(artifact.format, settings.config):
        raise UserError(f"{path}: no configured runtime runs {artifact.format} (configured: "
                        f"{', '.join(settings.config.runtimes)})")
    steps = LocalizeEveryRow(settings) if localize_all else Steps(settings)
    result = model_branch(model, steps, weights, input_shape, bench=bench, evaluate=False, given=[artifact])
    outcome = CheckOutcome(artifact, parity=result.parity, latency=result.latency)
    json_path = localization_path(settings, artifact)
    if json_path.exists():
        outcome.localizations.append(Localization.load(json_path))
    outcome.report_html = str(finish_run(settings, [result]).report_html)
    return outcome
