"""The `export-and-benchmark` flow: resolve, export (parallel), parity (as each artifact lands),
benchmarks (one at a time per device, after the exports), reports."""

from __future__ import annotations

import contextlib
import os
from itertools import chain
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.futures import as_completed

from edgebench import interrupts, pipeline
from edgebench.config import load_pipeline_config
from edgebench.console import log_to
from edgebench.flows.progress import describe, expect, say
from edgebench.flows.stopping import StoppingTaskRunner
from edgebench.devices.base import BenchJob, Measured
from edgebench.records import AccuracyResult, Artifact, ParityResult

Budget = Literal["quick", "full"]


@task(name="prepare-model")
def prepare_task(name: str, settings: pipeline.RunSettings, weights: str | None,
                 input_shape: tuple[int, ...] | None) -> pipeline.PreparedModel:
    pm = pipeline.prepare_model(name, settings, weights, input_shape)
    say(f"{name}: inputs and reference ready ({pm.ref.provenance}, {pm.flops / 1e9:.2f} GFLOP)")
    return pm


@task(name="export", task_run_name="export-{fmt}-{precision}")
def export_task(pm: pipeline.PreparedModel, fmt: str, precision: str, options: dict,
                settings: pipeline.RunSettings) -> Artifact:
    artifact = pipeline.export_one(pm.ref, fmt, precision, options, settings)
    say(f"export {describe(artifact)}")
    return artifact


@task(name="parity", task_run_name="parity-{artifact.format}-{artifact.precision}-{runtime}")
def parity_task(pm: pipeline.PreparedModel, artifact: Artifact, runtime: str,
                settings: pipeline.RunSettings) -> ParityResult:
    result = pipeline.parity_one(pm, artifact, runtime, settings)
    say(f"parity {describe(result)}")
    return result


@task(name="prepare-evaluation")
def prepare_eval_task(pm: pipeline.PreparedModel, settings: pipeline.RunSettings):
    eset = pipeline.prepare_evaluation(pm, settings)
    if eset is not None:
        say(f"{pm.ref.name}: {len(eset.videos)} videos x up to {eset.clips_per_video} clips decoded for evaluation"
            f"{f', {len(eset.unreadable)} unreadable' if eset.unreadable else ''}")
    return eset


@task(name="evaluate", task_run_name="evaluate-{artifact.format}-{artifact.precision}-{runtime}")
def evaluate_task(pm: pipeline.PreparedModel, eset, artifact: Artifact, runtime: str,
                  settings: pipeline.RunSettings) -> AccuracyResult:
    result = pipeline.evaluate_one(pm, eset, artifact, runtime, settings)
    say(f"accuracy {describe(result)}" + (f" top-1 {result.top1:.1f} %" if result.top1 is not None else ""))
    return result


@task(name="benchmark", task_run_name="bench-{job.artifact.format}-{job.row_precision}-{job.runtime}-{job.device}")
def bench_task(pm: pipeline.PreparedModel, job: BenchJob, settings: pipeline.RunSettings) -> Measured:
    # One benchmark per device at a time, across runs too: the local harness holds a file lock per device
    # on this host; with a server (edgebench serve), a global concurrency limit per device as well.
    with device_slot(job.device) if job.exclusive else contextlib.nullcontext():
        result = pipeline.bench_one(pm, job, settings)
    say(f"bench {describe(result.latency)}")
    return result


def device_slot(device: str):
    """The server's concurrency limit for the device; nothing in ephemeral mode (it has no limits)."""
    if not os.environ.get("PREFECT_API_URL"):
        return contextlib.nullcontext()
    return concurrency(f"edgebench-device-{device}", occupy=1, strict=False)


@task(name="reports")
def report_task(settings: pipeline.RunSettings, results: list[pipeline.ModelResults]):
    return pipeline.finish_run(settings, results)


@flow(name="model-pipeline", flow_run_name="{name}", task_runner=StoppingTaskRunner(max_workers=2))
def model_flow(name: str, settings: pipeline.RunSettings, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> pipeline.ModelResults:
    """One model: exports in parallel, parity per artifact as soon as it exists, then benchmarks."""
    pm = prepare_task(name, settings, weights, input_shape)
    eset = prepare_eval_task(pm, settings)  # None without a dataset; a bad one fails before any export
    result = pipeline.ModelResults(pm.ref)
    exports = [export_task.submit(pm, f, p, o, settings) for f, p, o in pipeline.planned_exports(settings.config)]
    expect("export", len(exports))
    checks = []
    for artifact in chain((done.result() for done in as_completed(exports)),
                          pipeline.external_artifacts(pm.ref, settings)):  # files built elsewhere: the same checks
        result.artifacts.append(artifact)
        if artifact.ok:
            expect("parity", len(pipeline.parity_runtimes(artifact.format, settings.config)))
            checks += [parity_task.submit(pm, artifact, rt, settings)
                       for rt in pipeline.parity_runtimes(artifact.format, settings.config)]
    result.parity = [c.result() for c in checks]
    if eset is not None:  # after parity, before benchmarks: its children must not share the cores with them
        evals = [evaluate_task.submit(pm, eset, a, rt, settings)
                 for a, rt in pipeline.evaluation_plan([a for a in result.artifacts if a.ok], pm, settings.config)]
        result.accuracy = pipeline.judge_accuracy(pm, [e.result() for e in evals])
    # Benchmarks only now: exports and parity children no longer compete for the same cores.
    ok = [a for a in result.artifacts if a.ok]
    plan = pipeline.bench_plan(ok, pm, settings.config)
    expect("bench", len(plan))
    measured = [bench_task(pm, job, settings) for job in plan]
    result.latency = [m.latency for m in measured]
    result.parity += [m.parity for m in measured if m.parity is not None]  # outputs a hub device returned
    return result


@flow(name="export-and-benchmark", task_runner=StoppingTaskRunner())  # stopped: children killed, run marked
def export_and_benchmark(
    models: list[str] | None = None,
    formats: list[str] | None = None,
    precisions: list[str] | None = None,
    runtimes: list[str] | None = None,
    devices: list[str] | None = None,
    budget: Budget = "full",
    quick: bool = False,
    out: str | None = None,
    fail_on_regression: bool = False,
    use_cache: bool = True,
    config_path: str | None = None,
    input_shape: list[int] | None = None,
    weights: str | None = None,
    calibration: list[str] | None = None,
) -> str:
    """Export every configured model and format, check parity, benchmark, report; returns the HTML path."""
    config = pipeline.narrow_config(load_pipeline_config(Path(config_path) if config_path else None),
                                    formats, precisions, runtimes, devices, models, calibration)
    settings = pipeline.new_run(config, out, quick=quick or budget == "quick", use_cache=use_cache)
    log_to(settings.run_dir)  # other libraries' warnings: <run_dir>/logs/warnings.log, counted in the report
    interrupts.begin_run(settings)  # sweeps dead runs' temporary cache folders, watches the server
    say(f"run {settings.run_id}: models {', '.join(config.models)}, formats {', '.join(config.formats)}, "
        f"{'quick' if settings.quick else 'full'} budget, {settings.threads} threads")
    shape = tuple(input_shape) if input_shape else None
    results = [model_flow(name, settings, weights, shape) for name in config.models]
    paths = report_task(settings, results)
    say(f"report {paths.report_html}")
    regressions = [f for f in paths.findings if f.severity == "error"]
    if regressions:
        get_run_logger().warning("%d regression(s): %s", len(regressions), "; ".join(f.message for f in regressions))
        if fail_on_regression:
            raise RuntimeError(f"{len(regressions)} regression(s) found; see {paths.report_html}")
    return str(paths.report_html)
