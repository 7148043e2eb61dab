"""A rich table of parity results, one row per (format, precision, runtime)."""

from __future__ import annotations

from typing import Iterable

from rich.table import Table

from edgebench.records import PASSED, SKIPPED, ParityResult

_STYLES = {PASSED: "green", SKIPPED: "dim"}


def _num(x: float | None, fmt: str) -> str:
    return "-" if x is None else format(x, fmt)


def parity_table(results: Iterable[ParityResult]) -> Table:
    """Status, max abs error, cosine, PSNR, top-1/top-5 and the reason, per result."""
    table = Table(title="Parity against PyTorch fp32 eager")
    for col, justify in [("model", "left"), ("format", "left"), ("precision", "left"), ("runtime", "left"),
                         ("status", "left"), ("max abs err", "right"), ("cosine", "right"), ("PSNR dB", "right"),
                         ("top-1", "right"), ("top-5", "right"), ("clips", "right"), ("reason", "left")]:
        table.add_column(col, justify=justify, overflow="fold")
    for r in results:
        style = _STYLES.get(r.status, "red")
        table.add_row(r.model, r.format, r.precision, r.runtime, f"[{style}]{r.status}[/{style}]",
                      _num(r.max_abs_err, ".2e"), _num(r.cosine, ".8f"), _num(r.psnr_db, ".1f"),
                      _num(r.top1_agree, ".2f"), _num(r.top5_agree, ".2f"), str(r.clips), r.reason)
    return table
