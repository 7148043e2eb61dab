"""The `export-and-benchmark` flow: resolve, export (parallel), parity (as each artifact lands),
benchmarks (one at a time per device, after the exports), reports."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.futures import as_completed

from edgebench import fleet, interrupts, pipeline
from edgebench.benchmarks.local import device_key
from edgebench.config import load_pipeline_config
from edgebench.console import log_to
from edgebench.devices.base import BenchJob, Measured
from edgebench.flows.fleet import dispatch_models
from edgebench.flows.progress import describe, expect, say
from edgebench.flows.stopping import StoppingTaskRunner
from edgebench.records import AccuracyResult, Artifact, ParityResult
from edgebench.runs import ModelResults, PreparedModel, RunSettings
from edgebench.storage import Storage

Budget = Literal["quick", "full"]


@task(name="prepare-model")
def prepare_task(name: str, settings: RunSettings, weights: str | None,
                 input_shape: tuple[int, ...] | None) -> PreparedModel:
    pm = pipeline.prepare_model(name, settings, weights, input_shape)
    say(f"{name}: inputs and reference ready ({pm.ref.provenance}, {pm.flops / 1e9:.2f} GFLOP)")
    return pm


@task(name="export", task_run_name="export-{fmt}-{precision}")
def export_task(pm: PreparedModel, fmt: str, precision: str, options: dict,
                settings: RunSettings) -> Artifact:
    artifact = pipeline.export_one(pm.ref, fmt, precision, options, settings)
    say(f"export {describe(artifact)}")
    return artifact


@task(name="parity", task_run_name="parity-{artifact.format}-{artifact.precision}-{runtime}")
def parity_task(pm: PreparedModel, artifact: Artifact, runtime: str,
                settings: RunSettings) -> ParityResult:
    result = pipeline.parity_one(pm, artifact, runtime, settings)
    say(f"parity {describe(result)}")
    return result


@task(name="prepare-evaluation")
def prepare_eval_task(pm: PreparedModel, settings: RunSettings):
    eset = pipeline.prepare_evaluation(pm, settings)
    if eset is not None:
        say(f"{pm.ref.name}: {len(eset.videos)} videos x up to {eset.clips_per_video} clips decoded for evaluation"
            f"{f', {len(eset.unreadable)} unreadable' if eset.unreadable else ''}")
    return eset


@task(name="evaluate", task_run_name="evaluate-{artifact.format}-{artifact.precision}-{runtime}")
def evaluate_task(pm: PreparedModel, eset, artifact: Artifact, runtime: str,
                  settings: RunSettings) -> AccuracyResult:
    result = pipeline.evaluate_one(pm, eset, artifact, runtime, settings)
    say(f"accuracy {describe(result)}" + (f" top-1 {result.top1:.1f} %" if result.top1 is not None else ""))
    return result


@task(name="repair")
def repair_task(pm: PreparedModel, result: ModelResults, settings: RunSettings, eset) -> ModelResults:
    added = pipeline.repair_model(pm, result, settings, eset)
    for r in added.repairs:
        say(f"repair {r.format} {r.precision}: {r.status.replace('_', ' ')} ({r.reason})")
    return added


def _bench_name() -> str:
    """bench-<device>-<n>-rows for a device's interleaved rows, bench-<format>-<precision>-<runtime>-<device> for one job."""
    from prefect.runtime import task_run

    jobs = task_run.parameters["jobs"]
    if len(jobs) > 1:
        return f"bench-{jobs[0].device}-{len(jobs)}-rows"
    job = jobs[0]
    return f"bench-{job.artifact.format}-{job.row_precision}-{job.runtime}-{job.device}"


@task(name="benchmark", task_run_name=_bench_name)
def bench_task(pm: PreparedModel, jobs: list[BenchJob], settings: RunSettings) -> list[Measured]:
    # One benchmark per device at a time, across runs too: the local harness holds a file lock per device
    # on this host; with a server (edgebench serve), a global concurrency limit per device as well.
    with device_slot(jobs[0].device) if jobs[0].exclusive else contextlib.nullcontext():
        measured = pipeline.bench_batch(pm, jobs, settings)
    for result in measured:
        say(f"bench {describe(result.latency)}")
    return measured


def device_slot(device: str):
    """The server's concurrency limit for the device (its cores: a pinned fleet worker's own have none, the file
    lock keeps them); nothing in ephemeral mode (it has no limits)."""
    if not os.environ.get("PREFECT_API_URL"):
        return contextlib.nullcontext()
    # A short lease: a slot held by a run whose worker died frees itself within a minute (live runs renew it).
    return concurrency(f"edgebench-device-{device_key(device)}", occupy=1, strict=False, lease_duration=60)


@task(name="reports")
def report_task(settings: RunSettings, results: list[ModelResults]):
    return pipeline.finish_run(settings, results)


class FlowSteps(pipeline.Steps):
    """The model branch's steps as Prefect tasks: exports in parallel, parity submitted as each artifact lands,
    accuracy after parity, benchmarks one task at a time (pipeline.model_branch keeps the order)."""

    def prepare(self, name, weights, input_shape):
        return prepare_task(name, self.settings, weights, input_shape)

    def prepare_evaluation(self, pm, overrides):
        return prepare_eval_task(pm, self.settings)

    def exports(self, pm, plan):
        futures = [export_task.submit(pm, f, p, o, self.settings) for f, p, o in plan]
        expect("export", len(futures))
        return (done.result() for done in as_completed(futures))

    def check(self, pm, artifact, runtimes):
        expect("parity", len(runtimes))
        return [parity_task.submit(pm, artifact, rt, self.settings) for rt in runtimes]

    def done(self, pending):
        return [future.result() for future in pending]

    def evaluate(self, pm, eset, plan):
        futures = [evaluate_task.submit(pm, eset, a, rt, self.settings) for a, rt in plan]
        return [future.result() for future in futures]

    def repair(self, pm, result, eset):
        return repair_task(pm, result, self.settings, eset)

    def bench(self, pm, jobs):
        expect("bench", len(jobs))
        return [m for batch in pipeline.bench_batches(jobs) for m in bench_task(pm, batch, self.settings)]


@flow(name="model-pipeline", flow_run_name="{name}", task_runner=StoppingTaskRunner(max_workers=2))
def model_flow(name: str, settings: RunSettings, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> ModelResults:
    """One model's branch, its steps as tasks (pipeline.model_branch)."""
    return pipeline.model_branch(name, FlowSteps(settings), weights, input_shape)


@flow(name="model-pipeline", flow_run_name="{model}", task_runner=StoppingTaskRunner(max_workers=2))
def model_pipeline(model: str, run: dict, storage_url: str, weights: str | None = None,
                   input_shape: list[int] | None = None) -> str:
    """One model of a fanned-out run, on the worker that took it: its branch, then its results as one file."""
    settings = fleet.settings_from(run)
    pipeline.use_memory_config(settings.config)
    log_to(settings.run_dir)
    interrupts.begin_run(settings)  # a stopped flow run kills its children
    start = time.perf_counter()
    results = model_flow.fn(model, settings, weights, tuple(input_shape) if input_shape else None)
    return fleet.save_results(Storage(storage_url), settings.run_id, results, time.perf_counter() - start)


@flow(name="export-and-benchmark", task_runner=StoppingTaskRunner())  # stopped: children killed, run marked
def export_and_benchmark(
    models: list[str] | None = None,
    formats: list[str] | None = None,
    precisions: list[str] | None = None,
    runtimes: list[str] | None = None,
    devices: list[str] | None = None,
    budget: Budget = "full",
    out: str | None = None,
    fail_on_regression: bool = False,
    use_cache: bool = True,
    config_path: str | None = None,
    input_shape: list[int] | None = None,
    weights: str | None = None,
    calibration: list[str] | None = None,
    fan_out: bool = False,
) -> str:
    """Export every configured model and format, check parity, benchmark, report; returns the HTML path.
    `fan_out`: each model as its own flow run on the pool's fleet workers (config `fleet`), gathered here."""
    config = pipeline.narrow_config(load_pipeline_config(Path(config_path) if config_path else None),
                                    formats, precisions, runtimes, devices, models, calibration)
    settings = pipeline.new_run(config, out, quick=budget == "quick", use_cache=use_cache)
    log_to(settings.run_dir)  # other libraries' warnings: <run_dir>/logs/warnings.log, counted in the report
    interrupts.begin_run(settings)  # sweeps dead runs' temporary cache folders, watches the server
    say(f"run {settings.run_id}: models {', '.join(config.models)}, formats {', '.join(config.formats)}, "
        f"{'quick' if settings.quick else 'full'} budget, {settings.threads} threads")
    shape = tuple(input_shape) if input_shape else None
    missing = {}
    if fan_out:
        results, missing = dispatch_models(settings, config.models, weights, shape)
    else:
        results = [model_flow(name, settings, weights, shape) for name in config.models]
    paths = report_task(settings, results)
    say(f"report {paths.report_html}")
    regressions = [f for f in paths.findings if f.severity == "error"]
    if regressions:
        get_run_logger().warning("%d regression(s): %s", len(regressions), "; ".join(f.message for f in regressions))
        if fail_on_regression:
            raise RuntimeError(f"{len(regressions)} regression(s) found; see {paths.report_html}")
    if missing:  # the report holds every model that completed; these had no run that did
        raise RuntimeError(f"{len(missing)} of {len(config.models)} model(s) without results: "
                           + "; ".join(f"{m} ({why})" for m, why in missing.items()) + f"; see {paths.report_html}")
    return str(paths.report_html)
