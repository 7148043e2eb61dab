"""Per-step progress lines with timings, on the console and in the Prefect run logs."""

from __future__ import annotations

import sys
import time

from prefect import get_run_logger
from prefect.exceptions import MissingContextError

_START = time.monotonic()


def say(message: str) -> None:
    """Write `[  12.3 s] message` to stdout, and to the run's log (the UI) inside a flow or task."""
    sys.stdout.write(f"[{time.monotonic() - _START:7.1f} s] {message}\n")
    sys.stdout.flush()
    try:
        get_run_logger().info(message)
    except MissingContextError:
        pass


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
