"""The Prefect side of `queue:<name>` devices: start the remote deployment, and the flow the remote machine serves.

Everything else (what is uploaded, how the row is measured and read back) is in edgebench.devices.queue.
"""

from __future__ import annotations

from prefect import flow
from prefect.context import FlowRunContext, TaskRunContext
from prefect.deployments import run_deployment

REMOTE_FLOW = "remote-benchmark"


def inside_flow_run() -> bool:
    """Inside the flow (or one of its tasks): outside it there is no Prefect API to dispatch through."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def dispatch(queue: str, parameters: dict, timeout_s: float) -> str:
    """Run the deployment served on `queue` and wait; "" when it completed, else why not."""
    run = run_deployment(f"{REMOTE_FLOW}/{queue}", parameters=parameters, timeout=timeout_s)
    if not run.state or not run.state.is_completed():
        return f"remote run {run.name} on queue {queue} ended {run.state.name if run.state else 'without a state'}"
    return ""


@flow(name=REMOTE_FLOW)
def remote_benchmark(artifact: dict, model: str, runtime: str, device: str, inputs_url: str, storage_url: str,
                     result_key: str, quick: bool = True, threads: int = 0, flops: int | None = None,
                     input_shape: list[int] | None = None) -> str:
    """Fetch the artifact and inputs, benchmark here with the same harness, write the result back."""
    from edgebench.devices.queue import measure_remote_here

    return measure_remote_here(artifact, model, runtime, device, inputs_url, storage_url, result_key, quick,
                               threads, flops, input_shape)
