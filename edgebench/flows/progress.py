"""Per-step progress lines with timings, on the console and in the Prefect run logs; bars on a terminal."""

from __future__ import annotations

import sys
import threading
import time

from prefect import get_run_logger
from prefect.exceptions import MissingContextError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from edgebench.interrupts import note_finished

_START = time.monotonic()
_lock = threading.Lock()
_bars: dict = {"progress": None, "tasks": {}}  # the rich Progress (terminal only) and step name -> task id


def say(message: str) -> None:
    """Write `[  12.3 s] message` to stdout once, and to the run's log (the UI) inside a flow or task.

    A line that starts with a step named in `expect` ("export ...", "parity ...") advances its bar.
    """
    line = f"[{time.monotonic() - _START:7.1f} s] {message}"
    note_finished(message)  # what an interrupted run's run.json lists as done
    with _lock:
        progress = _bars["progress"]
        if progress is not None:
            progress.console.print(line, markup=False, highlight=False, soft_wrap=True)
            task = _bars["tasks"].get(message.split(" ", 1)[0])
            if task is not None:
                progress.advance(task)
        else:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    try:
        get_run_logger().info(message)
    except MissingContextError:
        pass


def expect(step: str, total: int) -> None:
    """Announce `total` more lines of `step`: a bar for it when stdout is a terminal (nothing otherwise)."""
    if total <= 0 or not sys.stdout.isatty():
        return

    with _lock:
        if _bars["progress"] is None:
            _bars["progress"] = Progress(TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(),
                                         TimeElapsedColumn(), transient=True)
            _bars["progress"].start()
        progress, tasks = _bars["progress"], _bars["tasks"]
        if step in tasks:
            progress.update(tasks[step], total=progress.tasks[tasks[step]].total + total)
        else:
            tasks[step] = progress.add_task(step, total=total)


def finish() -> None:
    """Remove the bars (the step lines stay)."""
    with _lock:
        if _bars["progress"] is not None:
            _bars["progress"].stop()
        _bars["progress"], _bars["tasks"] = None, {}


def describe(record) -> str:
    """One line for an Artifact, ParityResult or LatencyResult."""
    parts = [record.model, record.format, record.precision]
    parts += [getattr(record, "runtime", None), getattr(record, "device", None)]
    where = " ".join(p for p in parts if p)
    detail = f": {record.reason}" if record.reason else ""
    timing = ""
    if getattr(record, "export_s", None):
        timing = f" in {record.export_s:.1f} s" + (" (cached)" if record.cached else "")
    if getattr(record, "p50_ms", None):
        timing = f" p50 {record.p50_ms:.1f} ms over {record.runs} runs"
    if getattr(record, "max_abs_err", None) is not None:
        timing = f" max abs err {record.max_abs_err:.2e}"
    return f"{where}: {record.status}{timing}{detail}"
