"""The flow a `queue:<name>` device's machine serves: fetch the artifact and inputs, benchmark, write the row back.

Everything else (what is uploaded, how the run is dispatched and the row read back) is in edgebench.devices.queue.
"""

from __future__ import annotations

from prefect import flow

from edgebench.devices.queue import REMOTE_FLOW, measure_remote_here


@flow(name=REMOTE_FLOW)
def remote_benchmark(artifact: dict, model: str, runtime: str, device: str, inputs_url: str, storage_url: str,
                     result_key: str, quick: bool = True, threads: int = 0, flops: int | None = None,
                     input_shape: list[int] | None = None) -> str:
    """Fetch the artifact and inputs, benchmark here with the same harness, write the result back."""
    return measure_remote_here(artifact, model, runtime, device, inputs_url, storage_url, result_key, quick,
                               threads, flops, input_shape)
