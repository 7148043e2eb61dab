"""A rich table of parity results, one row per (format, precision, runtime)."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from edgebench.records import ParityResult
from edgebench.tables import number, status_cell


def parity_table(results: Iterable[ParityResult]) -> Table:
    """Status, max abs error, cosine, PSNR, top-1/top-5 and the reason, per result."""
    table = Table(title="Parity against PyTorch fp32 eager")
    for col, justify in [("model", "left"), ("format", "left"), ("precision", "left"), ("runtime", "left"),
                         ("status", "left"), ("max abs err", "right"), ("cosine", "right"), ("PSNR dB", "right"),
                         ("top-1", "right"), ("top-5", "right"), ("clips", "right"), ("reason", "left")]:
        table.add_column(col, justify=justify, overflow="fold")
    for r in results:
        table.add_row(r.model, r.format, r.precision, r.runtime, status_cell(r.status),
                      number(r.max_abs_err, ".2e"), number(r.cosine, ".8f"), number(r.psnr_db, ".1f"),
                      number(r.top1_agree, ".2f"), number(r.top5_agree, ".2f"), str(r.clips), r.reason)
    return table
