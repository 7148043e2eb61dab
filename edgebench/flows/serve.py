"""`edgebench serve` / `stop`: a local Prefect server, work pool, limits, deployments and workers
(the main worker, a device host's, and `fleet.workers` fleet workers for the fanned-out nightly).

Every process it starts is recorded by pid in PREFECT_HOME/edgebench-serve.json; `stop` ends exactly
those. Idempotent: a second `serve` finds the running server and workers and only re-applies the
pool, the limits and the deployments.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from edgebench.config import PROJECT_ROOT, load_pipeline_config
from edgebench.errors import UserError
from edgebench.liveness import pid_alive, probe
from edgebench.records import write_json_atomic

POOL = "edgebench"
QUEUES = ("default", "second-host")  # the main worker's queue, then one per device host served here
FLEET_QUEUE = "fleet"  # the model runs of a fanned-out nightly (prefect.yaml: model-pipeline/fleet)
DEVICE_LIMITS = ("edgebench-device-local",)
SILENT_RUNS = "edgebench: a silent fleet model run is Crashed"  # the automation's name


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or PROJECT_ROOT / ".prefect").resolve()


def state_path() -> Path:
    return prefect_home() / "edgebench-serve.json"


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(api_url: str) -> dict[str, str]:
    return {**os.environ, "PREFECT_HOME": str(prefect_home()), "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "true"}


def _spawn(name: str, args: list[str], env: dict[str, str]) -> int:
    logs = prefect_home() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                cwd=PROJECT_ROOT, start_new_session=True)
    return proc.pid


def _run(args: list[str], env: dict[str, str], ok_if: str | None = None) -> None:
    done = subprocess.run(args, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
    if done.returncode != 0 and not (ok_if and ok_if in (done.stdout + done.stderr)):
        last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise UserError(f"{' '.join(Path(a).name if i == 0 else a for i, a in enumerate(args))} failed: {last[0]}")


def load_state() -> dict:
    try:
        return json.loads(state_path().read_text())
    except (OSError, ValueError):
        return {}


def _save_state(state: dict) -> None:
    write_json_atomic(state_path(), state)


def _kill_tree(pid: int) -> None:
    """SIGKILL the process group and every descendant (a worker wrapper's worker has its own group)."""
    import psutil

    try:
        descendants = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    for proc in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def serve(say: Callable[[str], None] = print, port: int | None = None, wait_s: float = 90,
          fleet_workers: int | None = None, cpus_per_worker: int | None = None) -> dict:
    """Start (or find) the server and workers, then apply pool, limits and deployments; `fleet_workers` and
    `cpus_per_worker` override the config's `fleet` section."""
    state = load_state()
    pids = state.get("pids", {})
    if state and pid_alive(pids.get("server", -1)) and probe(state["api_url"], 2) == "ok":
        say(f"server already running at {state['api_url']} (pid {pids['server']})")
    else:
        port = port or _free_port()
        api_url = f"http://127.0.0.1:{port}/api"
        env = environment(api_url)
        pids = {"server": _spawn("server", [_bin("prefect"), "server", "start", "--host", "127.0.0.1",
                                            "--port", str(port), "--analytics-off"], env)}
        state = {"api_url": api_url, "ui_url": f"http://127.0.0.1:{port}", "pids": pids}
        _save_state(state)
        deadline = time.monotonic() + wait_s
        while probe(api_url, 2) != "ok":
            if time.monotonic() > deadline or not pid_alive(pids["server"]):
                raise UserError(f"Prefect server did not become healthy in {wait_s:g} s; see {prefect_home() / 'logs' / 'server.log'}")
            time.sleep(0.5)
        say(f"server started at {state['ui_url']} (pid {pids['server']}), database under {prefect_home()}")
    env = environment(state["api_url"])
    _run([_bin("prefect"), "work-pool", "create", POOL, "--type", "process"], env, ok_if="already exists")
    for limit in DEVICE_LIMITS:
        _run([_bin("prefect"), "gcl", "create", limit, "--limit", "1"], env, ok_if="already exists")
    _run([_bin("prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", str(PROJECT_ROOT / "prefect.yaml")], env)
    say(f"work pool '{POOL}', limits {', '.join(DEVICE_LIMITS)} and deployments from prefect.yaml applied")
    fleet = load_pipeline_config().fleet
    fleet = fleet.model_copy(update={k: v for k, v in (("workers", fleet_workers), ("cpus_per_worker", cpus_per_worker))
                                     if v is not None})
    crash_silent_runs(state["api_url"], fleet)
    say(f"automation '{SILENT_RUNS}': no heartbeat for {fleet.crashed_after_s} s -> Crashed (the nightly runs it again)")
    workers = [(f"worker-{q}", q, []) for q in QUEUES]
    workers += [(f"worker-{FLEET_QUEUE}-{i}", FLEET_QUEUE, ["--limit", str(fleet.worker_limit), "--name",
                 f"{FLEET_QUEUE}-{socket.gethostname()}-{i}", *fleet_cpus(i, fleet.cpus_per_worker)])
                for i in range(1, fleet.workers + 1)]
    for key, queue, extra in workers:
        if not pid_alive(pids.get(key, -1)):
            # Through edgebench.flows.worker: stopping it stops its flow runs cleanly (Crashed, children killed).
            worker_env = {**env, "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": str(fleet.heartbeat_s)}
            pids[key] = _spawn(key, [sys.executable, "-m", "edgebench.flows.worker", "--pool", POOL, "--work-queue",
                                     queue, "--type", "process", *extra], worker_env)
            say(f"worker for queue '{queue}' started (pid {pids[key]})")
    state["pids"] = pids
    _save_state(state)
    env_file = prefect_home() / "env.sh"
    env_file.write_text(f"export PREFECT_HOME={prefect_home()}\nexport PREFECT_API_URL={state['api_url']}\n"
                        f"export PATH={Path(sys.executable).parent}:$PATH\n")
    say(f"for the prefect CLI: source {env_file}")
    return state


def fleet_cpus(i: int, per_worker: int) -> list[str]:
    """`--cpus` for fleet worker i (from 1): its own `per_worker` cores; none when 0."""
    first = (i - 1) * per_worker
    if not per_worker:
        return []
    if first + per_worker > (os.cpu_count() or 1):
        raise UserError(f"fleet.cpus_per_worker: worker {i} would need cores {first}-{first + per_worker - 1}; "
                        f"this machine has {os.cpu_count()}")
    return ["--cpus", f"{first}-{first + per_worker - 1}"]


def crash_silent_runs(api_url: str, fleet) -> None:
    """The automation that marks a fleet model run Crashed when its heartbeats stop (its worker or machine died),
    so the nightly's parent can schedule it again. Prefect's documented zombie-flow automation, limited to the
    fleet deployment's runs (other flow runs beat every 180 s by default)."""
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(fleet.deployment)
        related = {"prefect.resource.id": f"prefect.deployment.{deployment.id}", "prefect.resource.role": "deployment"}
        try:
            existing = Automation.read(name=SILENT_RUNS)
        except ValueError:
            existing = None
        if existing is not None:
            if existing.trigger.match_related == ResourceSpecification(related) and \
                    existing.trigger.within.total_seconds() == fleet.crashed_after_s:
                return
            existing.delete()
        Automation(
            name=SILENT_RUNS,
            description="A model run of the fanned-out nightly that stops sending heartbeats is Crashed.",
            trigger=EventTrigger(
                after={"prefect.flow-run.heartbeat"},
                expect={"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                        "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"},
                match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
                match_related=ResourceSpecification(related),
                for_each={"prefect.resource.id"}, posture=Posture.Proactive, threshold=1,
                within=fleet.crashed_after_s),
            actions=[ChangeFlowRunState(state=StateType.CRASHED, force=True,
                                        message=f"no heartbeat for {fleet.crashed_after_s} s: its worker is gone")],
        ).create()


def stop(say: Callable[[str], None] = print, wait_s: float = 60) -> list[int]:
    """SIGTERM each recorded process group, SIGKILL what is left after `wait_s`; returns the pids."""
    state = load_state()
    pids = list(state.get("pids", {}).items())
    for name, pid in reversed(pids):  # workers first, the server last
        if pid_alive(pid):
            os.killpg(pid, signal.SIGTERM)
            say(f"stopping {name} (pid {pid})")
    deadline = time.monotonic() + wait_s
    for name, pid in pids:
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid_alive(pid):
            _kill_tree(pid)
            say(f"killed {name} (pid {pid})")
    state_path().unlink(missing_ok=True)
    if not pids:
        say("nothing to stop")
    return [pid for _, pid in pids]
