"""`python -m edgebench.flows.worker <prefect worker start arguments>`: a Prefect worker that stops
its flow runs cleanly when it is stopped.

Prefect's worker answers SIGTERM by interrupting itself and SIGKILLing the flow-run processes it
started: their children were orphaned, no state was reported (the flow run stayed Running) and the
run folder was left unmarked. This wrapper gets the signal first, SIGTERMs each flow-run process
(Prefect marks the run Crashed; edgebench kills its children and marks the run folder), waits for
them, then stops the worker. `--cpus 0-3` (ours, not Prefect's) pins the worker and everything it starts to
those cores: W workers on one big machine then never share cores, and `threads: 0` means their cores.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

GRACE_S = 30.0  # a flow run stopping by SIGTERM takes seconds; after this the worker's own kill goes ahead


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
    # Its own process group: a signal to ours (edgebench stop) reaches this wrapper first, not the worker.
    worker = subprocess.Popen([prefect, "worker", "start", *argv], start_new_session=True)

    def handler(signum, frame):
        stop_flow_runs(worker.pid)
        worker.send_signal(signal.SIGTERM)

    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, handler)
    return worker.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
