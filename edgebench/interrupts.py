"""Stopping a run: SIGINT/SIGTERM, a cancelled flow run or a lost Prefect server end it within seconds.

Whatever stops a run goes the same way: every child process group is killed
(`isolation.stop_children`), the run folder gets a run.json saying `interrupted` and what had
finished, no history rows and no `latest` link are written, and the process exits (130 after
SIGINT, 143 after SIGTERM, 1 when the server was lost). The temporary Prefect server of
`edgebench run` lives in its own session, so a Ctrl-C at the terminal reaches the run first and
the server is stopped last.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from edgebench import isolation
from edgebench.converters.export import sweep_temporary
from edgebench.liveness import probe
from edgebench.reaping import at_exit as reap_at_exit

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)
GRACE_S = 10.0  # after the first signal, the run exits by then whatever else is stuck
HEALTH_EVERY_S = 1.0
# Prefect loggers that repeat one lost connection once per event, log line and state change.
NOISY_LOGGERS = ("prefect.events", "prefect._internal", "prefect.logging", "prefect.client", "prefect.flow_runs",
                 "prefect.task_runs", "prefect.flow_engine", "prefect.task_engine", "httpx", "httpcore")


class Interrupted(BaseException):
    """The run got SIGINT or SIGTERM; `exit_code` is what the process should end with."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


# ---------------------------------------------------------------- the run being guarded


class _Run:
    """What a stop needs to mark the run folder: where it is and which steps had finished."""

    def __init__(self, settings):
        self.settings = settings
        self.finished: list[str] = []
        self.marked = False
        self.lock = threading.Lock()
        self.watchdog = ServerWatchdog(self)

    def mark(self, reason: str) -> None:
        with self.lock:
            if self.marked:
                return
            self.marked = True
        from edgebench.reports.writer import mark_interrupted

        s = self.settings
        try:
            mark_interrupted(Path(s.out), s.run_id, s.started_at, reason, list(self.finished))
        except Exception as e:  # noqa: BLE001 - stopping must go on even if the disk is full
            print(f"edgebench: could not mark {s.run_dir} as interrupted: {e}", file=sys.stderr)


_current: _Run | None = None


def begin_run(settings) -> None:
    """Guard this run (its flow runs on flows.stopping.StoppingTaskRunner): sweep the cache of dead
    runs' temporary folders, allow children, watch the server, collect finished steps for the marker."""
    global _current

    isolation.allow_children()
    sweep_temporary(Path(settings.cache_dir))
    _current = _Run(settings)
    _current.watchdog.start()


def note_finished(step: str) -> None:
    """Remember a finished step's one-line description for the interrupted marker."""
    if _current is not None:
        _current.finished.append(step)


def stopped(exc: BaseException) -> None:
    """The run is being left by `exc` (a signal, a cancellation): kill every child, mark the run folder."""
    isolation.stop_children()
    if _current is not None:
        _current.mark(_reason(exc))


def end_run() -> None:
    """The guarded run is over (complete or not): stop watching the server."""
    global _current
    if _current is not None:
        _current.watchdog.stop()
    _current = None


def running() -> bool:
    return _current is not None


def _reason(exc: BaseException) -> str:
    if type(exc).__name__ == "TerminationSignal":
        from prefect._internal import control_listener

        if control_listener.get_intent() == "cancel":
            return "the flow run was cancelled"
        return "interrupted by SIGTERM"
    return str(exc) or type(exc).__name__


# ---------------------------------------------------------------- signals (edgebench run)


@contextmanager
def handled_signals() -> Iterator[None]:
    """SIGINT/SIGTERM in the main thread: first one stops the run (children killed, `Interrupted`
    raised, a hard exit after GRACE_S), a second one exits at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum, frame):
        isolation.stop_children()
        if received:
            _hard_exit(128 + signum)
        received.append(signum)
        threading.Thread(target=_exit_after, args=(GRACE_S, 128 + signum), daemon=True).start()
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in SIGNALS}
    try:
        yield
    finally:
        if not received:  # once stopping, keep ours: a second signal during the shutdown exits at once
            for s, h in previous.items():
                signal.signal(s, h)


def _exit_after(seconds: float, code: int) -> None:
    time.sleep(seconds)
    print(f"edgebench: still stopping after {seconds:g} s; exiting now", file=sys.stderr)
    _hard_exit(code)


def _hard_exit(code: int) -> None:
    """Kill the children and the temporary server, mark the run, then leave without any cleanup."""
    isolation.stop_children()
    if _current is not None:
        _current.mark(f"interrupted, exit {code}")
    kill_ephemeral_server()
    reap_at_exit()  # os._exit skips atexit: the resource tracker and the dead children are reaped here
    sys.stderr.flush()
    os._exit(code)


def run_flow(flow_fn, **params):
    """Call a flow in this process (edgebench run) so that SIGINT/SIGTERM stop it within seconds.

    Its temporary server starts in its own session; the returned state is the flow's. A signal
    comes out as `Interrupted` (after the children were killed and the run folder marked), also
    when it reached Prefect's own SIGTERM handler first.
    """
    with handled_signals():
        try:
            if not api_url():
                start_ephemeral_server()
            return flow_fn(**params, return_state=True)
        except Interrupted:
            raise
        except BaseException as e:
            if type(e).__name__ != "TerminationSignal":
                raise
            raise Interrupted(int(getattr(e, "signal", signal.SIGTERM))) from e


# ---------------------------------------------------------------- the temporary server


def start_ephemeral_server() -> str:
    """Start Prefect's temporary server in its own session (Prefect then reuses it); its API URL.

    Prefect starts it in the terminal's process group, so a Ctrl-C killed it first and left the
    flow talking to nothing. In its own session it gets no terminal signal; atexit stops it last.
    """
    from prefect.server.api import server as prefect_server

    class OwnSessionServer(prefect_server.SubprocessASGIServer):
        def _run_uvicorn_command(self):
            # Prefect's server module calls its `subprocess.Popen`: only that name sees a new session, only now
            # (a global patch of subprocess.Popen would also change the preflight's children meanwhile).
            prefect_server.subprocess = _NewSessionSubprocess()
            try:
                return super()._run_uvicorn_command()
            finally:
                prefect_server.subprocess = subprocess

    server = OwnSessionServer()  # registered under Prefect's default key: get_client() finds this one
    server.start()
    return server.api_url


class _NewSessionSubprocess:
    """The `subprocess` module, except that Popen starts its child in a new session."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 - the name Prefect calls
        return subprocess.Popen(*args, **{**kwargs, "start_new_session": True})


@contextmanager
def server_starting() -> Iterator[None]:
    """The temporary server starts in a thread while the block runs; leaving the block waits for it.

    `edgebench run` wraps its preflight forward passes with this: the server's start-up (about 7 s,
    its own process) and the model checks (torch's imports, one forward pass) overlap. The start is
    awaited even when the block fails, so the server is registered and atexit stops it.
    """
    if api_url():
        yield
        return
    failure: list[BaseException] = []

    def start() -> None:
        try:
            start_ephemeral_server()
        except BaseException as e:  # noqa: BLE001 - raised in the caller's thread below
            failure.append(e)

    thread = threading.Thread(target=start, name="edgebench-server-start", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
    if failure:
        raise failure[0]


def kill_ephemeral_server() -> None:
    if "prefect.server.api.server" not in sys.modules:
        return  # never started here (and importing Prefect would delay a hard exit)
    from prefect.server.api.server import SubprocessASGIServer

    for server in list(SubprocessASGIServer._instances.values()):
        if server.server_process is not None and server.server_process.poll() is None:
            server.server_process.kill()
            try:
                server.server_process.wait(5)  # reaped: a killed server must not stay <defunct>
            except subprocess.TimeoutExpired:
                pass


# ---------------------------------------------------------------- the server watchdog


def api_url() -> str | None:
    """The Prefect API this process talks to: PREFECT_API_URL, else the running temporary server."""
    from prefect.settings import PREFECT_API_URL

    if url := PREFECT_API_URL.value():
        return url.rstrip("/")
    from prefect.server.api.server import SubprocessASGIServer

    for server in SubprocessASGIServer._instances.values():
        if server.running and server.port:
            return server.api_url
    return None


class ServerWatchdog:
    """Polls the API's health endpoint; when it stops answering, ends the run with one error line.

    Nothing useful can happen without the server (no state, log or result can be recorded), and
    Prefect's clients would retry and warn once per event for minutes: kill the children, mark the
    run folder, quiet Prefect's loggers, print one line, exit 1. A refused connection three times in
    a row means gone; a slow answer (a loaded machine) needs ten misses.
    """

    REFUSED, SLOW = 3, 10

    def __init__(self, run: _Run):
        self.run = run
        self.url: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="edgebench-server-watchdog", daemon=True)

    def start(self) -> None:
        self.url = api_url()
        if self.url and probe(self.url) == "ok":
            self._thread.start()

    def stop(self) -> None:
        self._done.set()

    def _watch(self) -> None:
        refused = slow = 0
        while not self._done.wait(HEALTH_EVERY_S):
            got = probe(self.url)
            refused, slow = (refused + 1 if got == "refused" else 0), (slow + 1 if got != "ok" else 0)
            if (refused >= self.REFUSED or slow >= self.SLOW) and not self._done.is_set():
                self.lost()

    def lost(self) -> None:
        for name in NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.CRITICAL + 1)
        isolation.stop_children()
        reason = f"lost the Prefect API at {self.url} (no answer from /health)"
        self.run.mark(reason)
        print(f"edgebench: error: {reason}; run stopped, {self.run.settings.run_dir} marked interrupted",
              file=sys.stderr, flush=True)
        reap_at_exit()
        os._exit(1)
