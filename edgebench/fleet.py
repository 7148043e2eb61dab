"""The zoo fanned out over workers: what travels to one model's run and back, and when a model runs again.

The nightly's parent makes one `model-pipeline` flow run per model (flows/fleet.py). Each runs on
whichever worker of the pool takes it and writes its whole ModelResults as one JSON file to the
shared storage at its very end; the parent gathers every model's file into one report and one
history write, so history never holds half a model. A model run that ended Crashed (its worker
died: `edgebench serve` adds the automation that marks a silent run Crashed, and the parent marks it
itself when no heartbeat came for `crashed_after_s`, or the run stayed that long in PENDING, as one whose
worker died while starting it does) is scheduled again, and the next free worker takes it. Plain
functions: the Prefect calls live in flows/fleet.py.
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass, fields, replace

from edgebench.runs import ModelResults, RunSettings
from edgebench.runtimes.base import resolve_threads
from edgebench.config import PipelineConfig
from edgebench.records import AccuracyResult, Artifact, LatencyResult, ModelRef, ParityResult, record_from_dict
from edgebench.storage import Storage

# What the parent does with a model run in a given state (Prefect's state type names).
WAIT, CRASH, RETRY, DONE, GIVE_UP = "wait", "crash", "retry", "done", "give up"
FINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
LIVE = {"PENDING", "RUNNING"}  # a worker has the run: starting it, or running it


def run_parameters(name: str, settings: RunSettings, storage_url: str, weights: str | None = None,
                   input_shape: tuple[int, ...] | None = None) -> dict:
    """The JSON parameters of one model's flow run: the model, the run's settings, where its results go."""
    run = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name != "config"}
    return {"model": name, "run": {**run, "config": settings.config.model_dump(mode="json")},
            "storage_url": storage_url, "weights": weights, "input_shape": list(input_shape) if input_shape else None}


def settings_from(run: dict) -> RunSettings:
    """The run's settings on this worker; `threads: 0` is resolved on this host (workers differ)."""
    config = PipelineConfig.model_validate(run["config"])
    settings = RunSettings(**{**run, "config": config})
    return replace(settings, threads=resolve_threads(config.threads))


def results_key(run_id: str, model: str) -> str:
    return f"runs/{run_id}/models/{model}.json"


def save_results(storage: Storage, run_id: str, results: ModelResults, seconds: float) -> str:
    """One model's results as one JSON file (written to a temporary name, then renamed); its URL.
    `seconds`: the model's wall time on its worker."""
    data = {"ref": asdict(results.ref), "worker": {**worker_identity(), "seconds": round(seconds, 1)},
            **{k: [asdict(r) for r in getattr(results, k)] for k in ("artifacts", "parity", "latency", "accuracy")}}
    return storage.write_json(results_key(run_id, results.ref.name), data)


def load_results(storage: Storage, run_id: str, model: str) -> tuple[ModelResults, dict]:
    """A model's results and the worker that made them ({host, worker_pid, pid of the flow run, seconds})."""
    d = storage.read_json(results_key(run_id, model))
    results = ModelResults(record_from_dict(ModelRef, d["ref"]),
                           [Artifact.from_dict(a) for a in d["artifacts"]],
                           [record_from_dict(ParityResult, p) for p in d["parity"]],
                           [record_from_dict(LatencyResult, lr) for lr in d["latency"]],
                           [record_from_dict(AccuracyResult, ar) for ar in d["accuracy"]])
    return results, d.get("worker", {})


def worker_identity() -> dict:
    """This host and process: the flow-run process's parent is the worker that started it."""
    return {"host": socket.gethostname(), "worker_pid": os.getppid(), "pid": os.getpid()}


@dataclass
class Tracked:
    """One model's flow run as the parent follows it."""

    model: str
    flow_run_id: str
    retries: int = 0  # times it was scheduled again after a crash
    scheduled_at: float = 0.0  # monotonic time of the last (re)scheduling
    outcome: str = ""  # the final state's type and message, once it has one


def next_step(state_type: str, tracked: Tracked, retries: int, now: float, start_timeout_s: float,
              silent_s: float = 0.0, crashed_after_s: float = float("inf")) -> str:
    """What the parent does with a model run: wait, mark it Crashed (a worker had it, starting or running, but it
    gave no sign of life for longer than `crashed_after_s`), retry it (Crashed, retries left), done, or give up."""
    if state_type in LIVE and silent_s > crashed_after_s:
        return CRASH
    if state_type == "COMPLETED":
        return DONE
    if state_type == "CRASHED" and tracked.retries < retries:
        return RETRY
    if state_type in FINAL:
        return GIVE_UP
    if state_type in ("SCHEDULED", "PENDING") and now - tracked.scheduled_at > start_timeout_s:
        return GIVE_UP  # no worker took it
    return WAIT
