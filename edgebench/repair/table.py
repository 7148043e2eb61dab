"""The console table of `edgebench repair`: one row per repair, with the three files' p50 side by side."""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from edgebench.config import mixed_precision
from edgebench.records import RepairResult
from edgebench.tables import status_cell


def _value(df: pd.DataFrame, r: RepairResult, precision: str, column: str, spec: str) -> str:
    """`column` of the first row of (model, format, precision) that has it (a timed row first), formatted."""
    rows = df[(df["model"] == r.model) & (df["format"] == r.format) & (df["precision"] == precision)]
    values = rows.sort_values("p50_ms", na_position="last")[column].dropna()
    return format(values.iloc[0], spec) if len(values) else ""


def repair_table(repairs: list[RepairResult], df: pd.DataFrame):
    """A rich table: status, the layers kept, trials, and fp32 / quantized / mixed p50 with the speed-ups."""
    table = Table(title="Repairs")
    for col in ("format", "precision", "status", "float layers", "trials", "seconds", "PSNR dB", "top-1 drop",
                "p50 fp32", "p50 quantized", "p50 mixed", "vs fp32", "vs quantized", "reason"):
        table.add_column(col, justify="right" if col.startswith(("p50", "vs", "trials", "seconds", "PSNR", "top-1"))
                         else "left")
    for r in repairs:
        mixed = mixed_precision(r.precision)
        judged = mixed if r.status == "repaired" else r.precision  # the mixed file's figures, else the failing one's
        table.add_row(r.format, r.precision, status_cell(r.status), "; ".join(r.float_layers),
                      f"{r.trials}/{r.max_trials}" if r.max_trials else "", f"{r.seconds:.0f}" if r.seconds else "",
                      _value(df, r, judged, "psnr_db", ".1f"), _value(df, r, judged, "top1_drop", "+.1f"),
                      _value(df, r, "fp32", "p50_ms", ".1f"), _value(df, r, r.precision, "p50_ms", ".1f"),
                      _value(df, r, mixed, "p50_ms", ".1f"), _value(df, r, mixed, "speedup_vs_fp32", ".2f"),
                      _value(df, r, mixed, "speedup_vs_quantized", ".2f"), r.reason if r.status != "repaired" else "")
    return table
