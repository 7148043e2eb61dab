"""A rich table of latency results, one row per (format, precision, runtime, device)."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from edgebench.records import LatencyResult
from edgebench.tables import number, status_cell


def latency_table(results: Iterable[LatencyResult]) -> Table:
    """Load, first, p50/p90/p99, IQR, runs, noise, memory and speed-up against eager, per result."""
    table = Table(title="Latency (ms)")
    columns = ["model", "format", "precision", "runtime", "device", "status", "load", "first", "p50", "p90", "p99",
               "IQR", "runs", "noisy", "GFLOP/s", "RSS MB", "threads", "x eager", "reason"]
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "format", "precision", "runtime", "device",
                                                         "status", "reason") else "right", overflow="fold")
    for r in results:
        table.add_row(r.model, r.format, r.precision, r.runtime, r.device, status_cell(r.status),
                      number(r.load_ms, ".0f"), number(r.first_ms, ".0f"), number(r.p50_ms, ".1f"), number(r.p90_ms, ".1f"),
                      number(r.p99_ms, ".1f"), number(r.iqr_ms, ".1f"), str(r.runs or "-"),
                      "-" if r.noisy is None else ("yes" if r.noisy else "no"), number(r.gflops, ".1f"),
                      number(r.peak_rss_mb, ".0f"), str(r.threads or "-"), number(r.speedup_vs_eager, ".2f"), r.reason)
    return table
