"""The coverage scorecard: one cell per model x format/precision, passed with its figures or its failure class,
and what changed since the model's previous night (new passes, new failures, latency buckets as AI Hub's)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from edgebench.catalogue import EAGER
from edgebench.reports.failures import CLASSES
from edgebench.reports.rows import LOCAL, STATUS_RANK

# One word per cell state, as the matrix shows it.
WORDS = {"passed": "pass", "skipped": "skipped", "unsupported_op": "unsupported", "partial_delegation": "partial",
         "numerics": "numerics", "timeout": "timeout", "out_of_memory": "oom", "toolchain_crash": "crash",
         "failed": "failed"}  # failed: a row of a night before failure classes were recorded
BUCKETS = (1.1, 1.5, 2.0, 5.0)  # latency change buckets, as AI Hub Models' scorecard


@dataclass(frozen=True)
class Cell:
    """One model x format/precision: its state (passed, skipped or a failure class) and what it shows."""

    state: str
    detail: str = ""  # the failure's detail, or why skipped
    runtime: str = ""  # the fastest passing local runtime, whose p50 is the cell's latency
    p50_ms: float | None = None
    speedup: float | None = None  # against eager on the same host
    peak_mb: float | None = None  # the largest child of the cell's rows

    @property
    def word(self) -> str:
        return WORDS.get(self.state, self.state)

    @property
    def failed(self) -> bool:
        return self.state not in ("passed", "skipped")


@dataclass
class Changes:
    """What changed against each model's previous night."""

    new_passes: list[str] = field(default_factory=list)  # "model · format precision (was: unsupported)"
    new_failures: list[str] = field(default_factory=list)
    latency: dict[str, list[str]] = field(default_factory=dict)  # bucket label -> cells
    compared: int = 0  # models that had a previous night

    @property
    def any(self) -> bool:
        return bool(self.new_passes or self.new_failures or self.latency)


def columns(df: pd.DataFrame, formats: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(format, precision) as the rows order formats (eager, then the config's order) and as the config lists
    each format's precisions; only those the rows have."""
    fmt_rank = {f: i for i, f in enumerate(dict.fromkeys(df["format"]))}
    pairs = {(r.format, r.precision) for r in df[["format", "precision"]].itertuples()}
    return sorted(pairs, key=lambda fp: (fmt_rank[fp[0]], _index(formats.get(fp[0], []), fp[1]), fp[1]))


def cells(df: pd.DataFrame) -> dict[tuple[str, str, str], Cell]:
    """(model, format, precision) -> its cell, from the rows of one night."""
    return {key: cell_of(group) for key, group in df.groupby(["model", "format", "precision"], sort=False)}


def cell_of(rows: pd.DataFrame) -> Cell:
    """Failed if any row failed (the most severe row's class), else passed if any row passed, else skipped."""
    peak = rows["peak_mb"].max() if "peak_mb" in rows and rows["peak_mb"].notna().any() else None
    failed = rows[~rows["status"].isin(["passed", "skipped"])]
    if len(failed):
        worst = failed.loc[failed["status"].map(lambda s: STATUS_RANK.get(s, 3)).idxmin()]
        state = worst.get("failure") or "failed"
        return Cell(state if state in CLASSES else "failed", worst.get("failure_detail") or worst["reason"],
                    peak_mb=peak)
    passed = rows[(rows["status"] == "passed") & (rows["device"] == LOCAL)]
    timed = passed[passed["p50_ms"].notna()].sort_values("p50_ms")
    if len(timed):
        best = timed.iloc[0]
        return Cell("passed", delegation(best["runtime_options"]), runtime=best["runtime"],
                    p50_ms=float(best["p50_ms"]), speedup=_or_none(best["speedup_vs_eager"]), peak_mb=peak)
    if (rows["status"] == "passed").any():
        return Cell("passed", peak_mb=peak)
    return Cell("skipped", rows["reason"].iloc[0], peak_mb=peak)


def delegation(runtime_options: str) -> str:
    """'XNNPACK runs 38 % of the FLOPs; off it: CONV_3D x20' from a LiteRT row's options; "" when all of it."""
    try:
        options = json.loads(runtime_options) if runtime_options else {}
    except ValueError:
        return ""
    pct, off = options.get("delegated_flops_pct"), options.get("not_delegated") or {}
    if pct is None or (pct >= 100 and not off) or not options.get("xnnpack", True):
        return ""
    return f"XNNPACK runs {pct:g} % of the FLOPs; off it: " + ", ".join(f"{op} x{n}" for op, n in sorted(off.items()))


def changes(now: pd.DataFrame, history: pd.DataFrame | None) -> Changes:
    """Against each model's latest earlier night in `history`: cells that turned passed or failed, and the
    latency ratio of cells that passed both nights, on the same runtime, bucketed 1.1x / 1.5x / 2x / 5x."""
    out = Changes()
    if history is None or history.empty:
        return out
    current = cells(now)
    started = now["started_at"].min()
    for model in dict.fromkeys(now["model"]):
        before = history[(history["model"] == model) & (history["started_at"] < started)]  # a rebuilt night: not later ones
        if before.empty:
            continue
        out.compared += 1
        last = before[before["run_id"] == before.sort_values("started_at")["run_id"].iloc[-1]]
        previous = cells(last)
        for key, cell in current.items():
            if key[0] != model or key not in previous:
                continue
            was, label = previous[key], f"{model} · {key[1]} {key[2]}"
            if cell.state == "passed" and was.failed:
                out.new_passes.append(f"{label} (was {was.word})")
            elif cell.failed and was.state == "passed":
                out.new_failures.append(f"{label} ({cell.word}: {cell.detail})")
            elif cell.p50_ms and was.state == "passed":
                old = _p50_on(last, key, cell.runtime)
                bucket = latency_bucket(cell.p50_ms / old) if old else None
                if bucket:
                    out.latency.setdefault(bucket, []).append(f"{label} on {cell.runtime}: "
                                                              f"{old:,.1f} → {cell.p50_ms:,.1f} ms")
    return out


def latency_bucket(ratio: float) -> str | None:
    """'1.5x-2x slower', '2x-5x faster', '>5x slower' for a p50 ratio now/before; None under 1.1x either way."""
    slower = ratio >= 1
    r = ratio if slower else 1 / ratio
    edges = [b for b in BUCKETS if r >= b]
    if not edges:
        return None
    low = edges[-1]
    high = next((b for b in BUCKETS if b > low), None)
    span = f"{low:g}x-{high:g}x" if high else f">{low:g}x"
    return f"{span} {'slower' if slower else 'faster'}"


def scorecard(df: pd.DataFrame, formats: dict[str, list[str]], history: pd.DataFrame | None = None,
              anchors: dict[str, str] | None = None) -> dict:
    """The matrix the report opens on: a row per model, a cell per format/precision, each with its word,
    class, title and link to the model's section; each model's largest child; what changed since last night."""
    cols = columns(df, formats)
    found = cells(df)
    rows = []
    for model in dict.fromkeys(df["model"]):
        mine = [found.get((model, f, p)) for f, p in cols]
        peaks = [c.peak_mb for c in mine if c and c.peak_mb]
        rows.append({"model": model, "href": f"#{(anchors or {}).get(model, '')}",
                     "cells": [_view(c) if c else None for c in mine], "peak_mb": max(peaks) if peaks else None,
                     "passed": sum(1 for c in mine if c and c.state == "passed"),
                     "cells_run": sum(1 for c in mine if c and c.state != "skipped")})
    return {"columns": [("eager" if f == EAGER.format else f, p) for f, p in cols], "rows": rows,
            "changes": changes(df, history)}


def _view(cell: Cell) -> dict:
    figures = []
    if cell.p50_ms is not None:
        figures.append(f"p50 {cell.p50_ms:,.1f} ms on {cell.runtime}")
    if cell.speedup:
        figures.append(f"{cell.speedup:.2f}x eager")
    if cell.peak_mb:
        figures.append(f"peak {cell.peak_mb:,.0f} MB")
    title = " · ".join(([cell.detail] if cell.detail else []) + figures)
    return {"state": cell.state, "word": cell.word, "title": title,
            "figure": f"{cell.p50_ms:,.0f} ms" if cell.p50_ms is not None else ""}


def markdown(card: dict) -> str:
    """The scorecard as a Markdown table (docs/zoo.md): one word per cell, p50 for passes, peak per model."""
    head = ["model", *[f"{f} {p}" for f, p in card["columns"]], "peak child MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in card["rows"]:
        cells_text = [("—" if c is None else (f"pass {c['figure']}" if c["state"] == "passed" and c["figure"]
                                              else c["word"])) for c in row["cells"]]
        peak = f"{row['peak_mb']:,.0f}" if row["peak_mb"] else ""
        lines.append("| " + " | ".join([row["model"], *cells_text, peak]) + " |")
    return "\n".join(lines) + "\n"


def failures_list(df: pd.DataFrame) -> list[str]:
    """Every failed cell with its class and detail, one line each (under the Markdown table)."""
    return [f"- {m} · {f} {p}: {c.word}: {c.detail}" for (m, f, p), c in cells(df).items() if c.failed]


def _p50_on(rows: pd.DataFrame, key: tuple[str, str, str], runtime: str) -> float | None:
    sel = rows[(rows["model"] == key[0]) & (rows["format"] == key[1]) & (rows["precision"] == key[2])
               & (rows["runtime"] == runtime) & (rows["device"] == LOCAL) & (rows["status"] == "passed")]
    values = sel["p50_ms"].dropna()
    return float(values.iloc[0]) if len(values) else None


def _index(items: list[str], item: str) -> int:
    return items.index(item) if item in items else len(items)


def _or_none(v) -> float | None:
    return None if v is None or pd.isna(v) else float(v)
