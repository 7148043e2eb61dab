"""The Python API: `run` a whole benchmark from a script or notebook and get the records back.

`run` executes the same steps as the Prefect flow (`edgebench run`), one after the other in this
process, without a Prefect server: exports, parity, benchmarks, then results.csv, run.json,
report.html and the history row set. Bad input raises `UserError` before any work starts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from edgebench.errors import UserError
from edgebench.records import AccuracyResult, Artifact, LatencyResult, ModelRef, ParityResult, RunData, TensorSpec

__all__ = ["run", "RunResult", "UserError", "Artifact", "ParityResult", "LatencyResult", "AccuracyResult",
           "ModelRef", "RunData", "TensorSpec"]


@dataclass
class RunResult:
    """What `run` produced: the report files, every record and the findings against history."""

    run_id: str
    run_dir: Path
    report_html: Path
    results_csv: Path
    models: list[ModelRef] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    parity: list[ParityResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    findings: list = field(default_factory=list)

    def rows(self):
        """results.csv as a pandas DataFrame: one row per (model, format, precision, runtime, device)."""
        from edgebench.reports.writer import read_results_csv

        return read_results_csv(self.results_csv)


def _names(value: str | Sequence[str] | None) -> list[str] | None:
    return [value] if isinstance(value, str) else list(value) if value else None


def run(models: str | Sequence[str] | None = None, formats: str | Sequence[str] | None = None,
        runtimes: Sequence[str] | None = None, devices: Sequence[str] | None = None, quick: bool = False,
        out: str | Path | None = None, config: str | Path | None = None,
        input_shape: Sequence[int] | None = None, weights: str | Path | None = None,
        use_cache: bool = True, parity: bool = True, bench: bool = True) -> RunResult:
    """Export, check and benchmark the configured (or given) models; every report written, records returned.

    Arguments narrow configs/pipeline.yaml (or `config`) the way the command-line options do;
    `input_shape` replaces the first input's shape (small shapes for fast checks).
    """
    import multiprocessing

    from edgebench import pipeline
    from edgebench.config import load_pipeline_config
    from edgebench.console import log_to, setup
    from edgebench.preflight import check_run

    if multiprocessing.parent_process() is not None:  # a spawned child re-running an unguarded script
        raise UserError("edgebench.run() called while a spawned child imports the script: "
                        "put the call under `if __name__ == \"__main__\":`")
    if not logging.getLogger().handlers:  # the caller configured no logging: the command line's routing
        setup()
    shape = tuple(input_shape) if input_shape else None
    weights = str(weights) if weights else None
    cfg = pipeline.narrow_config(load_pipeline_config(Path(config) if config else None), _names(formats),
                                 runtimes=_names(runtimes), devices=_names(devices), models=_names(models))
    check_run(cfg, config, weights, shape)
    settings = pipeline.new_run(cfg, out, quick=quick, use_cache=use_cache)
    log_to(settings.run_dir)
    results = [pipeline.run_model_sequential(name, settings, weights, shape, parity=parity, bench=bench)
               for name in cfg.models]
    paths = pipeline.finish_run(settings, results)  # also fills each latency row's speed-up, in place
    return RunResult(
        run_id=settings.run_id, run_dir=paths.run_dir, report_html=paths.report_html, results_csv=paths.results_csv,
        models=[r.ref for r in results], artifacts=[a for r in results for a in r.artifacts],
        parity=[p for r in results for p in r.parity], latency=[row for r in results for row in r.latency],
        findings=list(paths.findings))
