"""A rich table of latency results, one row per (format, precision, runtime, device)."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from edgebench.records import PASSED, SKIPPED, LatencyResult

_STYLES = {PASSED: "green", SKIPPED: "dim"}


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def latency_table(results: Iterable[LatencyResult]) -> Table:
    """Load, first, p50/p90/p99, IQR, runs, noise, memory and speed-up against eager, per result."""
    table = Table(title="Latency (ms)")
    columns = ["model", "format", "precision", "runtime", "device", "status", "load", "first", "p50", "p90", "p99",
               "IQR", "runs", "noisy", "GFLOP/s", "RSS MB", "threads", "x eager", "reason"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "format", "precision", "runtime", "device",
                                                         "status", "reason") else "right", overflow="fold")
    for r in results:
        style = _STYLES.get(r.status, "red")
        table.add_row(r.model, r.format, r.precision, r.runtime, r.device, f"[{style}]{r.status}[/{style}]",
                      _num(r.load_ms, ".0f"), _num(r.first_ms, ".0f"), _num(r.p50_ms, ".1f"), _num(r.p90_ms, ".1f"),
                      _num(r.p99_ms, ".1f"), _num(r.iqr_ms, ".1f"), str(r.runs or "-"),
                      "-" if r.noisy is None else ("yes" if r.noisy else "no"), _num(r.gflops, ".1f"),
                      _num(r.peak_rss_mb, ".0f"), str(r.threads or "-"), _num(r.speedup_vs_eager, ".2f"), r.reason)
    return table
