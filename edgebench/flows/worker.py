"""`python -m edgebench.flows.worker <prefect worker start arguments>`: a Prefect worker that stops
its flow runs cleanly when it is stopped.

Prefect's worker answers SIGTERM by interrupting itself and SIGKILLing the flow-run processes it
started: their children were orphaned, no state was reported (the flow run stayed Running) and the
run folder was left unmarked. This wrapper gets the signal first, SIGTERMs each flow-run process
(Prefect marks the run Crashed; edgebench kills its children and marks the run folder), waits for
them, then stops the worker, and SIGKILLs it if it has not exited STOP_S later (Prefect 3's worker has
hung there: it relays SIGINT to its process worker and never returns). `--cpus 0-3` (ours, not Prefect's)
pins the worker and everything it starts to those cores: W workers on one big machine then never share
cores, and `threads: 0` means their cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

GRACE_S = 30.0  # a flow run stopping by SIGTERM takes seconds; after this the worker's own kill goes ahead
STOP_S = 30.0  # the worker's own shutdown after its flow runs are stopped; then it is killed


def stop_flow_runs(worker_pid: int, grace_s: float = GRACE_S) -> list[int]:
    """SIGTERM every flow-run process of the worker (its children) and wait for them; their pids."""
    try:
        runs = psutil.Process(worker_pid).children()
    except psutil.NoSuchProcess:
        return []
    for proc in runs:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(runs, timeout=grace_s)
    return [p.pid for p in runs]


def cpu_list(text: str) -> set[int]:
    """"0-3,6" -> {0, 1, 2, 3, 6}."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def main(argv: list[str]) -> int:
    prefect = str(Path(sys.executable).with_name("prefect"))
    if "--cpus" in argv:
        i = argv.index("--cpus")
        os.sched_setaffinity(0, cpu_list(argv[i + 1]))  # inherited by the worker, its flow runs and their children
        argv = argv[:i] + argv[i + 2:]
    return supervise([prefect, "worker", "start", *argv])


def supervise(cmd: list[str], stop_s: float = STOP_S) -> int:
    """Run the worker command; on SIGTERM/SIGINT stop its flow runs, then the worker (killed after stop_s)."""
    # Its own process group: a signal to ours (edgebench stop) reaches this wrapper first, not the worker.
    worker = subprocess.Popen(cmd, start_new_session=True)
    asked: list[float] = []  # when the worker was told to stop

    def handler(signum, frame):
        if not asked:
            stop_flow_runs(worker.pid)
            worker.send_signal(signal.SIGTERM)
            asked.append(time.monotonic())

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    while True:
        try:
            return worker.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            if asked and time.monotonic() - asked[0] > stop_s:
                os.killpg(worker.pid, signal.SIGKILL)  # its flow runs are stopped already: nothing of a run is lost
                return worker.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
