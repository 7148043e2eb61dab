"""The pipeline's steps as plain functions: what the Prefect flow and the CLI both call.

Each step takes and returns small records (paths, hashes, dataclasses), never live models, so a
step can run in a Prefect task, a child process or another machine.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgebench.config import PROJECT_ROOT, BudgetConfig, PipelineConfig
from edgebench.errors import UserError
from edgebench.records import (
    AccuracyResult,
    Artifact,
    LatencyResult,
    ModelRef,
    ParityResult,
    RunData,
)

if TYPE_CHECKING:
    from edgebench.devices.base import BenchJob, Measured

log = logging.getLogger(__name__)

DEFAULT_OUT = PROJECT_ROOT / "reports"


@dataclass(frozen=True)
class RunSettings:
    """What every step of one run needs to know; small and picklable."""

    run_id: str
    started_at: str
    out: str
    cache_dir: str
    threads: int
    quick: bool
    use_cache: bool
    config: PipelineConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.out) / "runs" / self.run_id

    @property
    def budget(self) -> BudgetConfig:
        return self.config.benchmark.quick if self.quick else self.config.benchmark.full

    def log_path(self, model: str, *parts: str) -> Path:
        return self.run_dir / "logs" / model / ("-".join(parts) + ".log")


@dataclass(frozen=True)
class PreparedModel:
    """A resolved model with its saved inputs and reference outputs."""

    ref: ModelRef
    inputs_path: str
    reference_path: str
    flops: int


@dataclass
class ModelResults:
    """What one model's branch of the run produced."""

    ref: ModelRef
    artifacts: list[Artifact] = field(default_factory=list)
    parity: list[ParityResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    accuracy: list[AccuracyResult] = field(default_factory=list)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_run(config: PipelineConfig, out: str | Path | None = None, quick: bool = False,
            use_cache: bool = True, cache_dir: str | Path | None = None) -> RunSettings:
    """Name the run (UTC timestamp + random suffix), fix its threads and folders, set its children's memory budget."""
    from edgebench.runtimes.base import resolve_threads

    use_memory_config(config)
    out = Path(out or DEFAULT_OUT).resolve()
    now = datetime.now(timezone.utc)
    run_id = now.strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
    return RunSettings(
        run_id=run_id,
        started_at=now.isoformat(timespec="seconds"),
        out=str(out),
        cache_dir=str(Path(cache_dir).resolve() if cache_dir else out / "cache"),
        threads=resolve_threads(config.threads),
        quick=quick,
        use_cache=use_cache,
        config=config,
    )


def use_memory_config(config: PipelineConfig) -> None:
    """Every child this process starts from now on runs under the config's memory budget."""
    from edgebench.child_memory import MemoryBudget
    from edgebench.isolation import use_memory_budget

    use_memory_budget(MemoryBudget.of(config.memory.child_limit, config.memory.enforce))


def narrow_config(config: PipelineConfig, formats: list[str] | None = None, precisions: list[str] | None = None,
                  runtimes: list[str] | None = None, devices: list[str] | None = None,
                  models: list[str] | None = None, calibration: list[str] | None = None) -> PipelineConfig:
    """The config with the CLI's or the flow's narrowing applied (`calibration`: videos replacing
    calibration.videos); unknown names are UserErrors."""
    from edgebench.devices.registry import parse_devices

    chosen = dict(config.formats)
    if formats:
        unknown = [f for f in formats if f not in chosen]
        if unknown:
            raise UserError(f"--formats: unknown or unconfigured format {', '.join(unknown)}; configured: {', '.join(chosen)}")
        chosen = {f: chosen[f] for f in formats}
    if precisions:
        chosen = {f: [p for p in ps if p in precisions] for f, ps in chosen.items()}
        chosen = {f: ps for f, ps in chosen.items() if ps}
    update: dict = {"formats": chosen}
    if runtimes:
        for name in runtimes:
            config.runtime_spec(name)  # a registry runtime or a configured variant, else a UserError
        update["runtimes"] = list(runtimes)
    if devices:
        update["devices"] = [d.label for d in parse_devices(devices)]
    if models:
        update["models"] = list(models)
    if calibration:
        update["calibration"] = config.calibration.model_copy(update={"videos": list(calibration)})
    return config.model_copy(update=update)


# ---------------------------------------------------------------- steps


def prepare_model(name: str, settings: RunSettings, weights: str | None = None,
                  input_shape: tuple[int, ...] | None = None) -> PreparedModel:
    """Resolve the model, make and save the run's inputs and the fp32 eager reference outputs."""
    from edgebench.models.info import count_flops
    from edgebench.models.inputs import make_inputs, save_inputs
    from edgebench.models.io_check import check_output_shapes
    from edgebench.models.source import example_input, resolve_model
    from edgebench.parity.check import reference_outputs

    ref = resolve_model(name, weights, input_shape)
    inputs = make_inputs(ref, settings.config.parity)
    reference = reference_outputs(ref, inputs)
    check_output_shapes(ref, [v.shape[1:] for v in reference.values()])  # clips x output shape; before any file
    folder = settings.run_dir / "inputs"
    inputs_path, reference_path = folder / f"{ref.name}.inputs.npz", folder / f"{ref.name}.reference.npz"
    save_inputs(inputs_path, inputs)
    save_inputs(reference_path, reference)
    flops = count_flops(ref.build(), example_input(ref))
    return PreparedModel(ref, str(inputs_path), str(reference_path), flops)


def planned_exports(config: PipelineConfig) -> list[tuple[str, str, dict]]:
    from edgebench.converters.export import plan_artifacts

    return plan_artifacts(config)


def export_one(ref: ModelRef, fmt: str, precision: str, options: dict, settings: RunSettings) -> Artifact:
    """Export (or take from the cache) one artifact; failures come back as export_failed records."""
    from edgebench.converters.export import export_artifact

    return export_artifact(ref, fmt, precision, options, Path(settings.cache_dir),
                           settings.config.export_timeout_s, use_cache=settings.use_cache,
                           calibration=settings.config.calibration)


def external_artifacts(ref: ModelRef, settings: RunSettings) -> list[Artifact]:
    """The configured files built elsewhere for this model (`external_artifacts:`), as artifacts named
    `<model>@<name>`; one whose inputs or outputs differ from the model's is an export_failed record saying so."""
    from edgebench.parity.external import configured_external

    return [configured_external(ref, e) for e in settings.config.external_artifacts if e.model == ref.name]


def parity_runtimes(fmt: str, config: PipelineConfig) -> list[str]:
    """Names of the configured runtimes that can execute this format."""
    from edgebench.runtimes.registry import runtimes_for

    return [r.name for r in runtimes_for(fmt) if r.name in config.runtimes]


def _load_npz(path: str) -> dict[str, np.ndarray]:
    from edgebench.models.inputs import load_inputs

    return load_inputs(Path(path))


def parity_one(pm: PreparedModel, artifact: Artifact, runtime: str, settings: RunSettings) -> ParityResult:
    """Compare one artifact on one runtime with the reference; never raises for runtime trouble."""
    from edgebench.parity.check import check_parity_isolated

    tolerance = settings.config.parity.tolerances.get(artifact.precision)
    if tolerance is None:
        raise UserError(f"parity.tolerances: no tolerance configured for precision {artifact.precision}")
    return check_parity_isolated(
        artifact, runtime, pm.ref, _load_npz(pm.inputs_path), _load_npz(pm.reference_path), tolerance,
        settings.threads, timeout_s=settings.budget.timeout_s,
        log_path=settings.log_path(pm.ref.name, artifact.format, artifact.precision, runtime, "parity"),
        localize=settings.config.localize, localization_path=localization_path(settings, artifact),
        runtime_options=settings.config.runtime_spec(runtime)[1] or None)  # the same options the benchmark uses


def localization_path(settings: RunSettings, artifact: Artifact) -> Path:
    """Where one artifact's per-layer table goes (one per artifact: every runtime's row shares it)."""
    return settings.run_dir / "localization" / f"{artifact.model}-{artifact.format}-{artifact.precision}.json"


def prepare_evaluation(pm: PreparedModel, settings: RunSettings, overrides: dict | None = None):
    """The model's EvalSet (every video decoded once, cached), or None when no dataset is configured."""
    from edgebench.evaluation.evaluate import evaluation_config, prepare_eval_set

    cfg = evaluation_config(pm.ref, overrides)
    if not cfg.dataset:
        return None
    return prepare_eval_set(pm.ref, cfg, Path(settings.cache_dir),
                            listing=settings.run_dir / "evaluation" / pm.ref.name / "unreadable.txt")


def evaluation_plan(artifacts: list[Artifact], pm: PreparedModel, config: PipelineConfig) -> list[tuple[Artifact, str]]:
    """(artifact, runtime) to score: the eager baseline first, then every artifact on every runtime that runs it."""
    from edgebench.runtimes.torch_eager import eager_artifact

    return [(eager_artifact(pm.ref), "torch")] + [(a, rt) for a in artifacts for rt in parity_runtimes(a.format, config)]


def evaluate_one(pm: PreparedModel, eset, artifact: Artifact, runtime: str, settings: RunSettings) -> AccuracyResult:
    """Video-level accuracy of one (artifact, runtime) in a child process; never raises for runtime trouble."""
    from edgebench.evaluation.evaluate import evaluate_artifact

    parts = (artifact.format, artifact.precision, runtime)
    return evaluate_artifact(artifact, runtime, pm.ref, eset, settings.threads, settings.budget.timeout_s,
                             settings.log_path(pm.ref.name, *parts, "accuracy"),
                             settings.run_dir / "evaluation" / pm.ref.name / ("-".join(parts) + ".npz"))


def judge_accuracy(pm: PreparedModel, results: list[AccuracyResult], overrides: dict | None = None) -> list[AccuracyResult]:
    """Each row's top-1 drop against eager with its 95 % interval and its verdict against the bound."""
    from edgebench.evaluation.evaluate import evaluation_config, judge_drops

    return judge_drops(results, evaluation_config(pm.ref, overrides))


def evaluate_model(pm: PreparedModel, eset, artifacts: list[Artifact], settings: RunSettings,
                   overrides: dict | None = None) -> list[AccuracyResult]:
    """Eager and every artifact on every runtime that runs it, scored on the clips of `eset`, then judged."""
    from edgebench.evaluation.clips import progress

    plan = evaluation_plan([a for a in artifacts if a.ok], pm, settings.config)
    results = []
    with progress(len(plan), f"{pm.ref.name}: scoring artifacts") as advance:  # a bar only on a terminal
        for a, rt in plan:
            results.append(evaluate_one(pm, eset, a, rt, settings))
            advance()
    return judge_accuracy(pm, results, overrides)


def bench_plan(artifacts: list[Artifact], pm: PreparedModel, config: PipelineConfig) -> list[BenchJob]:
    """Every device backend's BenchJobs for the configured devices (local: the eager baseline first)."""
    from edgebench.devices.registry import plan_jobs

    return plan_jobs(artifacts, pm, config)


def bench_one(pm: PreparedModel, job: BenchJob, settings: RunSettings) -> Measured:
    """Run one BenchJob on its device's backend: a Measured (latency row, and a parity row from a hub device)."""
    from edgebench.devices.registry import run_job

    return run_job(job, pm, settings)


def finish_run(settings: RunSettings, results: list[ModelResults]):
    """Speed-ups against eager, then every report and the history row set, in one go."""
    from edgebench.benchmarks.local import add_speedups
    from edgebench.reports.writer import write_run_reports

    latency = add_speedups([row for r in results for row in r.latency])
    run = RunData(
        run_id=settings.run_id,
        started_at=settings.started_at,
        ended_at=utc_now(),
        out_dir=settings.out,
        threads=settings.threads,
        models=[r.ref for r in results],
        artifacts=[a for r in results for a in r.artifacts],
        parity=[p for r in results for p in r.parity],
        latency=latency,
        config={**settings.config.model_dump(mode="json"), "quick": settings.quick},
        accuracy=[a for r in results for a in r.accuracy],
        peak=host_limit(settings, latency),
    )
    return write_run_reports(run, Path(settings.out), settings.config.history,
                             runtimes_for=lambda fmt: parity_runtimes(fmt, settings.config))


def host_limit(settings: RunSettings, latency: list[LatencyResult]) -> dict:
    """This host's matrix-multiply peak per precision (cached per host), when a row was timed here; else {}."""
    from edgebench.benchmarks.peak import host_peak
    from edgebench.reports.rows import LOCAL

    if not any(lr.p50_ms and (lr.device or LOCAL) == LOCAL for lr in latency):
        return {}
    peak = host_peak(settings.threads, log_path=settings.run_dir / "logs" / "peak.log")
    if "error" in peak:
        log.warning("no %% of peak in this run's rows: %s", peak["error"])
    return peak


def run_model_sequential(name: str, settings: RunSettings, weights: str | None = None,
                         input_shape: tuple[int, ...] | None = None, parity: bool = True,
                         bench: bool = True, evaluate: bool = False, evaluation: dict | None = None) -> ModelResults:
    """One model's branch without Prefect: export, parity, then benchmarks one at a time."""
    pm = prepare_model(name, settings, weights, input_shape)
    # `evaluation`: the CLI's dataset / clips / max videos over the model YAML's; a bad dataset fails before any export
    eset = prepare_evaluation(pm, settings, evaluation) if evaluate else None
    result = ModelResults(pm.ref)
    result.artifacts = [export_one(pm.ref, f, p, o, settings) for f, p, o in planned_exports(settings.config)]
    result.artifacts += external_artifacts(pm.ref, settings)
    if parity:
        result.parity = [parity_one(pm, a, rt, settings) for a in result.artifacts if a.ok
                         for rt in parity_runtimes(a.format, settings.config)]
    if eset is not None:
        result.accuracy = evaluate_model(pm, eset, result.artifacts, settings, evaluation)
    if bench:
        measured = [bench_one(pm, job, settings) for job in bench_plan([a for a in result.artifacts if a.ok], pm, settings.config)]
        result.latency = [m.latency for m in measured]
        result.parity += [m.parity for m in measured if m.parity is not None]
    return result
