"""How often does the nightly's regression finder cry wolf, and how often does it catch a real slowdown?

    .venv/bin/python benchmarks/regression_error_rates.py RUN_DIR [--sessions 6] [--rounds 30]
        [--slowed onnxruntime] [--trials 300] [--save-dir DIR | --from DIR]

1. Measure: `--sessions` paired sessions (edgebench.benchmarks.paired, the nightly's own timing) on the
   artifacts of a finished run, each with the local device's rows plus, for every row of a `--slowed`
   runtime, variants slowed by 5, 10 and 20 % (runtimes.slowed: each call sleeps that fraction of its
   own time), `--rounds` rounds each. The sessions are saved (`--save-dir`, added to the sessions
   already there: run it several times, hours apart, as nights are) and can be simulated again
   without measuring (`--from`).
2. Simulate (edgebench.reports.error_rates): `--trials` histories of `baseline_nights` nights plus one
   night, each night a resample of one real session's rounds, through the real finder with the
   thresholds of configs/pipeline.yaml (`history:`) and a grid around them. A/A: tonight unchanged, a
   regression is a false alarm; A/B: tonight's row is its slowed variant's, a regression is a detection.

Prints the false-alarm rate per series per night and the detection rate of each slowdown, against the
targets of issue #26 (A/A <= 1 %, a 10 % slowdown caught >= 95 %).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from edgebench.benchmarks.paired import PairedRow, Rounds, time_rows
from edgebench.config import BudgetConfig, load_pipeline_config
from edgebench.devices.local import rows_of_run
from edgebench.reports.error_rates import history_config, measured_slowdowns, rates_table, simulate
from edgebench.host import cpu_isa, cpu_model
from edgebench.runtimes.slowed import SlowedRuntime

SLOWDOWNS = (5, 10, 20)
TARGET_FALSE_ALARMS, TARGET_DETECTION = 0.01, 0.95
GRID = [(pct, k) for pct in (3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0) for k in (2.0, 3.0, 4.0)]


def slowed_rows(rows: list[PairedRow], runtimes: list[str], log_dir: Path) -> list[PairedRow]:
    """For every row of these runtimes, one variant per slowdown, named `<runtime>-slow<pct>`."""
    out = []
    for row in rows:
        if row.name in runtimes:
            for pct in SLOWDOWNS:
                name = f"{row.name}-slow{pct}"
                out.append(PairedRow(row.artifact, name, SlowedRuntime(row.runtime, pct / 100),
                                     log_dir / f"{row.artifact.format}-{row.artifact.precision}-{name}.log"))
    return out


def measure(run_dir: Path, opts, config, save_dir: Path) -> list[Rounds]:
    """`opts.sessions` paired sessions of the run's rows and their slowed variants, each saved as it ends."""
    budget = BudgetConfig(warmup_runs=1, min_runs=opts.rounds, min_seconds=0, max_seconds=1e9, timeout_s=900)
    sessions = []
    with tempfile.TemporaryDirectory(prefix="error-rates-") as logs:
        ref, inputs, rows = rows_of_run(run_dir, config, Path(logs))
        rows += slowed_rows(rows, opts.slowed, Path(logs))
        for k in range(opts.sessions):
            start = time.perf_counter()
            _, rounds = time_rows(rows, ref, inputs, budget, opts.threads, None, config.benchmark.noisy_iqr_ratio)
            rounds.meta["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            rounds.save(save_dir / f"session-{len(list(save_dir.glob('session-*.json'))):02d}.json")  # adds to earlier ones
            sessions.append(rounds)
            print(f"session {k + 1}/{opts.sessions}: {len(rounds.ms)} rounds of {len(rows)} rows in "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
    return sessions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, nargs="?", help="a run folder whose artifacts are timed")
    parser.add_argument("--sessions", type=int, default=6)
    parser.add_argument("--rounds", type=int, help="rounds per session (default: the full budget's min_runs)")
    parser.add_argument("--slowed", default="onnxruntime", help="comma-separated runtimes whose rows get slowed variants")
    parser.add_argument("--trials", type=int, default=300, help="simulated nights of each kind")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--config", type=Path, help="pipeline YAML (default: configs/pipeline.yaml)")
    parser.add_argument("--save-dir", type=Path, help="keep the measured sessions here (default: a temporary folder)")
    parser.add_argument("--from", dest="saved", type=Path, help="simulate the sessions saved in this folder")
    parser.add_argument("--seed", type=int, default=0)
    opts = parser.parse_args()
    config = load_pipeline_config(opts.config)
    opts.rounds = opts.rounds or config.benchmark.full.min_runs
    opts.slowed = [s.strip() for s in opts.slowed.split(",") if s.strip()]
    if opts.saved:
        sessions = [Rounds.load(p) for p in sorted(opts.saved.glob("session-*.json"))]
    elif opts.run_dir:
        save_dir = opts.save_dir or Path(tempfile.mkdtemp(prefix="error-rate-sessions-"))
        save_dir.mkdir(parents=True, exist_ok=True)
        sessions = measure(opts.run_dir.resolve(), opts, config, save_dir)
        print(f"sessions saved in {save_dir}")
    else:
        parser.error("give a RUN_DIR to measure, or --from a folder of saved sessions")
    if not sessions:
        parser.error(f"no session-*.json in {opts.saved}")

    configured = config.history
    configs = [configured] + [history_config(pct, k, configured) for pct, k in GRID
                              if (pct, k) != (configured.regression_pct, configured.noise_k)]
    start = time.perf_counter()
    rates = simulate(sessions, configs, opts.trials, opts.seed, config.benchmark.min_stability)
    table = rates_table(rates, configs)
    series = [label for label in sessions[0].labels if "-slow" not in label]
    print(f"\n{len(sessions)} sessions of {len(sessions[0].ms)} rounds, {len(series) - 1} series against eager, "
          f"{opts.trials} simulated nights of each kind ({time.perf_counter() - start:.0f} s); host: {cpu_model()}, "
          f"{' '.join(cpu_isa())}, {sessions[0].threads} threads")
    print("injected slowdowns as measured (slowed row / its plain row, median over sessions): " + ", ".join(
        f"{label.split(' ', 2)[2]} {label.split(' ')[1]} {v * 100:+.1f} %" for label, v in measured_slowdowns(sessions).items()))
    print(f"baseline: {configured.baseline_nights} nights (at least {configured.min_baseline_nights} stable), "
          f"stability >= {config.benchmark.min_stability:g}, MAD scale {configured.mad_scale:g}\n")
    print(_markdown(table.iloc[:1]))
    first = rates[0]
    fa, det10 = first.false_alarm_rate, first.detection_rate(10)
    print(f"\nconfigured (regression_pct {configured.regression_pct:g}, noise_k {configured.noise_k:g}): A/A false "
          f"alarms {fa * 100:.2f} % per series per night (target <= {TARGET_FALSE_ALARMS * 100:g} %: "
          f"{'met' if fa <= TARGET_FALSE_ALARMS else 'MISSED'}); 10 % slowdown detected {det10 * 100:.1f} % "
          f"(target >= {TARGET_DETECTION * 100:g} %: {'met' if det10 >= TARGET_DETECTION else 'MISSED'}); "
          f"5 % {first.detection_rate(5) * 100:.1f} %, 20 % {first.detection_rate(20) * 100:.1f} %; among the nights "
          f"that got a verdict ({first.aa_judged / first.aa_trials * 100:.0f} % of A/A series-nights): 10 % slowdown "
          f"detected {first.judged_detection_rate(10) * 100:.1f} %")
    print("\nother settings (same draws):\n")
    print(_markdown(table.iloc[1:].sort_values(["regression_pct", "noise_k"])))
    return 0


def _markdown(table) -> str:
    """The rates as a markdown table, in percent."""
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in table.iterrows():
        cells = [f"{r[c] * 100:.2f} %" if c.startswith(("false", "detect", "judged")) else f"{r[c]:g}" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
