"""How often the regression finder is wrong: simulated nights resampled from real paired sessions.

A session (`benchmarks.paired.Rounds`) holds the per-round samples of every row timed interleaved with
eager, on the real artifacts of this host, including rows of a runtime slowed on purpose by 5, 10 or
20 % (`runtimes.slowed`, named `<runtime>-slow<pct>`). A simulated night picks one session at random
and draws its rounds with replacement (rounds stay whole: a row keeps its pairing with that round's
eager), then makes the row the nightly would: p50, ratio to eager with its interval, stability. A
history of `baseline_nights` such nights and one more night go through the real finder
(`reports.regressions.evaluate`):

- A/A: tonight drawn like the history (same artifacts, unchanged): every regression is a false alarm;
- A/B: tonight's row of a series is its slowed variant's: every regression is a detection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from edgebench.benchmarks.paired import Rounds
from edgebench.benchmarks.stats import median_interval, stability_score
from edgebench.config import DEFAULT_MIN_STABILITY, HistoryConfig
from edgebench.records import PASSED
from edgebench.reports.regressions import REGRESSION, evaluate
from edgebench.reports.rows import frame

SLOWED = re.compile(r"^(?P<label>.+)-slow(?P<pct>\d+)$")  # "onnx fp32 onnxruntime-slow10" -> the series, 10 %
START = datetime(2027, 1, 1, 2, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Rates:
    """Counts of one setting: false alarms over A/A series-nights, detections over A/B series-nights per slowdown."""

    false_alarms: int
    aa_trials: int
    detected: dict[int, int]  # slowdown in % -> nights flagged
    ab_trials: dict[int, int]

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.aa_trials if self.aa_trials else float("nan")

    def detection_rate(self, pct: int) -> float:
        return self.detected[pct] / self.ab_trials[pct] if self.ab_trials.get(pct) else float("nan")


def slowed_of(labels: list[str]) -> dict[str, tuple[str, int]]:
    """{slowed row label: (the plain series' label, slowdown %)} among a session's labels."""
    out = {}
    for label in labels:
        if m := SLOWED.match(label):
            if m["label"] in labels:
                out[label] = (m["label"], int(m["pct"]))
    return out


def night_row(rounds: Rounds, column: int, draw: np.ndarray, series_label: str, night: int,
              min_stability: float) -> dict:  # fmt: skip
    """The row a night would have for one column of a session, from the rounds in `draw`."""
    ms = rounds.ms[draw, column]
    eager = rounds.ms[draw, rounds.eager]
    ok = np.isfinite(ms) & np.isfinite(eager)
    ms, ratios = ms[ok], ms[ok] / eager[ok]
    fmt, precision, runtime = series_label.split(" ")
    q25, p50, q75 = np.percentile(ms, [25, 50, 75])
    ratio, low, high = median_interval(ratios)
    stability = stability_score(ms)
    t = START + timedelta(days=night)
    return {"run_id": f"sim-{night:04d}", "started_at": t.isoformat(), "model": "m", "format": fmt,
            "precision": precision, "runtime": runtime, "device": "local", "status": PASSED, "p50_ms": p50,
            "iqr_ms": q75 - q25, "ratio_vs_eager": ratio, "ratio_low": low, "ratio_high": high,
            "stability": stability, "stable": stability >= min_stability, "host_key": "sim"}


def measured_slowdowns(sessions: list[Rounds]) -> dict[str, float]:
    """{slowed label: median over sessions of (its median ratio / its plain series' median ratio) - 1}."""
    found: dict[str, list[float]] = {}
    for s in sessions:
        for label, (plain, _) in slowed_of(s.labels).items():
            slowed, base = np.median(s.ratios(s.labels.index(label))), np.median(s.ratios(s.labels.index(plain)))
            found.setdefault(label, []).append(slowed / base - 1)
    return {label: float(np.median(v)) for label, v in found.items()}


def simulate(sessions: list[Rounds], configs: list[HistoryConfig], trials: int, seed: int = 0,
             min_stability: float = DEFAULT_MIN_STABILITY) -> list[Rates]:  # fmt: skip
    """Error rates of each finder setting over `trials` simulated (history + tonight) sets; the same draws for all."""
    rng = np.random.default_rng(seed)
    series = [label for label in sessions[0].labels if label != sessions[0].labels[sessions[0].eager]
              and not SLOWED.match(label)]  # fmt: skip
    slowed = slowed_of(sessions[0].labels)
    levels = sorted({pct for _, pct in slowed.values()})
    nights = max(c.baseline_nights for c in configs)
    counts = [[0, 0, dict.fromkeys(levels, 0), dict.fromkeys(levels, 0)] for _ in configs]

    def night(n: int, labels: dict[str, str]) -> list[dict]:
        s = sessions[rng.integers(len(sessions))]
        draw = rng.integers(0, len(s.ms), size=len(s.ms))
        return [night_row(s, s.labels.index(src), draw, dst, n, min_stability) for src, dst in labels.items()]

    plain = {label: label for label in series}
    for _ in range(trials):
        history = frame([row for n in range(nights) for row in night(n, plain)])
        tonight = {0: frame(night(nights, plain))}
        for pct in levels:
            tonight[pct] = frame(night(nights, {label: p for label, (p, q) in slowed.items() if q == pct}))
        for c, cfg in enumerate(configs):
            h = history[history["started_at"] >= (START + timedelta(days=nights - cfg.baseline_nights)).isoformat()]
            for pct, rows in tonight.items():
                flagged = sum(f.kind == REGRESSION for f in evaluate(rows, h, cfg)[1])
                if pct == 0:
                    counts[c][0] += flagged
                    counts[c][1] += len(rows)
                else:
                    counts[c][2][pct] += flagged
                    counts[c][3][pct] += len(rows)
    return [Rates(fa, n, det, ab) for fa, n, det, ab in counts]


def history_config(regression_pct: float, noise_k: float, base: HistoryConfig | None = None) -> HistoryConfig:
    """`base` (the configured history settings) with another threshold and noise factor."""
    return (base or HistoryConfig()).model_copy(update={"regression_pct": regression_pct, "noise_k": noise_k})


def rates_table(rates: list[Rates], configs: list[HistoryConfig]) -> pd.DataFrame:
    """One row per setting: threshold, k, false-alarm rate and the detection rate of each slowdown (fractions)."""
    records = []
    for r, cfg in zip(rates, configs):
        records.append({"regression_pct": cfg.regression_pct, "noise_k": cfg.noise_k,
                        "false_alarm_rate": r.false_alarm_rate, "aa_series_nights": r.aa_trials,
                        **{f"detect_{pct}pct": r.detection_rate(pct) for pct in sorted(r.detected)}})
    return pd.DataFrame(records)
