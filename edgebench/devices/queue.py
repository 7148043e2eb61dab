"""`queue:<work queue>`: another machine serving the `remote-benchmark` deployment on that Prefect work queue.

The job's artifact and the run's inputs go to the shared storage location, the deployment named after the
queue runs there (flows/remote.py is that flow) and the row the remote run wrote back is read.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from edgebench.catalogue import split_device
from edgebench.config import load_pipeline_config
from edgebench.devices.base import Backend, BenchJob, Device, Measured, skipped
from edgebench.devices.local import measure_here, runtime_job, runtime_jobs
from edgebench.errors import reason_of
from edgebench.records import RUNTIME_FAILED, Artifact, LatencyResult, record_from_dict
from edgebench.runtimes.base import resolve_threads
from edgebench.storage import Storage

STORAGE_ENV = "EDGEBENCH_STORAGE"  # an fsspec URL shared by every machine, e.g. s3://bucket/edgebench
REMOTE_FLOW = "remote-benchmark"  # the flow the queue's machine serves (flows/remote.py)


def inside_flow_run() -> bool:
    """Inside a Prefect flow (or one of its tasks): outside one there is no Prefect API to dispatch through."""
    from prefect.context import FlowRunContext, TaskRunContext  # Prefect only where a queue device is used

    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def dispatch(queue: str, parameters: dict, timeout_s: float) -> str:
    """Run the deployment served on `queue` and wait; "" when it completed, else why not."""
    from prefect.deployments import run_deployment

    run = run_deployment(f"{REMOTE_FLOW}/{queue}", parameters=parameters, timeout=timeout_s)
    if not run.state or not run.state.is_completed():
        return f"remote run {run.name} on queue {queue} ended {run.state.name if run.state else 'without a state'}"
    return ""


def storage_for(out: str) -> Storage:
    return Storage(os.environ.get(STORAGE_ENV) or str(Path(out) / "storage"))


def remote_parameters(job: BenchJob, pm, settings) -> dict:
    """Put the artifact and the inputs in storage; the remote flow's parameters."""
    storage = storage_for(settings.out)
    artifact = job.artifact
    key = f"runs/{settings.run_id}/{artifact.model}-{artifact.format}-{artifact.precision}-{job.runtime}"
    record = artifact.to_dict()
    if artifact.path:  # the eager baseline has no file
        name = Path(artifact.path).name
        record["path"] = storage.put(Path(artifact.path), f"artifacts/{artifact.cache_key or artifact.sha256}/{name}")
    return {
        "artifact": record,
        "model": pm.ref.name,
        "input_shape": list(pm.ref.input_override) if pm.ref.input_override else None,
        "runtime": job.runtime,
        "device": job.device,
        "inputs_url": storage.put(Path(pm.inputs_path), f"runs/{settings.run_id}/{pm.ref.name}.inputs.npz"),
        "storage_url": storage.url,
        "result_key": f"{key}.json",
        "quick": settings.quick,
        "threads": settings.threads,
        "flops": pm.flops,
    }


def measure_remote_here(artifact: dict, model: str, runtime: str, device: str, inputs_url: str, storage_url: str,
                        result_key: str, quick: bool = True, threads: int = 0, flops: int | None = None,
                        input_shape: list[int] | None = None) -> str:
    """On the remote machine: fetch the artifact and inputs, measure with the same harness, write the row back.

    The model is resolved by name only for its input and output specs: the file sent is what runs.
    """
    from edgebench.models.source import resolve_model  # imports torch

    storage = Storage(storage_url)
    config = load_pipeline_config()
    budget = config.benchmark.quick if quick else config.benchmark.full
    work = Path(tempfile.mkdtemp(prefix="edgebench-remote-"))
    ref = resolve_model(model, input_shape=tuple(input_shape) if input_shape else None)
    record = Artifact.from_dict(artifact)
    if record.path:
        remote_path = record.path
        record.path = str(storage.get(remote_path[len(storage.url) + 1:], work / Path(remote_path).name))
    inputs_path = storage.get(inputs_url[len(storage.url) + 1:], work / "inputs.npz")
    job = (runtime_job(Device(*split_device(device)), record, runtime, config, exclusive=True)
           or BenchJob(record, runtime, device))
    result = measure_here(job, ref, str(inputs_path), budget, resolve_threads(threads), flops, work / "bench.log",
                          config.benchmark.noisy_iqr_ratio, config)
    return storage.write_json(result_key, dataclasses.asdict(result))


class QueueBackend(Backend):
    """A machine behind a Prefect work queue: every artifact on every configured runtime, measured there."""

    kind = "queue"

    def plan(self, device, artifacts, pm, config):
        return runtime_jobs(device, artifacts, config, exclusive=False)  # the remote machine holds its own lock

    def run(self, job, pm, settings):
        if not inside_flow_run():
            return skipped(job, "queue devices are dispatched by the Prefect flow (edgebench run)")
        queue = job.device.partition(":")[2]
        a = job.artifact
        row = LatencyResult(a.model, a.format, a.precision, job.runtime, job.device, RUNTIME_FAILED,
                            runtime_options=dict(job.options))
        try:
            parameters = remote_parameters(job, pm, settings)
            problem = dispatch(queue, parameters, settings.budget.timeout_s + 300)
        except Exception as e:  # noqa: BLE001 - storage, a missing deployment or the server: a row, not a crash
            row.reason = f"dispatch to queue {queue} failed: {reason_of(e)}"
            return Measured(row)
        if problem:
            row.reason = problem
            return Measured(row)
        return Measured(record_from_dict(LatencyResult, storage_for(settings.out).read_json(parameters["result_key"])))
