"""Chart geometry for the HTML report: plain numbers the template turns into inline SVG."""

from __future__ import annotations

import math

import pandas as pd

from edgebench.catalogue import EAGER, shown_device
from edgebench.reports.regressions import series_label
from edgebench.reports.rows import SERIES

BAR_H, BAR_GAP, LABEL_W, PLOT_W, VALUE_W, AXIS_H = 18, 6, 250, 420, 150, 22


def nice_ticks(hi: float, n: int = 5) -> list[float]:
    """Round tick values from 0 to at least `hi`."""
    if not hi or hi <= 0 or not math.isfinite(hi):
        return [0.0, 1.0]
    raw = hi / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(math.ceil(hi / step)) + 1)]


def truthy(v) -> bool:
    """True for True/np.True_, False for False, None, NaN and pd.NA."""
    return False if v is None or pd.isna(v) else bool(v)


def fmt_ms(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:,.1f}" if v >= 10 else f"{v:,.2f}"


def _label(r) -> str:
    device = shown_device(r["device"])
    if r["format"] == EAGER.format:
        return f"{EAGER.label}{device}"
    return f"{r['format']} {r['precision']} · {r['runtime'] or '-'}{device}"


def latency_chart(df: pd.DataFrame) -> dict | None:
    """Horizontal bars of p50 with a p90 whisker, one per (format, precision, runtime, device)."""
    d = df[df["p50_ms"].notna()]
    if d.empty:
        return None
    d = d.sort_values("p50_ms", kind="stable")
    hi = float(max(d["p50_ms"].max(), d["p90_ms"].max() if d["p90_ms"].notna().any() else 0)) * 1.04
    ticks = nice_ticks(hi)
    top = ticks[-1]
    x = lambda v: LABEL_W + PLOT_W * (v / top)  # noqa: E731
    bars = []
    for n, (_, r) in enumerate(d.iterrows()):
        y = AXIS_H + n * (BAR_H + BAR_GAP)
        p90 = r["p90_ms"] if pd.notna(r["p90_ms"]) else None
        bars.append({
            "label": _label(r), "y": y, "mid": y + BAR_H / 2, "x0": LABEL_W, "w": max(1.0, x(r["p50_ms"]) - LABEL_W),
            "p90_x": x(p90) if p90 else None, "tol_x": None,
            "text": f"{fmt_ms(r['p50_ms'])} ms" + (f" (p90 {fmt_ms(p90)})" if p90 else ""),
            "text_x": max(x(r["p50_ms"]), x(p90) if p90 else 0) + 6,
            "cls": "eager" if r["format"] == EAGER.format else ("bad" if truthy(r.get("regression")) else r["status"]),
            "title": f"{_label(r)}: p50 {r['p50_ms']:.2f} ms" + (f", p90 {p90:.2f} ms" if p90 else ""),
        })  # fmt: skip
    height = AXIS_H + len(bars) * (BAR_H + BAR_GAP) + 4
    tick_text = (lambda t: f"{t:,.0f}") if top >= 10 else (lambda t: f"{t:g}")  # noqa: E731
    return {"width": LABEL_W + PLOT_W + VALUE_W, "height": height, "bars": bars, "axis_y": AXIS_H - 6,
            "ticks": [{"x": x(t), "text": tick_text(t)} for t in ticks], "plot_bottom": height - 4, "unit": "ms"}  # fmt: skip


def parity_chart(df: pd.DataFrame, tolerances: dict | None = None) -> dict | None:
    """Max abs error against the reference on a log scale, with the tolerance of each precision."""
    d = df[df["max_abs_err"].notna() & (df["format"] != EAGER.format)]
    if d.empty:
        return None
    tolerances = tolerances or {}
    tol_of = lambda p: (tolerances.get(p) or {}).get("max_abs_err")  # noqa: E731
    values = [v for v in d["max_abs_err"] if v > 0] + [t for t in map(tol_of, d["precision"]) if t]
    lo = math.floor(math.log10(min(values))) if values else -9
    hi = math.ceil(math.log10(max(values))) if values else 0
    if hi - lo < 2:  # at least two decades, so small differences do not look huge
        lo = hi - 2
    x = lambda v: LABEL_W + PLOT_W * ((math.log10(v) if v > 0 else lo) - lo) / (hi - lo)  # noqa: E731
    bars = []
    for n, (_, r) in enumerate(d.iterrows()):
        y = AXIS_H + n * (BAR_H + BAR_GAP)
        err, tol = float(r["max_abs_err"]), tol_of(r["precision"])
        psnr = f", PSNR {r['psnr_db']:.1f} dB" if pd.notna(r["psnr_db"]) else ""
        bars.append({
            "label": _label(r), "y": y, "mid": y + BAR_H / 2, "x0": LABEL_W, "w": max(2.0, x(err) - LABEL_W),
            "tol_x": x(tol) if tol else None, "p90_x": None,
            "text": ("0 (exact)" if err == 0 else f"{err:.2g}") + psnr, "text_x": x(err) + 6,
            "cls": {"failed": "parity_failed", "passed": "passed"}.get(r["parity"], "skipped"),
            "title": f"{_label(r)}: max abs err {err:.3g}" + (f" (tolerance {tol:g})" if tol else "") + psnr,
        })  # fmt: skip
    height = AXIS_H + len(bars) * (BAR_H + BAR_GAP) + 4
    ticks = [{"x": x(10.0**e), "text": f"1e{e}"} for e in range(lo, hi + 1)]
    return {"width": LABEL_W + PLOT_W + VALUE_W, "height": height, "bars": bars, "axis_y": AXIS_H - 6,
            "ticks": ticks, "plot_bottom": height - 4, "unit": "max abs err (log)"}  # fmt: skip


TREND_W, TREND_H, TREND_PAD, TREND_LEFT = 300, 90, 8, 56  # left: room for the min/max labels


# What a trend draws: (value column, baseline column, delta column, text of a value, short text for the axis)
P50_TREND = ("p50_ms", "baseline_p50_ms", "delta_p50_pct", lambda v: f"{fmt_ms(v)} ms", fmt_ms)
RATIO_TREND = ("ratio_vs_eager", "baseline_ratio", "delta_ratio_pct", lambda v: f"{v:.3f}x eager", lambda v: f"{v:.2f}x")


def trend_charts(tonight: pd.DataFrame, history: pd.DataFrame | None, nights: int = 30) -> list[dict]:
    """One sparkline per series over its past nights and tonight: the ratio to eager of a row timed
    interleaved with eager (what its verdict judges), else p50; regressions first."""
    if history is None or history.empty:
        return []
    charts = []
    groups = {k: g for k, g in history.groupby(SERIES, sort=False)}
    for _, r in tonight.iterrows():
        key = tuple(r[c] for c in SERIES)
        past = groups.get(key)
        if past is None:
            continue
        column, base_column, delta_column, text, short = RATIO_TREND if pd.notna(r["ratio_vs_eager"]) else P50_TREND
        past = past[(past["run_id"] != r["run_id"]) & (past["started_at"] < r["started_at"])]
        pts = [(s, run, v, st) for s, run, v, st in zip(past["started_at"], past["run_id"], past[column], past["status"])]
        pts = pts[-(nights - 1):] + [(r["started_at"], r["run_id"], r[column], r["status"])]
        vals = [v for _, _, v, _ in pts if pd.notna(v)]
        if len(vals) < 2:
            continue
        base = r[base_column] if pd.notna(r[base_column]) else None
        lo, hi = min(vals + ([base] if base else [])), max(vals + ([base] if base else []))
        span = (hi - lo) or max(hi * 0.05, 1e-9)
        lo, hi = lo - span * 0.15, hi + span * 0.15
        px = lambda i: TREND_LEFT + (TREND_W - TREND_LEFT - TREND_PAD) * (i / max(1, len(pts) - 1))  # noqa: E731
        py = lambda v: TREND_PAD + (TREND_H - 2 * TREND_PAD) * (1 - (v - lo) / (hi - lo))  # noqa: E731
        points = []
        for i, (when, run_id, v, st) in enumerate(pts):
            tonight_pt = i == len(pts) - 1
            points.append({"x": px(i), "y": py(v) if pd.notna(v) else TREND_H - 3, "missing": pd.isna(v),
                           "cls": ("regression" if truthy(r["regression"]) else "tonight") if tonight_pt
                           else ("ok" if st == "passed" else "bad"),
                           "title": f"{str(when)[:16]} {run_id}: "
                                    + (text(v) if pd.notna(v) else "no value") + f" ({st})"})  # fmt: skip
        line = " ".join(f"{p['x']:.1f},{p['y']:.1f}" for p in points if not p["missing"])
        delta = r[delta_column]
        charts.append({
            "label": series_label(key), "width": TREND_W, "height": TREND_H, "points": points, "line": line,
            "base_y": py(base) if base else None, "base_text": f"baseline {text(base)}" if base else "no baseline yet",
            "now_text": text(r[column]) if pd.notna(r[column]) else "no value tonight",
            "delta_text": f"{delta:+.1f} %" if pd.notna(delta) else "", "regression": truthy(r["regression"]),
            "nights": len(pts), "min_text": short(min(vals)), "max_text": short(max(vals)),
        })  # fmt: skip
    charts.sort(key=lambda c: (not c["regression"], c["label"]))
    return charts


DEPTH_W, DEPTH_H, DEPTH_LEFT, DEPTH_BOTTOM, DEPTH_PAD = 640, 200, 52, 22, 10


def depth_chart(loc: dict) -> dict:
    """Relative error of every localized layer against its depth (log scale), with the precision's floor and
    the layer a failure is blamed on marked: the shape of an error's growth through the network."""
    layers = loc.get("layers") or []
    vals = [r["rel_err"] for r in layers if r["rel_err"] > 0 and math.isfinite(r["rel_err"])]
    floor = loc.get("rel_floor") or 0
    lo = math.floor(math.log10(min(vals + ([floor] if floor else [])))) if vals else -8
    hi = math.ceil(math.log10(max(vals + ([floor] if floor else [])))) if vals else 0
    hi = max(hi, lo + 2)
    px = lambda d: DEPTH_LEFT + (DEPTH_W - DEPTH_LEFT - DEPTH_PAD) * (d / max(1, len(layers) - 1))  # noqa: E731
    py = lambda v: DEPTH_PAD + (DEPTH_H - DEPTH_PAD - DEPTH_BOTTOM) * (  # noqa: E731
        1 - ((math.log10(v) if v > 0 else lo) - lo) / (hi - lo))
    points = [{"x": px(r["depth"]), "y": py(min(r["rel_err"], 10.0**hi)),
               "cls": "first" if r["name"] == loc.get("culprit") else (
                   "bad" if r.get("divergent") or not r.get("within_floor", True) else "ok"),
               "title": f"{r['depth']} {r['name']} ({r['kind']}, {r['op']}, {r['mapping']}): rel err {r['rel_err']:.3g}, "
                        f"max abs {r['max_abs_err']:.3g}, cosine {r['cosine']:.6f}, jump {r['jump']:.3g}x"}
              for r in layers]  # fmt: skip
    first = next((p for p, r in zip(points, layers) if r["name"] == loc.get("culprit")), None)
    return {
        "label": f"{loc['model']} · {loc['format']} {loc['precision']}", "width": DEPTH_W, "height": DEPTH_H,
        "points": points, "line": " ".join(f"{p['x']:.1f},{p['y']:.1f}" for p in points),
        "floor_y": py(floor) if floor else None, "floor_text": f"floor {floor:g}" if floor else "",
        "ticks": [{"y": py(10.0**e), "text": f"1e{e}"} for e in range(lo, hi + 1)], "axis_x": DEPTH_LEFT,
        "first": first, "first_name": loc.get("culprit", ""), "summary": loc.get("summary", ""), "mapping": loc.get("mapping", {}),
        "unmatched": loc.get("unmatched", []), "form": loc.get("reference_form", ""), "bottom": DEPTH_H - 6,
    }  # fmt: skip
