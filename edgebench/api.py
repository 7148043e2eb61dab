"""The Python API: `run`, `check` and `evaluate` from a script or notebook, with the records back.

`run` executes the same steps as the Prefect flow (`edgebench run`), one after the other in this
process, without a Prefect server: exports, parity, benchmarks, then results.csv, run.json,
report.html and the history row set. `check` is `edgebench check` (an artifact built elsewhere),
`evaluate` is `edgebench evaluate` (accuracy on a labelled video set). Bad input raises
`UserError` before any work starts.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Sequence

from edgebench import pipeline
from edgebench.checking import CheckOutcome, check_file
from edgebench.config import load_pipeline_config
from edgebench.console import log_to, setup
from edgebench.errors import UserError
from edgebench.models.registry import load_model_config
from edgebench.preflight import check_run
from edgebench.records import AccuracyResult, Artifact, LatencyResult, ModelRef, ParityResult, RunData, TensorSpec
from edgebench.reports.runinfo import run_from_dict

__all__ = ["run", "check", "evaluate", "RunResult", "CheckOutcome", "UserError", "Artifact", "ParityResult",
           "LatencyResult", "AccuracyResult", "ModelRef", "RunData", "TensorSpec"]


@dataclass
class RunResult(RunData):
    """What a run produced: its records (read back from run.json), report files and findings against history."""

    run_dir: Path | None = None
    report_html: Path | None = None
    results_csv: Path | None = None
    findings: list = field(default_factory=list)

    def rows(self):
        """results.csv as a pandas DataFrame: one row per (model, format, precision, runtime, device)."""
        from edgebench.reports.writer import read_results_csv  # imports pandas

        return read_results_csv(self.results_csv)


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    return [value] if isinstance(value, str) else list(value) if value else None


def _paths(value: str | Path | Sequence[str | Path] | None) -> list[str] | None:
    return [str(value)] if isinstance(value, (str, Path)) else [str(v) for v in value] if value else None


def _settings(config, out, quick: bool, use_cache: bool, models=None, formats=None, runtimes=None, devices=None,
              input_shape=None, weights=None, calibration=None):
    """Logging routed, the config narrowed and checked with every model: a run's settings, nothing written yet."""
    if multiprocessing.parent_process() is not None:  # a spawned child re-running an unguarded script
        raise UserError("edgebench called while a spawned child imports the script: "
                        "put the call under `if __name__ == \"__main__\":`")
    if not logging.getLogger().handlers:  # the caller configured no logging: the command line's routing
        setup()
    cfg = pipeline.narrow_config(load_pipeline_config(Path(config) if config else None), _names(formats),
                                 runtimes=_names(runtimes), devices=_names(devices), models=_names(models),
                                 calibration=_paths(calibration))
    check_run(cfg, config, weights, input_shape)
    return pipeline.new_run(cfg, out, quick=quick, use_cache=use_cache)


def _finish(settings, results) -> RunResult:
    paths = pipeline.finish_run(settings, results)
    run = run_from_dict(json.loads(paths.run_json.read_text())["records"])
    return RunResult(**{f.name: getattr(run, f.name) for f in fields(RunData)}, run_dir=paths.run_dir,
                     report_html=paths.report_html, results_csv=paths.results_csv, findings=list(paths.findings))


def run(models: str | Sequence[str] | None = None, formats: str | Sequence[str] | None = None,
        runtimes: Sequence[str] | None = None, devices: Sequence[str] | None = None, quick: bool = False,
        out: str | Path | None = None, config: str | Path | None = None,
        input_shape: Sequence[int] | None = None, weights: str | Path | None = None,
        use_cache: bool = True, parity: bool = True, bench: bool = True,
        calibration: str | Path | Sequence[str | Path] | None = None) -> RunResult:
    """Export, check and benchmark the configured (or given) models; every report written, records returned.

    Arguments narrow configs/pipeline.yaml (or `config`) the way the command-line options do;
    `input_shape` replaces the first input's shape (small shapes for fast checks); `calibration`
    replaces calibration.videos (files, folders, <label>/<video> trees, CSV manifests).
    """
    shape, weights = tuple(input_shape) if input_shape else None, str(weights) if weights else None
    settings = _settings(config, out, quick, use_cache, models, formats, runtimes, devices, shape, weights,
                         calibration)
    log_to(settings.run_dir)
    return _finish(settings, [pipeline.run_model_sequential(name, settings, weights, shape, parity=parity, bench=bench,
                                                            evaluate=None)  # as the flow: when a dataset is set
                              for name in settings.config.models])


def check(artifact: str | Path, model: str = "resnet_mixed", precision: str = "fp32", format: str | None = None,
          runtimes: Sequence[str] | None = None, bench: bool = False, localize: bool = False, quick: bool = False,
          out: str | Path | None = None, config: str | Path | None = None,
          input_shape: Sequence[int] | None = None, weights: str | Path | None = None) -> CheckOutcome:
    """`edgebench check`: an artifact file built elsewhere against the model (io spec, parity, [latency])."""
    shape, weights = tuple(input_shape) if input_shape else None, str(weights) if weights else None
    settings = _settings(config, out or pipeline.DEFAULT_OUT / "checks", quick, False, model, runtimes=runtimes,
                         input_shape=shape, weights=weights)
    log_to(settings.run_dir)
    return check_file(artifact, model, settings, weights, shape, precision, format, bench=bench, localize_all=localize)


def evaluate(model: str = "resnet_mixed", dataset: str | Path | None = None, clips_per_video: int | None = None,
             max_videos: int | None = None, formats: str | Sequence[str] | None = None,
             runtimes: Sequence[str] | None = None, out: str | Path | None = None, config: str | Path | None = None,
             weights: str | Path | None = None, use_cache: bool = True,
             calibration: str | Path | Sequence[str | Path] | None = None) -> RunResult:
    """`edgebench evaluate`: every artifact's top-1/top-5 on a labelled video set against eager (`accuracy`)."""
    if not dataset and not load_model_config(model).evaluation.dataset:
        raise UserError(f"evaluate: no dataset for {model}: pass dataset= or set evaluation.dataset in its model YAML")
    weights = str(weights) if weights else None
    settings = _settings(config, out, False, use_cache, model, formats, runtimes, weights=weights,
                         calibration=calibration)
    log_to(settings.run_dir)
    chosen = {"dataset": str(dataset) if dataset else None, "clips_per_video": clips_per_video, "max_videos": max_videos}
    return _finish(settings, [pipeline.run_model_sequential(model, settings, weights, parity=False, bench=False,
                                                            evaluate=True, evaluation=chosen)])
