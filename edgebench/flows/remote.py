"""Benchmarks on another machine: a `remote-benchmark` deployment served on that device's work queue.

The main flow uploads the artifact and the inputs to the storage location, starts the deployment
named after the queue with `run_deployment`, and reads the LatencyResult the remote run wrote back.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

from prefect import flow
from prefect.deployments import run_deployment

from edgebench import pipeline
from edgebench.benchmarks.devices import parse_device
from edgebench.config import load_pipeline_config
from edgebench.records import RUNTIME_FAILED, Artifact, LatencyResult
from edgebench.storage import Storage

REMOTE_FLOW = "remote-benchmark"
STORAGE_ENV = "EDGEBENCH_STORAGE"  # an fsspec URL shared by every machine, e.g. s3://bucket/edgebench


def storage_for(settings: pipeline.RunSettings) -> Storage:
    return Storage(os.environ.get(STORAGE_ENV) or str(Path(settings.out) / "storage"))


def _upload(pm: pipeline.PreparedModel, artifact: Artifact, runtime: str, device: str,
            settings: pipeline.RunSettings) -> dict:
    """Put the artifact and the inputs in storage; the remote flow's parameters."""
    storage = storage_for(settings)
    key = f"runs/{settings.run_id}/{artifact.model}-{artifact.format}-{artifact.precision}-{runtime}"
    record = artifact.to_dict()
    if artifact.path:  # the eager baseline has no file
        name = Path(artifact.path).name
        record["path"] = storage.put(Path(artifact.path), f"artifacts/{artifact.cache_key or artifact.sha256}/{name}")
    return {
        "artifact": record,
        "model": pm.ref.name,
        "input_shape": list(pm.ref.input_override) if pm.ref.input_override else None,
        "runtime": runtime,
        "device": device,
        "inputs_url": storage.put(Path(pm.inputs_path), f"runs/{settings.run_id}/{pm.ref.name}.inputs.npz"),
        "storage_url": storage.url,
        "result_key": f"{key}.json",
        "quick": settings.quick,
        "threads": settings.threads,
        "flops": pm.flops,
    }


def dispatch_remote_bench(pm: pipeline.PreparedModel, artifact: Artifact, runtime: str, device: str,
                          settings: pipeline.RunSettings) -> LatencyResult:
    """Run one benchmark on the machine serving `queue:<name>`; failures come back as rows."""
    queue = parse_device(device).name
    row = LatencyResult(artifact.model, artifact.format, artifact.precision, runtime, device, RUNTIME_FAILED)
    try:
        parameters = _upload(pm, artifact, runtime, device, settings)
        run = run_deployment(f"{REMOTE_FLOW}/{queue}", parameters=parameters, timeout=settings.budget.timeout_s + 300)
    except Exception as e:  # noqa: BLE001 - storage, a missing deployment or the server: a row, not a crash
        row.reason = f"dispatch to queue {queue} failed: {type(e).__name__}: {e}".splitlines()[0]
        return row
    if not run.state or not run.state.is_completed():
        row.reason = f"remote run {run.name} on queue {queue} ended {run.state.name if run.state else 'without a state'}"
        return row
    data = storage_for(settings).read_json(parameters["result_key"])
    known = {f.name for f in dataclasses.fields(LatencyResult)}
    return LatencyResult(**{k: v for k, v in data.items() if k in known})


@flow(name=REMOTE_FLOW)
def remote_benchmark(artifact: dict, model: str, runtime: str, device: str, inputs_url: str, storage_url: str,
                     result_key: str, quick: bool = True, threads: int = 0, flops: int | None = None,
                     input_shape: list[int] | None = None) -> str:
    """Fetch the artifact and inputs, benchmark here with the same harness, write the result back.

    The model is resolved by name only for its input and output specs: the file sent is what runs.
    """
    from edgebench.benchmarks.local import bench_local
    from edgebench.models.source import resolve_model
    from edgebench.runtimes.base import resolve_threads

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
    result = bench_local(record, runtime, ref, inputs_path, budget, resolve_threads(threads), flops,
                         budget.timeout_s, work / "bench.log", noisy_iqr_ratio=config.benchmark.noisy_iqr_ratio,
                         device=device)
    return storage.write_json(result_key, dataclasses.asdict(result))
