"""`local`: this host, all its rows timed interleaved with eager (benchmarks.paired; a file lock per device).

`measure_here` (one row in a fresh child, benchmarks.local) is what a queue device's machine runs.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgebench.benchmarks.local import bench_local
from edgebench.benchmarks.paired import PairedRow, time_rows
from edgebench.catalogue import EAGER
from edgebench.devices.base import Backend, BenchJob, Device, Measured
from edgebench.records import Artifact, LatencyResult, ModelRef, record_from_dict
from edgebench.runs import PreparedModel
from edgebench.runtimes.registry import get_runtime
from edgebench.runtimes.torch_eager import eager_artifact


def runtime_job(device: Device, artifact: Artifact, name: str, config, exclusive: bool) -> BenchJob | None:
    """The job of one artifact on one runtime or variant with its configured options; None if it cannot run the format."""
    base, options = config.runtime_spec(name)
    runtime = get_runtime(base, options)
    if artifact.format not in runtime.formats:
        return None
    why_not = "" if runtime.measures_speed else f"{name} checks the program's numbers; its speed says nothing about a device"
    return BenchJob(artifact, name, device.label, options=runtime.describe(), why_not=why_not, exclusive=exclusive)


def runtime_jobs(device: Device, artifacts: list[Artifact], config, exclusive: bool) -> list[BenchJob]:
    """Every artifact on every configured runtime (or variant) that runs its format."""
    jobs = [runtime_job(device, a, name, config, exclusive) for a in artifacts for name in config.runtimes]
    return [j for j in jobs if j is not None]


def measure_here(job: BenchJob, ref, inputs_path: str, budget, threads: int, flops: float | None, log_path,
                 noisy_iqr_ratio: float, config) -> LatencyResult:
    """Run one job on this host; the row names the variant and records its configured options
    (what the session itself reported goes to extra["session_options"])."""
    base, options = config.runtime_spec(job.runtime)
    row = bench_local(job.artifact, base, ref, inputs_path, budget, threads, flops, budget.timeout_s, log_path,
                      noisy_iqr_ratio=noisy_iqr_ratio, device=job.device,
                      runtime=get_runtime(base, options) if options else None)
    if row.runtime_options:
        row.extra["session_options"] = row.runtime_options
    row.runtime, row.runtime_options = job.runtime, dict(job.options)
    return row


def paired_rows(jobs: list[BenchJob], config, log_path) -> list[PairedRow]:
    """The jobs as rows of a paired session: each runtime or variant with its configured options; `log_path(job)`."""
    rows = []
    for job in jobs:
        base, options = config.runtime_spec(job.runtime)
        rows.append(PairedRow(job.artifact, job.runtime, get_runtime(base, options), Path(log_path(job))))
    return rows


def rows_of_run(run_dir: Path, config, log_dir: Path) -> tuple[ModelRef, str, list[PairedRow]]:
    """A finished run's model, its saved inputs and the paired rows this host would plan for its passed artifacts
    (the benchmark scripts time them again); each row's child logs to `log_dir`."""
    records = json.loads((Path(run_dir) / "run.json").read_text())["records"]
    ref = record_from_dict(ModelRef, records["models"][0])
    artifacts = [a for a in (Artifact.from_dict(d) for d in records["artifacts"]) if a.ok and a.model == ref.name]
    inputs = str(Path(run_dir) / "inputs" / f"{ref.name}.inputs.npz")
    jobs = [j for j in LocalBackend().plan(Device("local"), artifacts, PreparedModel(ref, inputs, "", 0), config)
            if not j.why_not]
    return ref, inputs, paired_rows(jobs, config, lambda j: log_dir / f"{j.artifact.format}-{j.artifact.precision}-"
                                                             f"{j.runtime}.log")


def rounds_path(run_dir: Path, model: str, device: str) -> Path:
    """Where a paired session's per-round samples are kept in the run folder."""
    return Path(run_dir) / "timing" / f"{model}-{device}.json"


class LocalBackend(Backend):
    """This host: the eager baseline first, then every artifact on every configured runtime, timed interleaved."""

    kind = "local"
    together = True

    def plan(self, device, artifacts, pm, config):
        eager = runtime_job(device, eager_artifact(pm.ref), EAGER.runtime, config, exclusive=True)  # speed-ups need it
        return [eager, *runtime_jobs(device, artifacts, config, exclusive=True)]

    def run(self, job, pm, settings):
        return self.run_batch([job], pm, settings)[0]

    def run_batch(self, jobs, pm, settings):
        """Every row in one paired session (benchmarks.paired); the rounds go to <run>/timing/<model>-<device>.json."""
        def log_path(job):
            a = job.artifact
            return settings.log_path(pm.ref.name, a.format, a.precision, job.runtime, job.device, "bench")

        rows = paired_rows(jobs, settings.config, log_path)
        results, rounds = time_rows(rows, pm.ref, pm.inputs_path, settings.budget, settings.threads, pm.flops,
                                    settings.config.benchmark.noisy_iqr_ratio, device=jobs[0].device)
        rounds.save(rounds_path(settings.run_dir, pm.ref.name, jobs[0].device))
        for job, row in zip(jobs, results):
            row.runtime_options = dict(job.options)  # the configured options; the session's are in extra
        return [Measured(row) for row in results]
