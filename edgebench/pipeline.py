"""The pipeline's steps as plain functions, and the one order they run in (`model_branch`).

Each step takes and returns small records (paths, hashes, dataclasses), never live models, so a step can run
in a Prefect task, a child process or another machine. `model_branch` is the only place that says which
step follows which: the sequential run (the API and the CLI's commands), the Prefect flow and `edgebench
check` all go through it, each with its own `Steps` (here: one after the other; the flow: Prefect tasks).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Iterable, Iterator

from edgebench.benchmarks.local import add_speedups
from edgebench.benchmarks.peak import host_peak
from edgebench.catalogue import EAGER
from edgebench.child_memory import MemoryBudget
from edgebench.config import PROJECT_ROOT, PipelineConfig, base_precision
from edgebench.converters.export import export_artifact, plan_artifacts
from edgebench.devices.base import BenchJob, Measured
from edgebench.devices.registry import batches, parse_devices, plan_jobs, run_batch, run_job
from edgebench.errors import UserError
from edgebench.evaluation.clips import EvalSet, progress
from edgebench.evaluation.evaluate import evaluate_artifact, evaluation_config, judge_drops, prepare_eval_set
from edgebench.external import configured_external
from edgebench.isolation import use_memory_budget
from edgebench.models.inputs import load_inputs, make_inputs, save_inputs
from edgebench.models.io_check import check_output_shapes
from edgebench.models.registry import expand_models
from edgebench.parity.check import check_parity_isolated, reference_outputs
from edgebench.repair.run import RepairOutcome, failing, not_needed, repair_artifact
from edgebench.repair.trials import TrialSteps
from edgebench.records import PASSED, SKIPPED, AccuracyResult, Artifact, LatencyResult, ModelRef, ParityResult, RepairResult, RunData
from edgebench.reports.runinfo import host_info
from edgebench.runs import ModelResults, PreparedModel, RunSettings, utc_now
from edgebench.runtimes.base import resolve_threads
from edgebench.runtimes.registry import runtimes_for
from edgebench.runtimes.torch_eager import eager_artifact

log = logging.getLogger(__name__)

DEFAULT_OUT = PROJECT_ROOT / "reports"


def new_run(config: PipelineConfig, out: str | Path | None = None, quick: bool = False,
            use_cache: bool = True, cache_dir: str | Path | None = None) -> RunSettings:
    """Name the run (UTC timestamp + random suffix), fix its threads and folders, set its children's memory budget."""
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
    use_memory_budget(MemoryBudget.of(config.memory.child_limit, config.memory.enforce))


def narrow_config(config: PipelineConfig, formats: list[str] | None = None, precisions: list[str] | None = None,
                  runtimes: list[str] | None = None, devices: list[str] | None = None,
                  models: list[str] | None = None, calibration: list[str] | None = None) -> PipelineConfig:
    """The config with the CLI's or the flow's narrowing applied (`calibration`: videos replacing
    calibration.videos; models `[all]`: every registered one); unknown names are UserErrors."""
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
    update["models"] = expand_models(models or config.models)
    if calibration:
        update["calibration"] = config.calibration.model_copy(update={"videos": list(calibration)})
    return config.model_copy(update=update)


# ---------------------------------------------------------------- steps


def prepare_model(name: str, settings: RunSettings, weights: str | None = None,
                  input_shape: tuple[int, ...] | None = None) -> PreparedModel:
    """Resolve the model, make and save the run's inputs and the fp32 eager reference outputs."""
    from edgebench.models.info import count_flops  # imports torch
    from edgebench.models.source import build_module, example_input, resolve_model

    ref = resolve_model(name, weights, input_shape)
    inputs = make_inputs(ref, settings.config.parity)
    reference = reference_outputs(ref, inputs)
    check_output_shapes(ref, [v.shape[1:] for v in reference.values()])  # clips x output shape; before any file
    folder = settings.run_dir / "inputs"
    inputs_path, reference_path = folder / f"{ref.name}.inputs.npz", folder / f"{ref.name}.reference.npz"
    save_inputs(inputs_path, inputs)
    save_inputs(reference_path, reference)
    flops = count_flops(build_module(ref), example_input(ref))
    return PreparedModel(ref, str(inputs_path), str(reference_path), flops)


def planned_exports(config: PipelineConfig) -> list[tuple[str, str, dict]]:
    return plan_artifacts(config)


def export_one(ref: ModelRef, fmt: str, precision: str, options: dict, settings: RunSettings) -> Artifact:
    """Export (or take from the cache) one artifact; failures come back as export_failed records."""
    return export_artifact(ref, fmt, precision, options, Path(settings.cache_dir),
                           settings.config.export_timeout_s, use_cache=settings.use_cache,
                           calibration=settings.config.calibration)


def external_artifacts(ref: ModelRef, settings: RunSettings) -> list[Artifact]:
    """The configured files built elsewhere for this model (`external_artifacts:`), as artifacts named
    `<model>@<name>`; one whose inputs or outputs differ from the model's is an export_failed record saying so."""
    return [configured_external(ref, e) for e in settings.config.external_artifacts if e.model == ref.name]


def parity_runtimes(fmt: str, config: PipelineConfig) -> list[str]:
    """Names of the configured runtimes that can execute this format."""
    return [r.name for r in runtimes_for(fmt) if r.name in config.runtimes]


def parity_one(pm: PreparedModel, artifact: Artifact, runtime: str, settings: RunSettings, tag: str = "") -> ParityResult:
    """Compare one artifact on one runtime with the reference; never raises for runtime trouble.
    `tag` tells apart the logs of several files with the same name (a repair's trials)."""
    tolerance = settings.config.parity.tolerances.get(base_precision(artifact.precision))  # int8-mixed: int8's bound
    if tolerance is None:
        raise UserError(f"parity.tolerances: no tolerance configured for precision {artifact.precision}")
    return check_parity_isolated(
        artifact, runtime, pm.ref, load_inputs(Path(pm.inputs_path)), load_inputs(Path(pm.reference_path)),
        tolerance, settings.threads, timeout_s=settings.budget.timeout_s,
        log_path=settings.log_path(pm.ref.name, artifact.format, artifact.precision, runtime, *([tag] if tag else []),
                                   "parity"),
        localize=settings.config.localize, localization_path=localization_path(settings, artifact),
        runtime_options=settings.config.runtime_spec(runtime)[1] or None,  # the same options the benchmark uses
        outputs_dir=settings.run_dir / "outputs", reference_path=pm.reference_path)


def localization_path(settings: RunSettings, artifact: Artifact) -> Path:
    """Where one artifact's per-layer table goes (one per artifact: every runtime's row shares it)."""
    return settings.run_dir / "localization" / f"{artifact.model}-{artifact.format}-{artifact.precision}.json"


def prepare_evaluation(pm: PreparedModel, settings: RunSettings, overrides: dict | None = None):
    """The model's EvalSet (every video decoded once, cached), or None when no dataset is configured."""
    cfg = evaluation_config(pm.ref, overrides)
    if not cfg.dataset:
        return None
    return prepare_eval_set(pm.ref, cfg, Path(settings.cache_dir),
                            listing=settings.run_dir / "evaluation" / pm.ref.name / "unreadable.txt")


def evaluation_plan(artifacts: list[Artifact], pm: PreparedModel, config: PipelineConfig) -> list[tuple[Artifact, str]]:
    """(artifact, runtime) to score: the eager baseline first, then every artifact on every runtime that runs it."""
    return [(eager_artifact(pm.ref), EAGER.runtime)] + [(a, rt) for a in artifacts for rt in parity_runtimes(a.format, config)]


def evaluate_one(pm: PreparedModel, eset, artifact: Artifact, runtime: str, settings: RunSettings,
                 tag: str = "") -> AccuracyResult:
    """Video-level accuracy of one (artifact, runtime) in a child process; never raises for runtime trouble."""
    parts = (artifact.format, artifact.precision, runtime, *([tag] if tag else []))
    return evaluate_artifact(artifact, runtime, pm.ref, eset, settings.threads, settings.budget.timeout_s,
                             settings.log_path(pm.ref.name, *parts, "accuracy"),
                             settings.run_dir / "evaluation" / pm.ref.name / ("-".join(parts) + ".npz"),
                             runtime_options=settings.config.runtime_spec(runtime)[1] or None)


def judge_accuracy(pm: PreparedModel, results: list[AccuracyResult], overrides: dict | None = None) -> list[AccuracyResult]:
    """Each row's top-1 drop against eager with its 95 % interval and its verdict against the bound."""
    return judge_drops(results, evaluation_config(pm.ref, overrides))


def reduced_precision(artifacts: list[Artifact]) -> list[Artifact]:
    """The exported reduced-precision files a repair step looks at (not fp32, not already repaired)."""
    return [a for a in artifacts if a.ok and a.precision != "fp32" and not a.float_layers]


def repair_one(pm: PreparedModel, artifact: Artifact, settings: RunSettings, parity: list[ParityResult],
               accuracy: list[AccuracyResult], eset=None, converter=None) -> RepairOutcome:
    """A RepairOutcome for one reduced-precision file: `not_needed` when it passes its judge (the accuracy bound
    with a dataset, else the parity bound), else the search for layers to keep in float (edgebench/repair/)."""
    by_accuracy = eset is not None
    judge = "accuracy" if by_accuracy else "parity"
    if not failing(artifact, parity, accuracy, by_accuracy):
        return not_needed(artifact, judge)
    eager = next((a for a in accuracy if (a.format, a.runtime) == (EAGER.format, EAGER.runtime)
                  and a.status == PASSED), None)
    why = ("no eager accuracy to judge trials against" if by_accuracy and eager is None else
           f"the {artifact.format} fp32 file fails its {judge} bound too: no layer kept in float can help"
           if failing(artifact, parity, accuracy, by_accuracy, "fp32") else "")
    if why:
        return RepairOutcome(RepairResult(artifact.model, artifact.format, artifact.precision, SKIPPED, why, judge=judge))
    steps = TrialSteps(parity_one, evaluate_one, parity_runtimes(artifact.format, settings.config))
    return repair_artifact(pm, artifact, settings, parity, steps, eset, eager, converter)


def judge_repaired(pm: PreparedModel, artifact: Artifact, settings: RunSettings, accuracy: list[AccuracyResult],
                   eset=None) -> tuple[list[ParityResult], list[AccuracyResult]]:
    """A repaired file's rows, like any artifact's: parity on every runtime and, with a dataset, accuracy."""
    rows = [parity_one(pm, artifact, rt, settings) for rt in parity_runtimes(artifact.format, settings.config)]
    if eset is None:
        return rows, []
    eager = [a for a in accuracy if (a.format, a.runtime) == (EAGER.format, EAGER.runtime)]
    scored = [evaluate_one(pm, eset, artifact, rt, settings) for rt in parity_runtimes(artifact.format, settings.config)]
    return rows, judge_accuracy(pm, eager + scored)[len(eager):]


def repair_model(pm: PreparedModel, result: ModelResults, settings: RunSettings, eset=None) -> ModelResults:
    """The repair step (repair.enabled): every failing reduced-precision file of `result` repaired, the repaired
    files judged like any other. Returns what it adds: repair records, artifacts and their rows."""
    added = ModelResults(pm.ref)
    for artifact in reduced_precision(result.artifacts):
        outcome = repair_one(pm, artifact, settings, result.parity, result.accuracy, eset)
        added.repairs.append(outcome.result)
        if outcome.artifact is not None:
            added.artifacts.append(outcome.artifact)
        if outcome.artifact is not None and outcome.artifact.ok:
            parity, accuracy = judge_repaired(pm, outcome.artifact, settings, result.accuracy, eset)
            added.parity += parity
            added.accuracy += accuracy
    return added


def bench_plan(artifacts: list[Artifact], pm: PreparedModel, config: PipelineConfig) -> list[BenchJob]:
    """Every device backend's BenchJobs for the configured devices (local: the eager baseline first)."""
    return plan_jobs(artifacts, pm, config)


def bench_one(pm: PreparedModel, job: BenchJob, settings: RunSettings) -> Measured:
    """Run one BenchJob on its device's backend: a Measured (latency row, and a parity row from a hub device)."""
    return run_job(job, pm, settings)


def bench_batches(plan: list[BenchJob]) -> list[list[BenchJob]]:
    """The plan in the groups measured together: a local device's rows are timed interleaved, in one go."""
    return batches(plan)


def bench_batch(pm: PreparedModel, jobs: list[BenchJob], settings: RunSettings) -> list[Measured]:
    """Run one group of BenchJobs on their device's backend, one Measured per job, in order."""
    return run_batch(jobs, pm, settings)


def finish_run(settings: RunSettings, results: list[ModelResults]):
    """Speed-ups against eager, then every report and the history row set, in one go."""
    from edgebench.reports.writer import write_run_reports  # imports pandas

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
        repairs=[rep for r in results for rep in r.repairs],
        host=host_info(),
    )
    return write_run_reports(run, Path(settings.out), settings.config.history,
                             runtimes_for=lambda fmt: parity_runtimes(fmt, settings.config))


def host_limit(settings: RunSettings, latency: list[LatencyResult]) -> dict:
    """This host's matrix-multiply peak per precision (cached per host), when a row was timed here; else {}."""
    from edgebench.reports.rows import LOCAL

    if not any(lr.p50_ms and (lr.device or LOCAL) == LOCAL for lr in latency):
        return {}
    peak = host_peak(settings.threads, log_path=settings.run_dir / "logs" / "peak.log")
    if "error" in peak:
        log.warning("no %% of peak in this run's rows: %s", peak["error"])
    return peak


# ---------------------------------------------------------------- the order of the steps


class Steps:
    """How a model's branch runs each step: here, one after the other in this process. The Prefect flow's
    subclass (flows/export_and_benchmark.py) runs them as tasks, the exports in parallel; `edgebench check`'s
    localizes every row."""

    def __init__(self, settings: RunSettings):
        self.settings = settings

    def prepare(self, name: str, weights: str | None, input_shape: tuple[int, ...] | None) -> PreparedModel:
        return prepare_model(name, self.settings, weights, input_shape)

    def prepare_evaluation(self, pm: PreparedModel, overrides: dict | None) -> EvalSet | None:
        return prepare_evaluation(pm, self.settings, overrides)

    def exports(self, pm: PreparedModel, plan: list[tuple[str, str, dict]]) -> Iterator[Artifact]:
        """Each planned artifact, as it is ready."""
        for fmt, precision, options in plan:
            yield export_one(pm.ref, fmt, precision, options, self.settings)

    def check(self, pm: PreparedModel, artifact: Artifact, runtimes: list[str]) -> list:
        """Parity of one artifact on each runtime, or what `done` turns into those rows."""
        return [parity_one(pm, artifact, rt, self.settings) for rt in runtimes]

    def done(self, pending: list) -> list[ParityResult]:
        return pending

    def evaluate(self, pm: PreparedModel, eset: EvalSet, plan: list[tuple[Artifact, str]]) -> list[AccuracyResult]:
        results = []
        with progress(len(plan), f"{pm.ref.name}: scoring artifacts") as advance:  # a bar only on a terminal
            for artifact, runtime in plan:
                results.append(evaluate_one(pm, eset, artifact, runtime, self.settings))
                advance()
        return results

    def repair(self, pm: PreparedModel, result: ModelResults, eset: EvalSet | None) -> ModelResults:
        """What the repair step adds: each failing reduced-precision file's repair and its judged rows."""
        return repair_model(pm, result, self.settings, eset)

    def bench(self, pm: PreparedModel, jobs: list[BenchJob]) -> list[Measured]:
        """Each device's jobs in the groups its backend measures together (local: interleaved with eager)."""
        return [m for batch in bench_batches(jobs) for m in bench_batch(pm, batch, self.settings)]


def model_branch(name: str, steps: Steps, weights: str | None = None, input_shape: tuple[int, ...] | None = None,
                 parity: bool = True, bench: bool = True, evaluate: bool | None = None,
                 evaluation: dict | None = None, given: list[Artifact] | None = None) -> ModelResults:
    """One model's steps in the order every entry point shares: prepare the inputs and reference; decode the
    evaluation set (`evaluate`: None = when the model has a dataset; a bad one fails before any export); export
    (or take the `given` artifacts), then the files built elsewhere, each artifact checked on every configured
    runtime as soon as it exists; accuracy after parity; benchmarks last, one at a time, when no export or
    check shares the cores. `evaluation`: the CLI's dataset / clips / max videos over the model YAML's."""
    config = steps.settings.config
    pm = steps.prepare(name, weights, input_shape)
    eset = None if evaluate is False else steps.prepare_evaluation(pm, evaluation)
    result = ModelResults(pm.ref)
    arriving: Iterable[Artifact] = given if given is not None else chain(
        steps.exports(pm, planned_exports(config)), external_artifacts(pm.ref, steps.settings))
    pending = []
    for artifact in arriving:
        result.artifacts.append(artifact)
        if parity and artifact.ok:
            pending += steps.check(pm, artifact, parity_runtimes(artifact.format, config))
    result.parity = steps.done(pending)
    ok = [a for a in result.artifacts if a.ok]
    if eset is not None:
        result.accuracy = judge_accuracy(pm, steps.evaluate(pm, eset, evaluation_plan(ok, pm, config)), evaluation)
    if parity and config.repair.enabled:  # each failing reduced-precision file: a <precision>-mixed file, judged alike
        result.add(steps.repair(pm, result, eset))
        ok = [a for a in result.artifacts if a.ok]
    if bench:
        measured = steps.bench(pm, bench_plan(ok, pm, config))
        result.latency = [m.latency for m in measured]
        result.parity += [m.parity for m in measured if m.parity is not None]  # outputs a hub device returned
    return result


def run_model_sequential(name: str, settings: RunSettings, weights: str | None = None,
                         input_shape: tuple[int, ...] | None = None, parity: bool = True, bench: bool = True,
                         evaluate: bool | None = False, evaluation: dict | None = None) -> ModelResults:
    """One model's branch without Prefect, each step after the other in this process."""
    return model_branch(name, Steps(settings), weights, input_shape, parity, bench, evaluate, evaluation)
