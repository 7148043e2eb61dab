"""A rich table of accuracy results, one row per (format, precision, runtime)."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from edgebench.evaluation.stats import ci_text
from edgebench.records import AccuracyResult
from edgebench.tables import number, status_cell


def accuracy_table(results: Iterable[AccuracyResult]) -> Table:
    """Top-1 / top-5 (video level), clip top-1, the top-1 drop against eager with its 95 % interval, the verdict."""
    results = list(results)
    first = next((r for r in results if r.videos), None)
    title = f"Accuracy on {first.dataset} ({first.videos} videos, {first.unreadable} unreadable)" if first else "Accuracy"
    table = Table(title=title)
    for col, justify in [("model", "left"), ("format", "left"), ("precision", "left"), ("runtime", "left"),
                         ("status", "left"), ("top-1 %", "right"), ("top-5 %", "right"), ("clip top-1 %", "right"),
                         ("drop (points)", "right"), ("95 % interval", "right"), ("bound", "right"),
                         ("verdict", "left"), ("reason", "left")]:
        table.add_column(col, justify=justify, overflow="fold")
    for r in results:
        table.add_row(r.model, r.format, r.precision, r.runtime, status_cell(r.status), number(r.top1, ".1f"),
                      number(r.top5, ".1f"), number(r.clip_top1, ".1f"), number(r.top1_drop, "+.1f"),
                      ci_text(r.top1_drop_low, r.top1_drop_high), number(r.bound, "g"), r.verdict, r.reason)
    return table
