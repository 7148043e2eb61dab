"""A thread-pool task runner that kills the run's child processes when its flow is left by a signal."""

from __future__ import annotations

from prefect.task_runners import ThreadPoolTaskRunner

from edgebench import interrupts


class StoppingTaskRunner(ThreadPoolTaskRunner):
    """Prefect's thread pool; leaving the flow by a BaseException (Ctrl-C, SIGTERM, a cancellation)
    first kills every child process and marks the run folder interrupted.

    The pool waits for its threads on exit and those threads wait for their children: without this
    a cancelled run would wait for every running export. A flow's on_crashed / on_cancellation
    hooks are no help: Prefect calls them only after this wait. The runner that entered before the
    run began (the top-level flow's) ends the run on exit.
    """

    def __enter__(self):
        self._owns_run = not interrupts.running()
        return super().__enter__()

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        try:
            if exc_type is not None and not issubclass(exc_type, Exception):
                interrupts.stopped(exc_value)
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            if getattr(self, "_owns_run", False):
                interrupts.end_run()
