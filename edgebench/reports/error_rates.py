"""How often the regression finder is wrong: simulated nights resampled from real paired sessions.

A session (`benchmarks.paired.Rounds`) holds the per-round samples of every row timed interleaved with
eager, on the real artifacts of this host, including rows of a runtime slowed on purpose by 5, 10 or
20 % (`runtimes.slowed`, named `<runtime>-slow<pct>`). A simulated night picks one session at random
and draws its rounds with replacement (rounds stay whole: a row keeps its pairing with that round's
eager), then makes the row the nightly would: p50, ratio to eager with its interval, stability. A
history of such nights and one more night are judged by the finder's rule:

- A/A: tonight drawn like the history (same artifacts, unchanged): every regression is a false alarm;
- A/B: tonight's row of a series is its slowed variant's: every regression is a detection.

The verdict is the finder's own rule (`regressions.ratio_verdict` on the last stable nights, as
`regressions.evaluate` picks them); a test checks it against `evaluate` on the same nights.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd

from edgebench.benchmarks.paired import Rounds
from edgebench.benchmarks.stats import block_stability, median_interval
from edgebench.config import DEFAULT_MIN_STABILITY, HistoryConfig
from edgebench.records import PASSED
from edgebench.reports.regressions import RatioVerdict, busy, ratio_verdict

SLOWED = re.compile(r"^(?P<label>.+)-slow(?P<pct>\d+)$")  # "onnx fp32 onnxruntime-slow10" -> the series, 10 %
START = datetime(2027, 1, 1, 2, 0, tzinfo=timezone.utc)


@dataclass
class Rates:
    """Counts of one setting: false alarms over A/A series-nights, detections over A/B series-nights per slowdown."""

    false_alarms: int
    aa_trials: int
    detected: dict[int, int]  # slowdown in % -> nights flagged
    ab_trials: dict[int, int]
    aa_judged: int = 0  # A/A series-nights that got a verdict (enough stable, quiet baseline nights; tonight quiet)
    ab_judged: dict[int, int] = field(default_factory=dict)  # A/B series-nights that got a verdict, per slowdown

    @property
    def false_alarm_rate(self) -> float:
        return self.false_alarms / self.aa_trials if self.aa_trials else float("nan")

    def detection_rate(self, pct: int) -> float:
        return self.detected[pct] / self.ab_trials[pct] if self.ab_trials.get(pct) else float("nan")

    def judged_detection_rate(self, pct: int) -> float:
        """Detections among the A/B nights that got a verdict (a busy or unstable night gets none)."""
        return self.detected[pct] / self.ab_judged[pct] if self.ab_judged.get(pct) else float("nan")


def slowed_of(labels: list[str]) -> dict[str, tuple[str, int]]:
    """{slowed row label: (the plain series' label, slowdown %)} among a session's labels."""
    out = {}
    for label in labels:
        if m := SLOWED.match(label):
            if m["label"] in labels:
                out[label] = (m["label"], int(m["pct"]))
    return out


def night_stats(rounds: Rounds, column: int, draw: np.ndarray, min_stability: float) -> dict:
    """What a night's row would say for one column of a session, from the rounds in `draw`: its p50 and IQR,
    ratio to eager with the interval, stability and whether that makes it stable."""
    ms = rounds.ms[draw, column]
    eager = rounds.ms[draw, rounds.eager]
    ok = np.isfinite(ms) & np.isfinite(eager)
    ms, ratios = ms[ok], ms[ok] / eager[ok]
    q25, p50, q75 = np.percentile(ms, [25, 50, 75])
    ratio, low, high = median_interval(ratios)
    stability = block_stability(ratios)
    return {"p50_ms": p50, "iqr_ms": q75 - q25, "ratio_vs_eager": ratio, "ratio_low": low, "ratio_high": high,
            "stability": stability, "stable": stability >= min_stability, "foreign_cpu": rounds.meta.get("foreign_cpu")}


def night_row(stats: dict, series_label: str, night: int) -> dict:
    """A results row (reports.rows columns) of night `night` with these statistics, for the real finder."""
    fmt, precision, runtime = series_label.split(" ")
    return {"run_id": f"sim-{night:04d}", "started_at": (START + timedelta(days=night)).isoformat(), "model": "m",
            "format": fmt, "precision": precision, "runtime": runtime, "device": "local", "status": PASSED,
            "host_key": "sim", **stats}


def timed_labels(sessions: list[Rounds]) -> list[str]:
    """The rows (not eager) every session timed against eager in at least half its rounds (skipped rows have none)."""
    first = sessions[0]
    return [label for label in first.labels if label != first.labels[first.eager]
            and all(label in s.labels and s.ratios(s.labels.index(label)).size * 2 >= len(s.ms) for s in sessions)]


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
    """Error rates of each finder setting over `trials` simulated (history + tonight) sets; the same draws for all.

    Each trial draws twice the longest baseline's nights of history (so unstable nights can be passed
    over, as the finder does in a long history), one unchanged night and one night per slowdown; each
    setting then judges tonight's ratio of every series with the finder's own rule (`ratio_verdict` on
    the last stable nights).
    """
    rng = np.random.default_rng(seed)
    timed = timed_labels(sessions)
    series = [label for label in timed if not SLOWED.match(label)]
    slowed = {k: v for k, v in slowed_of(timed).items() if v[0] in series}
    levels = sorted({pct for _, pct in slowed.values()})
    history_nights = 2 * max(c.baseline_nights for c in configs)
    rates = [Rates(0, 0, dict.fromkeys(levels, 0), dict.fromkeys(levels, 0), 0, dict.fromkeys(levels, 0))
             for _ in configs]
    for _ in range(trials):
        history = [draw_night(sessions, {label: label for label in series}, rng, min_stability)
                   for _ in range(history_nights)]  # fmt: skip
        tonight = {0: draw_night(sessions, {label: label for label in series}, rng, min_stability)}
        for pct in levels:
            tonight[pct] = draw_night(sessions, {label: p for label, (p, q) in slowed.items() if q == pct}, rng,
                                      min_stability)  # fmt: skip
        for r, cfg in zip(rates, configs):
            for pct, night in tonight.items():
                verdicts = {label: verdict_of(cfg, night[label], [h[label] for h in history]) for label in night}
                flagged = sum(v is not None and v.slower(night[label]["ratio_vs_eager"]) for label, v in verdicts.items())
                judged = sum(v is not None and v.threshold is not None for v in verdicts.values())
                if pct == 0:
                    r.false_alarms += flagged
                    r.aa_trials += len(night)
                    r.aa_judged += judged
                else:
                    r.detected[pct] += flagged
                    r.ab_trials[pct] += len(night)
                    r.ab_judged[pct] += judged
    return rates


def draw_night(sessions: list[Rounds], labels: dict[str, str], rng: np.random.Generator,
               min_stability: float) -> dict[str, dict]:  # fmt: skip
    """One night: a session at random, its rounds drawn with replacement; {series label: night_stats of the
    column `labels` maps to it}."""
    s = sessions[rng.integers(len(sessions))]
    draw = rng.integers(0, len(s.ms), size=len(s.ms))
    return {dst: night_stats(s, s.labels.index(src), draw, min_stability) for src, dst in labels.items()}


def verdict_of(cfg: HistoryConfig, tonight: dict, history: list[dict]) -> RatioVerdict | None:
    """The finder's verdict on tonight's ratio against the last `baseline_nights` stable nights of `history`
    that other processes left alone; None when tonight's own timing was busy or no night qualifies."""
    if busy([tonight["foreign_cpu"]], cfg)[0]:
        return None
    nights = [h for h in history if h["stable"] and not busy([h["foreign_cpu"]], cfg)[0]][-cfg.baseline_nights:]
    if not nights:
        return None
    past = {c: np.array([h[c] for h in nights]) for c in ("ratio_vs_eager", "ratio_low", "ratio_high")}
    return ratio_verdict(tonight["ratio_vs_eager"], tonight["ratio_low"], tonight["ratio_high"],
                         past["ratio_vs_eager"], past["ratio_low"], past["ratio_high"], cfg)  # fmt: skip


def flagged_by(cfg: HistoryConfig, tonight: dict, history: list[dict]) -> bool:
    """Whether the finder calls tonight's ratio a regression."""
    verdict = verdict_of(cfg, tonight, history)
    return verdict is not None and verdict.slower(tonight["ratio_vs_eager"])


def history_config(regression_pct: float, noise_k: float, base: HistoryConfig | None = None) -> HistoryConfig:
    """`base` (the configured history settings) with another threshold and noise factor."""
    return (base or HistoryConfig()).model_copy(update={"regression_pct": regression_pct, "noise_k": noise_k})


def rates_table(rates: list[Rates], configs: list[HistoryConfig]) -> pd.DataFrame:
    """One row per setting: threshold, k, false-alarm rate and the detection rate of each slowdown (fractions)."""
    records = []
    for r, cfg in zip(rates, configs):
        records.append({"regression_pct": cfg.regression_pct, "noise_k": cfg.noise_k,
                        "false_alarm_rate": r.false_alarm_rate, "aa_series_nights": r.aa_trials,
                        "judged": r.aa_judged / r.aa_trials if r.aa_trials else float("nan"),
                        **{f"detect_{pct}pct": r.detection_rate(pct) for pct in sorted(r.detected)},
                        **{f"detect_{pct}pct_judged": r.judged_detection_rate(pct) for pct in sorted(r.detected)}})
    return pd.DataFrame(records)
