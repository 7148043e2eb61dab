"""The report's precision table: per format and precision, size, speed and error side by side."""

from __future__ import annotations

import pandas as pd

from edgebench.catalogue import EAGER

FIELDS = ["size_mb", "p50_ms", "speedup_vs_eager", "speedup_vs_fp32", "speedup_vs_quantized", "pct_of_peak", "cosine",
          "psnr_db", "top5_agree", "top1"]


def precision_table(df: pd.DataFrame) -> list[dict]:
    """One row per (format, precision, runtime) of formats exported in more than one precision; cells as text.
    `front`: the file is on its format's Pareto front of size, quality and p50 (reports/pareto.py)."""
    from edgebench.reports.pareto import points

    df = df[(df["format"] != EAGER.format) & (df["format"] != "")]
    several = {f for f, g in df.groupby("format") if g["precision"].nunique() > 1}
    front = {(p["format"], p["precision"], p["runtime"]) for pts in points(df).values() for p in pts if p["front"]}
    rows = []
    for _, r in df[df["format"].isin(several)].iterrows():
        rows.append({"format": r["format"], "precision": r["precision"], "runtime": r["runtime"] or "–",
                     "status": r["status"], "reason": r["reason"] if r["status"] != "passed" else "",
                     "calibration": r["calibration"], "float_layers": r["float_layers"].replace(";", ", "),
                     "front": (r["format"], r["precision"], r["runtime"]) in front,
                     **{f: _text(f, r[f]) for f in FIELDS}})
    return rows


def _text(field: str, v) -> str:
    if pd.isna(v):
        return ""
    if field.startswith("speedup"):
        return f"{v:.2f}x"
    if field == "pct_of_peak":
        return f"{v:.0f} %"
    if field == "cosine":
        return f"{v:.6f}"
    if field in ("psnr_db", "p50_ms", "size_mb", "top1"):
        return f"{v:.1f}"
    return f"{v:.2f}"
