"""Compare tonight's rows with past nights: latency regressions, parity drift, status changes."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from edgebench.catalogue import shown_device
from edgebench.config import HistoryConfig
from edgebench.records import EXPORT_FAILED, OUT_OF_MEMORY, PASSED, RUNTIME_FAILED, SKIPPED
from edgebench.reports.rows import FAILED_STATUSES, SERIES, coerce

# Finding kinds, and how loud each is.
REGRESSION, SPEEDUP, PARITY_DRIFT, BROKE, FIXED = "regression", "speedup", "parity_drift", "broke", "fixed"
ACCURACY_DRIFT = "accuracy_drift"
NEW_HOST = "new_host"  # the host's CPU, ISA flags or threads changed: ratios start a new baseline
HOST_BUSY = "host_busy"  # other processes took a share of the CPU while timing: ratios not judged
ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}
_NO_LATENCY = (EXPORT_FAILED, OUT_OF_MEMORY, RUNTIME_FAILED)  # no trustworthy p50 to judge


@dataclass(frozen=True)
class Finding:
    """One thing that changed since the previous nights, for one series."""

    kind: str  # regression | speedup | parity_drift | broke | fixed
    series: tuple[str, str, str, str, str]  # (model, format, precision, runtime, device)
    message: str
    severity: str  # error | warning | info
    value: float | None = None  # tonight's figure (p50 ms, max abs err, ...)
    baseline: float | None = None

    @property
    def label(self) -> str:
        return series_label(self.series)

    def to_dict(self) -> dict:
        return {**asdict(self), "series": list(self.series), "label": self.label}

    @classmethod
    def from_dict(cls, d: dict) -> "Finding":
        return cls(d["kind"], tuple(d["series"]), d["message"], d["severity"], d.get("value"), d.get("baseline"))


def series_label(series) -> str:
    """model / format precision / runtime [@ device]; a finding about every row of a model: model [@ device]."""
    model, fmt, precision, runtime, device = series[:5]  # then the runtime options (the variant name says them)
    where = shown_device(device)
    if not fmt:
        return f"{model}{where}"
    return f"{model} / {fmt} {precision} / {runtime or '(no runtime)'}{where}"


def evaluate(tonight: pd.DataFrame, history: pd.DataFrame | None, cfg: HistoryConfig | None = None
             ) -> tuple[pd.DataFrame, list[Finding]]:  # fmt: skip
    """Fill baseline_p50_ms, delta_p50_pct and regression on `tonight`; list what changed, worst first."""
    cfg = cfg or HistoryConfig()
    df = coerce(tonight)
    past = _prepare(history)
    findings: list[Finding] = []
    groups = {k: g for k, g in past.groupby(SERIES, sort=False)} if len(past) else {}
    for i in df.index:
        row = df.loc[i]
        key = tuple(row[c] for c in SERIES)
        if row["runtime"] == "":  # no runtime list: compare against every series of this artifact
            for k, g in groups.items():
                if k[:3] == key[:3] and k[3]:
                    findings += _status_change(row, k, _before(g, row))
            continue
        h = _before(groups.get(key), row)
        if h is None or h.empty:
            continue
        findings += _latency(df, i, row, key, h[(h["status"] == PASSED) & h["p50_ms"].notna()], cfg)
        findings += _parity_drift(row, key, h[h["status"] == PASSED].tail(cfg.baseline_nights), cfg)
        findings += _accuracy_drift(row, key, h[h["status"] == PASSED].tail(cfg.baseline_nights), cfg)
        findings += _status_change(row, key, h)
    findings += _host_changes(df, past) + _busy_hosts(df, cfg)
    findings.sort(key=lambda f: (SEVERITY_ORDER.get(f.severity, 9), f.kind, f.series))
    return df, findings


def noise_of(history_p50: np.ndarray, baseline: float, tonight_iqr: float | None, tonight_p50: float,
             cfg: HistoryConfig) -> float:  # fmt: skip
    """Relative noise of an absolute p50: max(scaled MAD of past p50 / baseline, tonight's IQR / p50)."""
    mad = float(np.median(np.abs(history_p50 - np.median(history_p50)))) * cfg.mad_scale
    hist = mad / baseline if baseline > 0 else 0.0
    run = tonight_iqr / tonight_p50 if tonight_iqr is not None and tonight_iqr == tonight_iqr and tonight_p50 > 0 else 0.0
    return max(hist, run)


def ratio_noise(past: np.ndarray, past_se: np.ndarray, baseline: float, tonight_se: float, cfg: HistoryConfig) -> float:
    """Relative noise of (tonight's ratio - the baseline median) for a paired series.

    A night's ratio scatters by sigma = the largest of: the scaled MAD of the baseline nights' ratios
    (night to night, drift between sessions included), tonight's standard error and the baseline nights'
    median standard error (each from its 95 % interval: half-width / 1.96; a floor when few nights make
    the MAD small by chance). The baseline is a median of n nights, so the difference scatters by
    sigma x sqrt(1 + pi / 2n).
    """
    mad = float(np.median(np.abs(past - baseline))) * cfg.mad_scale / baseline
    sigma = max(mad, tonight_se, float(np.median(past_se)) if past_se.size else 0.0)
    return sigma * float(np.sqrt(1 + np.pi / (2 * past.size)))


def threshold_of(noise: float, cfg: HistoryConfig) -> float:
    """Relative slowdown allowed before a regression: max(pct threshold, k x noise)."""
    return max(cfg.regression_pct / 100.0, cfg.noise_k * noise)


def relative_se(ratio: float, low: float, high: float) -> float:
    """A ratio's relative standard error from its 95 % interval (0 without one)."""
    if not (ratio > 0) or pd.isna(low) or pd.isna(high):
        return 0.0
    return (high - low) / (2 * 1.96) / ratio


def _prepare(history: pd.DataFrame | None) -> pd.DataFrame:
    if history is None or len(history) == 0:
        return coerce(pd.DataFrame()).assign(_t=pd.Series(dtype="datetime64[ns, UTC]"))
    h = coerce(history)
    h["_t"] = pd.to_datetime(h["started_at"], utc=True, errors="coerce", format="ISO8601")
    return h.sort_values(["_t", "run_id"], kind="stable")


def _before(h: pd.DataFrame | None, row) -> pd.DataFrame | None:
    """The series' nights strictly before this row's run (so rebuilding an old report sees its own past)."""
    if h is None:
        return None
    t = pd.to_datetime(row["started_at"], utc=True, errors="coerce", format="ISO8601")
    h = h[h["run_id"] != row["run_id"]]
    return h[h["_t"] < t] if pd.notna(t) else h


def _latency(df, i, row, key, passed: pd.DataFrame, cfg: HistoryConfig) -> list[Finding]:
    """A paired row is judged on its ratio to eager; any other row (a hub device) on its absolute p50."""
    p50 = row["p50_ms"]
    good = passed.tail(cfg.baseline_nights)
    if good.empty or pd.isna(p50) or row["status"] in _NO_LATENCY:
        return []
    past = good["p50_ms"].to_numpy(dtype=float)
    baseline = float(np.median(past))
    df.at[i, "baseline_p50_ms"] = baseline  # context for every row, a verdict only for unpaired ones
    df.at[i, "delta_p50_pct"] = (p50 / baseline - 1.0) * 100.0 if baseline > 0 else np.nan
    if pd.notna(row["ratio_vs_eager"]):
        return _ratio(df, i, row, key, passed, cfg, f"p50 {p50:,.1f} ms vs {baseline:,.1f} ms")
    if len(past) < cfg.min_baseline_nights or baseline <= 0:
        return []  # too few good nights to know this series' noise: no verdict yet
    iqr = row["iqr_ms"] if pd.notna(row["iqr_ms"]) else None
    noise = noise_of(past, baseline, iqr, p50, cfg)
    thr = threshold_of(noise, cfg)
    slower = p50 > baseline * (1.0 + thr)
    df.at[i, "regression"] = bool(slower)
    detail = (f"p50 {p50:,.1f} ms vs baseline {baseline:,.1f} ms ({(p50 / baseline - 1) * 100:+.1f} %; "
              f"threshold {thr * 100:.1f} %, noise {noise * 100:.1f} %, {len(past)} good nights)")  # fmt: skip
    if slower:
        return [Finding(REGRESSION, key, "slower: " + detail, ERROR, p50, baseline)]
    if p50 < baseline * (1.0 - thr):
        return [Finding(SPEEDUP, key, "faster: " + detail, INFO, p50, baseline)]
    return []


def ratio_baseline(passed: pd.DataFrame, host_key: str, cfg: HistoryConfig) -> pd.DataFrame:
    """The nights a paired ratio is compared with: passed, stable, timed on a host of the same key that other
    processes left alone; the last `baseline_nights`."""
    ok = (passed["ratio_vs_eager"].notna() & (passed["host_key"] == host_key) & passed["stable"].fillna(True)
          & ~busy(passed["foreign_cpu"], cfg))  # fmt: skip
    return passed[ok.astype(bool)].tail(cfg.baseline_nights)


def busy(foreign_cpu, cfg: HistoryConfig):
    """Whether other processes took more of the CPU than max_foreign_cpu while timing (unknown: not busy)."""
    return pd.Series(foreign_cpu, dtype=float).fillna(0.0).to_numpy() > cfg.max_foreign_cpu


@dataclass(frozen=True)
class RatioVerdict:
    """Tonight's ratio against its baseline nights: the baseline, the noise and the threshold they give."""

    baseline: float
    nights: int
    noise: float | None  # None: fewer than min_baseline_nights, no verdict
    threshold: float | None

    def slower(self, ratio: float) -> bool:
        return self.threshold is not None and ratio > self.baseline * (1.0 + self.threshold)

    def faster(self, ratio: float) -> bool:
        return self.threshold is not None and ratio < self.baseline * (1.0 - self.threshold)


def ratio_verdict(ratio: float, low: float, high: float, past: np.ndarray, past_low: np.ndarray,
                  past_high: np.ndarray, cfg: HistoryConfig) -> RatioVerdict:  # fmt: skip
    """The rule for a paired row (the finder's, and the error-rate simulation's): the baseline nights' median ratio,
    and, with at least min_baseline_nights of them, the threshold max(regression_pct, noise_k x noise)."""
    baseline = float(np.median(past))
    if len(past) < cfg.min_baseline_nights or baseline <= 0:
        return RatioVerdict(baseline, len(past), None, None)
    past_se = np.array([relative_se(r, lo, hi) for r, lo, hi in zip(past, past_low, past_high)])
    noise = ratio_noise(past, past_se, baseline, relative_se(ratio, low, high), cfg)
    return RatioVerdict(baseline, len(past), noise, threshold_of(noise, cfg))


def _ratio(df, i, row, key, passed: pd.DataFrame, cfg: HistoryConfig, context: str) -> list[Finding]:
    """Tonight's ratio to eager against the baseline nights' median: worse by more than the threshold and the noise."""
    nights = ratio_baseline(passed, row["host_key"], cfg)
    if nights.empty:
        return []
    ratio = float(row["ratio_vs_eager"])
    if busy([row["foreign_cpu"]], cfg)[0]:  # said once per model and device (_busy_hosts); no verdict
        df.at[i, "baseline_ratio"] = float(np.median(nights["ratio_vs_eager"]))
        df.at[i, "delta_ratio_pct"] = (ratio / df.at[i, "baseline_ratio"] - 1.0) * 100.0
        return []
    v = ratio_verdict(ratio, row["ratio_low"], row["ratio_high"], *(nights[c].to_numpy(dtype=float) for c in
                      ("ratio_vs_eager", "ratio_low", "ratio_high")), cfg)  # fmt: skip
    df.at[i, "baseline_ratio"] = v.baseline
    df.at[i, "delta_ratio_pct"] = (ratio / v.baseline - 1.0) * 100.0
    if v.threshold is None:
        return []
    df.at[i, "regression"] = v.slower(ratio)
    detail = (f"{ratio:.3f}x eager vs baseline {v.baseline:.3f}x ({(ratio / v.baseline - 1) * 100:+.1f} %; threshold "
              f"{v.threshold * 100:.1f} %, noise {v.noise * 100:.1f} %, {v.nights} good nights); {context}")  # fmt: skip
    if v.slower(ratio):
        return [Finding(REGRESSION, key, "slower against eager: " + detail, ERROR, ratio, v.baseline)]
    if v.faster(ratio):
        return [Finding(SPEEDUP, key, "faster against eager: " + detail, INFO, ratio, v.baseline)]
    return []


def _busy_hosts(df: pd.DataFrame, cfg: HistoryConfig) -> list[Finding]:
    """One finding per model and device whose paired timing shared the CPU beyond max_foreign_cpu."""
    out = []
    timed = df[df["ratio_vs_eager"].notna()]
    for (model, device), rows in timed[busy(timed["foreign_cpu"], cfg)].groupby(["model", "device"], sort=False):
        share = float(rows["foreign_cpu"].max())
        out.append(Finding(HOST_BUSY, (model, "", "", "", device, ""),
                           f"other processes took {share:.0%} of the host's CPU while its rows were timed (more than "
                           f"{cfg.max_foreign_cpu:.0%}): tonight's ratios are not judged and are no baseline", WARNING))
    return out


def _host_changes(df: pd.DataFrame, past: pd.DataFrame) -> list[Finding]:
    """One finding per model and device whose host key differs from its previous night's: a new baseline, no alarm."""
    out = []
    for (model, device), rows in df[df["host_key"] != ""].groupby(["model", "device"], sort=False):
        run = rows.iloc[0]
        before = _before(past[(past["model"] == model) & (past["device"] == device) & (past["host_key"] != "")], run)
        if before is None or before.empty:
            continue
        last = before.iloc[-1]
        if last["host_key"] != run["host_key"]:
            out.append(Finding(NEW_HOST, (model, "", "", "", device, ""),
                               f"host changed since {last['run_id']} (CPU, ISA flags or threads; key {last['host_key']} "
                               f"-> {run['host_key']}): ratios to eager start a new baseline", INFO))
    return out


def _parity_drift(row, key, good: pd.DataFrame, cfg: HistoryConfig) -> list[Finding]:
    out = []
    err, past_err = row["max_abs_err"], good["max_abs_err"].dropna()
    if pd.notna(err) and len(past_err):
        base = float(np.median(past_err))
        if err >= cfg.parity_drift_factor * max(base, cfg.parity_drift_floor):
            out.append(Finding(PARITY_DRIFT, key, f"max abs err {err:.3g} vs baseline {base:.3g} "
                               f"(x{err / max(base, 1e-300):.3g}, flagged at x{cfg.parity_drift_factor:g})",
                               WARNING, float(err), base))  # fmt: skip
    top1, past_top1 = row["top1_agree"], good["top1_agree"].dropna()
    if pd.notna(top1) and len(past_top1):
        base = float(np.median(past_top1))
        if top1 < base - 1e-9:
            out.append(Finding(PARITY_DRIFT, key, f"top-1 agreement {top1:.1%} vs baseline {base:.1%}",
                               WARNING, float(top1), base))  # fmt: skip
    return out


def _accuracy_drift(row, key, good: pd.DataFrame, cfg: HistoryConfig) -> list[Finding]:
    """Top-1 below the good nights' median by more than accuracy_drift_points: as loud as a latency regression."""
    top1 = row["top1"] if "top1" in row.index else np.nan
    past = good["top1"].dropna() if "top1" in good else pd.Series(dtype=float)
    if pd.isna(top1) or not len(past):
        return []
    base = float(np.median(past))
    if top1 < base - cfg.accuracy_drift_points:
        return [Finding(ACCURACY_DRIFT, key, f"top-1 {top1:.1f} % vs baseline {base:.1f} % ({top1 - base:+.1f} points; "
                        f"flagged past -{cfg.accuracy_drift_points:g}, {len(past)} good nights)", ERROR, float(top1), base)]
    return []


def _status_change(row, key, h: pd.DataFrame | None) -> list[Finding]:
    if h is None or h.empty:
        return []
    before, now = h["status"].iloc[-1], row["status"]
    reason = f": {row['reason']}" if row["reason"] else ""
    if before == PASSED and now in FAILED_STATUSES:
        return [Finding(BROKE, key, f"{before} -> {now}{reason}", ERROR)]
    if before == PASSED and now == SKIPPED:
        return [Finding(BROKE, key, f"{before} -> {now}{reason}", WARNING)]
    if before in FAILED_STATUSES and now == PASSED:
        return [Finding(FIXED, key, f"{before} -> {now} (good news)", INFO)]
    return []
