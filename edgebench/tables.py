"""Cells shared by the console tables of exports, parity and latency."""

from __future__ import annotations

import json

from rich import box
from rich.table import Table

from edgebench.catalogue import shown_device
from edgebench.records import PASSED, SKIPPED

_STYLES = {PASSED: "green", SKIPPED: "dim"}
BANDS = ((50.0, "high"), (25.0, "mid"), (0.0, "low"))  # % of the host's peak at or above -> how reports colour a row
_BAND_STYLES = {"high": "green", "mid": "yellow", "low": "red"}


def number(x: float | None, fmt: str) -> str:
    """`x` formatted, or "-" when there is no value."""
    return "-" if x is None else format(x, fmt)


def status_cell(status: str) -> str:
    """The status in rich markup: green passed, dim skipped, red anything else."""
    style = _STYLES.get(status, "red")
    return f"[{style}]{status}[/{style}]"


def _cell(x, fmt: str) -> str:
    """`x` formatted, or "" for a missing value (NaN, None, pandas NA)."""
    import pandas as pd

    return "" if x is None or pd.isna(x) else format(x, fmt)


def _series_labels(table, parts: list[str]) -> list[str]:
    """`format precision runtime [@device]`; the runtime options only where they tell two series apart."""
    base = [" ".join(p for p in [*(str(r[c]) for c in parts), shown_device(r["device"], "@")]
                     if p) for _, r in table.iterrows()]
    labels = []
    for label, options in zip(base, table.get("runtime_options", [""] * len(base))):
        if base.count(label) > 1 and options:
            try:
                options = " ".join(f"{k}={v}" for k, v in json.loads(options).items())
            except (TypeError, ValueError, AttributeError):
                pass
            label = f"{label} {options}"
        labels.append(label)
    return labels


def history_view(table, wide: bool = False, trend_chars: int = 8):
    """`edgebench history`: series, nights, last p50, baseline, delta, trend, verdict (80 columns); `wide`: every column."""
    import pandas as pd

    if wide:
        shown = Table(*table.columns)
        for row in table.itertuples(index=False):
            shown.add_row(*("" if pd.isna(v) else str(v) for v in row))
        return shown
    models = list(dict.fromkeys(table["model"]))
    parts = ["format", "precision", "runtime"] if len(models) == 1 else ["model", "format", "precision", "runtime"]
    # 80 columns: the box's one space between columns, a long series wraps inside its own column
    shown = Table(title=f"history of {models[0]}" if len(models) == 1 else "history", box=box.SIMPLE_HEAD,
                  padding=0, show_edge=False)
    shown.add_column("series", overflow="fold", max_width=24)
    for name in ("nights", "last p50", "baseline", "delta"):
        shown.add_column(name, justify="right")
    shown.add_column("trend", no_wrap=True)
    shown.add_column("verdict", overflow="fold", max_width=10)
    for label, (_, r) in zip(_series_labels(table, parts), table.iterrows()):
        delta = _cell(r["delta_p50_pct"], "+.1f")
        shown.add_row(label, str(r["nights"]), _cell(r["latest_p50_ms"], ".1f"),
                      _cell(r["baseline_p50_ms"], ".1f"), f"{delta}%" if delta else "",
                      str(r["trend"] or "")[-trend_chars:], str(r["verdict"] or ""))
    return shown


def run_summary(df):
    """The end of `edgebench run`: format, precision, runtime, status, p50, speed-up, % of peak, parity per row
    (80 columns: the GMAC/s behind the share are in results.csv and the report)."""
    shown = Table(box=box.SIMPLE_HEAD, padding=0, show_edge=False)
    for name, justify in [("format", "left"), ("precision", "left"), ("runtime", "left"), ("status", "left"),
                          ("p50 ms", "right"), ("speed-up", "right"), ("% peak", "right"), ("parity", "left")]:
        # 80 columns: a hub device's long runtime label folds, a status is never cut
        shown.add_column(name, justify=justify, no_wrap=name == "status", overflow="fold")
    for _, r in df.iterrows():
        runtime = str(r["runtime"] or "") + shown_device(r["device"])
        speedup = _cell(r["speedup_vs_eager"], ".2f")
        shown.add_row(str(r["format"]), str(r["precision"]), runtime, status_cell(str(r["status"])),
                      _cell(r["p50_ms"], ".1f"), f"{speedup}x" if speedup else "", peak_cell(r["pct_of_peak"]),
                      str(r["parity"] or ""))
    return shown


def peak_cell(pct) -> str:
    """`% of peak` in rich markup, coloured by its band: an 80 % row and a 30 % row differ at a glance."""
    text = _cell(pct, ".0f")
    if not text:
        return ""
    style = _BAND_STYLES[band(float(pct))]
    return f"[{style}]{text} %[/{style}]"


def band(pct: float | None) -> str:
    """`high`, `mid` or `low` for a % of peak ("" without one): the console and the HTML colour rows by it."""
    if pct is None or pct != pct:
        return ""
    return next(name for floor, name in BANDS if pct >= floor)
