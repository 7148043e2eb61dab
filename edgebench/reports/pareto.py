"""The report's Pareto view: per format, each precision's file as size x quality x p50, and the front to pick from.

Quality is video top-1 when every point of the format was scored on a dataset, else PSNR against PyTorch.
A file is on the front when no other passing file of its format is at least as small, as fast and as good,
and better in one. Failing files are drawn (hollow) but never on the front: nobody ships them.
"""

from __future__ import annotations

import math

import pandas as pd

from edgebench.records import PASSED
from edgebench.reports.charts import fmt_ms, nice_ticks
from edgebench.catalogue import EAGER

W, H, LEFT, BOTTOM, TOP, RIGHT = 380, 230, 46, 34, 12, 86
R_MIN, R_MAX = 4.0, 13.0  # circle radius of the smallest and the largest file


def points(df: pd.DataFrame) -> dict[str, list[dict]]:
    """format -> its timed rows as points: precision, runtime, size, p50, quality, status, float layers."""
    d = df[(df["format"] != EAGER.format) & df["p50_ms"].notna() & df["size_mb"].notna()]
    out: dict[str, list[dict]] = {}
    for fmt, rows in d.groupby("format", sort=False):
        by_top1 = rows["top1"].notna().all()
        metric = "top1" if by_top1 else "psnr_db"
        for _, r in rows.iterrows():
            q = r[metric]
            out.setdefault(fmt, []).append({
                "format": fmt, "precision": r["precision"], "runtime": r["runtime"], "size_mb": float(r["size_mb"]),
                "p50_ms": float(r["p50_ms"]), "quality": None if pd.isna(q) else float(q), "metric": metric,
                "ok": r["status"] == PASSED and not pd.isna(q), "status": r["status"], "float_layers": r["float_layers"],
            })  # fmt: skip
    for pts in out.values():
        mark_front(pts)
    return out


def mark_front(pts: list[dict]) -> None:
    """Set `front` on every passing point no other passing point dominates (smaller-or-equal size and p50,
    greater-or-equal quality, one of them strictly)."""
    ok = [p for p in pts if p["ok"]]
    for p in pts:
        p["front"] = p["ok"] and not any(
            q is not p and q["size_mb"] <= p["size_mb"] and q["p50_ms"] <= p["p50_ms"] and q["quality"] >= p["quality"]
            and (q["size_mb"], q["p50_ms"], -q["quality"]) != (p["size_mb"], p["p50_ms"], -p["quality"]) for q in ok)


def pareto_charts(df: pd.DataFrame) -> list[dict]:
    """One scatter per format with two or more timed files: x p50, y quality, circle area by size, front joined."""
    charts = []
    for fmt, pts in points(df).items():
        if len({p["precision"] for p in pts}) < 2:
            continue
        xs = nice_ticks(max(p["p50_ms"] for p in pts) * 1.05)
        qs = [p["quality"] for p in pts if p["quality"] is not None]
        lo, hi = (min(qs), max(qs)) if qs else (0.0, 1.0)
        pad = max((hi - lo) * 0.12, 0.5)
        lo, hi = lo - pad, hi + pad
        biggest = max(p["size_mb"] for p in pts) or 1.0
        px = lambda v: LEFT + (W - LEFT - RIGHT) * v / xs[-1]  # noqa: E731
        py = lambda v: TOP + (H - TOP - BOTTOM) * (1 - (v - lo) / (hi - lo))  # noqa: E731
        metric = pts[0]["metric"]
        unit = "top-1 %" if metric == "top1" else "PSNR dB"
        drawn = []
        for p in sorted(pts, key=lambda p: -p["size_mb"]):  # big circles first, small ones stay visible on top
            y = py(p["quality"]) if p["quality"] is not None else H - BOTTOM
            drawn.append({**p, "x": px(p["p50_ms"]), "y": y, "r": R_MIN + (R_MAX - R_MIN) * math.sqrt(p["size_mb"] / biggest),
                          "cls": "front" if p["front"] else ("ok" if p["ok"] else "bad"),
                          "title": f"{fmt} {p['precision']} on {p['runtime']}: {p['size_mb']:.1f} MiB, p50 "
                                   f"{fmt_ms(p['p50_ms'])} ms, {unit} " + ("-" if p["quality"] is None else f"{p['quality']:.1f}")
                                   + ("" if p["ok"] else f" ({p['status'].replace('_', ' ')})")
                                   + (f"; float layers {p['float_layers']}" if p["float_layers"] else "")
                                   + ("; on the front" if p["front"] else "")})  # fmt: skip
        front = sorted((d for d in drawn if d["front"]), key=lambda d: d["x"])
        charts.append({
            "format": fmt, "width": W, "height": H, "unit": unit, "points": drawn,
            "line": " ".join(f"{d['x']:.1f},{d['y']:.1f}" for d in front),
            "xticks": [{"x": px(t), "text": fmt_ms(t)} for t in xs],
            "yticks": [{"y": py(t), "text": f"{t:g}"} for t in _ticks(lo, hi)],
            "plot": {"left": LEFT, "right": W - RIGHT, "top": TOP, "bottom": H - BOTTOM},
        })  # fmt: skip
    return charts


def _ticks(lo: float, hi: float) -> list[float]:
    """Round values between lo and hi, about five."""
    step = nice_ticks(hi - lo)[1]
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 6) for i in range(int((hi - first) // step) + 1)]
