"""`local`: this host, through benchmarks.local (a fresh child per job, a file lock per device)."""

from __future__ import annotations

from edgebench.benchmarks.local import bench_local
from edgebench.catalogue import EAGER
from edgebench.devices.base import Backend, BenchJob, Device, Measured
from edgebench.records import Artifact, LatencyResult
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


class LocalBackend(Backend):
    """This host: the eager baseline first, then every artifact on every configured runtime."""

    kind = "local"

    def plan(self, device, artifacts, pm, config):
        eager = runtime_job(device, eager_artifact(pm.ref), EAGER.runtime, config, exclusive=True)  # speed-ups need it
        return [eager, *runtime_jobs(device, artifacts, config, exclusive=True)]

    def run(self, job, pm, settings):
        a = job.artifact
        log_path = settings.log_path(pm.ref.name, a.format, a.precision, job.runtime, job.device, "bench")
        return Measured(measure_here(job, pm.ref, pm.inputs_path, settings.budget, settings.threads, pm.flops,
                                     log_path, settings.config.benchmark.noisy_iqr_ratio, settings.config))
