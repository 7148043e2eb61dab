"""The `export-and-benchmark` flow: resolve, export (parallel), parity (as each artifact lands),
benchmarks (one at a time per device, after the exports), reports."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from edgebench import pipeline
from edgebench.benchmarks.devices import QUEUE, parse_device
from edgebench.config import load_pipeline_config
from edgebench.flows.progress import describe, say
from edgebench.flows.remote import dispatch_remote_bench
from edgebench.records import Artifact, LatencyResult, ParityResult

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


@task(name="benchmark", task_run_name="bench-{artifact.format}-{artifact.precision}-{runtime}-{device}")
def bench_task(pm: pipeline.PreparedModel, artifact: Artifact, runtime: str, device: str,
               settings: pipeline.RunSettings) -> LatencyResult:
    if parse_device(device).kind == QUEUE:
        result = dispatch_remote_bench(pm, artifact, runtime, device, settings)
    else:
        # One benchmark per device at a time, across runs too: the harness holds a file lock per device
        # on this host; with a server (edgebench serve), a global concurrency limit per device as well.
        with device_slot(device):
            result = pipeline.bench_one(pm, artifact, runtime, settings, device)
    say(f"bench {describe(result)}")
    return result


def device_slot(device: str):
    """The server's concurrency limit for the device; nothing in ephemeral mode (it has no limits)."""
    if not os.environ.get("PREFECT_API_URL"):
        return contextlib.nullcontext()
    return concurrency(f"edgebench-device-{device}", occupy=1, strict=False)


@task(name="hub-benchmark", retries=2, retry_delay_seconds=30)
def hub_task(pm: pipeline.PreparedModel, artifacts: list[Artifact], settings: pipeline.RunSettings) -> list[LatencyResult]:
    rows = pipeline.bench_hub(pm, artifacts, settings)
    for row in rows:
        say(f"hub {describe(row)}")
    return rows


@task(name="reports")
def report_task(settings: pipeline.RunSettings, results: list[pipeline.ModelResults]):
    return pipeline.finish_run(settings, results)


@flow(name="model-pipeline", flow_run_name="{name}", task_runner=ThreadPoolTaskRunner(max_workers=2))
def model_flow(name: str, settings: pipeline.RunSettings, weights: str | None = None,
               input_shape: tuple[int, ...] | None = None) -> pipeline.ModelResults:
    """One model: exports in parallel, parity per artifact as soon as it exists, then benchmarks."""
    pm = prepare_task(name, settings, weights, input_shape)
    result = pipeline.ModelResults(pm.ref)
    exports = [export_task.submit(pm, f, p, o, settings) for f, p, o in pipeline.planned_exports(settings.config)]
    checks = []
    for done in as_completed(exports):
        artifact = done.result()
        result.artifacts.append(artifact)
        if artifact.ok:
            checks += [parity_task.submit(pm, artifact, rt, settings)
                       for rt in pipeline.parity_runtimes(artifact.format, settings.config)]
    result.parity = [c.result() for c in checks]
    # Benchmarks only now: exports and parity children no longer compete for the same cores.
    ok = [a for a in result.artifacts if a.ok]
    result.latency = [bench_task(pm, a, rt, dev, settings) for a, rt, dev in pipeline.bench_plan(ok, pm, settings.config)]
    result.latency += hub_task(pm, ok, settings)
    return result


@flow(name="export-and-benchmark")
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
) -> str:
    """Export every configured model and format, check parity, benchmark, report; returns the HTML path."""
    config = pipeline.narrow_config(load_pipeline_config(Path(config_path) if config_path else None),
                                    formats, precisions, runtimes, devices, models)
    settings = pipeline.new_run(config, out, quick=quick or budget == "quick", use_cache=use_cache)
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
