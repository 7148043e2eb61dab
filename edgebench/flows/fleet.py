"""The Prefect side of the fan-out: the parent's dispatch of one `model-pipeline` flow run per model through
`run_deployment`, its watch over the runs (a Crashed one scheduled again) and the gathering of their results.

The flow each worker runs is `model_pipeline` in flows/export_and_benchmark.py; the logic (parameters,
results files, when to run again) is in edgebench.fleet.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter, EventResourceFilter
from prefect.states import Cancelling, Crashed, Scheduled

from edgebench import fleet
from edgebench.devices.queue import storage_for
from edgebench.runs import ModelResults, RunSettings
from edgebench.flows.progress import say


def dispatch_models(settings: RunSettings, models: list[str], weights: str | None = None,
                    input_shape: tuple[int, ...] | None = None) -> tuple[list[ModelResults], dict[str, str]]:
    """Every model as its own flow run on the pool; the results of those that completed, and why the others
    did not ({model: outcome}). Must run inside a flow run (the runs are its subflows)."""
    cfg = settings.config.fleet
    storage = storage_for(settings.out)
    tracked = {}
    for name in models:
        run = run_deployment(cfg.deployment, parameters=fleet.run_parameters(name, settings, storage.url, weights,
                                                                             input_shape),
                             timeout=0, as_subflow=True)
        tracked[name] = fleet.Tracked(name, str(run.id), scheduled_at=time.monotonic())
    say(f"{len(models)} model runs on {cfg.deployment}: {', '.join(models)}")
    try:
        _watch(tracked, cfg)
    except BaseException:  # the parent is stopping: its model runs stop too
        _cancel([t for t in tracked.values() if not t.outcome])
        raise
    results, missing = [], {}
    for t in tracked.values():
        if t.outcome == "COMPLETED":
            got, worker = fleet.load_results(storage, settings.run_id, t.model)
            say(f"{t.model}: results from {worker.get('host')} worker pid {worker.get('worker_pid')}"
                + (f" after {t.retries} retry(ies)" if t.retries else ""))
            results.append(got)
        else:
            missing[t.model] = t.outcome
    return results, missing


def _watch(tracked: dict[str, fleet.Tracked], cfg) -> None:
    """Poll every model run until each is final; a Crashed one goes back to Scheduled while retries last."""
    with get_client(sync_client=True) as client:
        while True:
            for t in tracked.values():
                if t.outcome:
                    continue
                state = client.read_flow_run(t.flow_run_id).state
                kind = state.type.value if state else "PENDING"
                live = state is not None and kind in fleet.LIVE  # a run with no state yet has no worker
                silent = _silence(client, t.flow_run_id, state, cfg.crashed_after_s) if live else 0.0
                step = fleet.next_step(kind, t, cfg.retries, time.monotonic(), cfg.start_timeout_s, silent,
                                       cfg.crashed_after_s)
                if step == fleet.CRASH:  # scheduled again at the next poll, as a Crashed run is
                    client.set_flow_run_state(t.flow_run_id, Crashed(
                        message=f"no sign of life for {cfg.crashed_after_s} s ({kind.lower()}): its worker is gone"),
                        force=True)
                elif step == fleet.RETRY:
                    t.retries += 1
                    t.scheduled_at = time.monotonic()
                    why = state.message or "crashed"
                    client.set_flow_run_state(t.flow_run_id, Scheduled(message=f"edgebench retry {t.retries} after: "
                                                                       f"{why}"), force=True)
                    say(f"{t.model}: its run crashed ({why}); scheduled again for the next free worker "
                        f"({t.retries} of {cfg.retries})")
                elif step == fleet.DONE:
                    t.outcome = kind
                elif step == fleet.GIVE_UP and kind in fleet.FINAL:
                    t.outcome = f"{kind}: {state.message}" if state.message else kind
                elif step == fleet.GIVE_UP:
                    _cancel([t])
                    t.outcome = f"no worker started it in {cfg.start_timeout_s:g} s"
            if all(t.outcome for t in tracked.values()):
                return
            time.sleep(cfg.poll_s)


def _silence(client, flow_run_id: str, state, crashed_after_s: float) -> float:
    """Seconds a model run has given no sign of life. PENDING (a worker is starting it, which takes seconds):
    since it entered that state; RUNNING: since its last heartbeat event, 0 while it is younger than
    `crashed_after_s` or has sent none since it started (its worker sends no heartbeats: silence proves nothing,
    as for the automation)."""
    now = datetime.now(timezone.utc)
    in_state_s = (now - state.timestamp).total_seconds()
    if state.type.value == "PENDING":
        return in_state_s
    if in_state_s <= crashed_after_s:
        return 0.0
    beats = client.read_events(EventFilter(
        event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{flow_run_id}"]),
        occurred=EventOccurredFilter(since=state.timestamp, until=now)), limit=1)  # newest first
    return (now - beats.events[0].occurred).total_seconds() if beats.events else 0.0


def _cancel(runs: list[fleet.Tracked]) -> None:
    """Ask the server to cancel these model runs (their workers stop them and kill their children)."""
    with get_client(sync_client=True) as client:
        for t in runs:
            try:
                client.set_flow_run_state(t.flow_run_id, Cancelling(message="the parent run stopped"), force=True)
            except Exception:  # noqa: BLE001 - best effort while stopping; the server may be gone
                pass
