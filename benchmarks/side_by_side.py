"""Time a run's artifacts interleaved with PyTorch eager for a fixed number of rounds, and print the ratios.

    .venv/bin/python benchmarks/side_by_side.py RUN_DIR [--rounds 20] [--threads 2] [--also onnx:int8:OLD.onnx]
        [--save rounds.json]

The pipeline's own paired session (edgebench.benchmarks.paired: one loaded child per row, one inference
per row per round, the order rotated each round), on the artifacts of a finished run, with the rows the
local device would plan from the configured runtimes. Prints each row's median, its ratio to eager
(median over rounds of row / that round's eager) with the 95 % interval and the IQR of the per-round
ratios, and the targets of issues #17 (LiteRT and ONNX Runtime fp32 <= 1.10x eager, TorchScript <= 1.05x),
#10 and #27 (ONNX int8 >= 3x faster than eager, and within 1.3x of the faster of LiteRT int8 and
ExecuTorch int8, per round).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgebench.config import BudgetConfig, load_pipeline_config

TARGETS = {("torchscript", "fp32"): ("<=", 1.05), ("onnxruntime", "fp32"): ("<=", 1.10),
           ("litert", "fp32"): ("<=", 1.10), ("onnxruntime", "int8"): ("<=", 1 / 3)}
INT8_PEERS, INT8_GAP = (("tflite", "litert"), ("executorch", "executorch")), 1.3  # issue #27


def also_rows(specs: list[str], rows: list, log_dir: Path) -> list:
    """`FORMAT:PRECISION:PATH` files timed in the same rounds (e.g. another build of one artifact), on the
    runtime of the run's own row of that format and precision; their rows say PRECISION*."""
    extra = []
    for spec in specs:
        fmt, precision, path = spec.split(":", 2)
        base = next((r for r in rows if (r.artifact.format, r.artifact.precision) == (fmt, precision)), None)
        if base is None or not Path(path).is_file():
            raise SystemExit(f"side_by_side: --also {spec}: no {fmt} {precision} row in the run, or no such file")
        artifact = replace(base.artifact, path=str(Path(path).resolve()), precision=f"{precision}*")
        extra.append(replace(base, artifact=artifact, log_path=log_dir / f"also-{len(extra)}.log"))
    return extra


def print_int8_gap(results: list, rounds) -> None:
    """ONNX Runtime int8 against the faster of LiteRT int8 and ExecuTorch int8, per round (issue #27's 1.3x)."""
    column = {(r.format, r.precision, r.runtime): i for i, r in enumerate(results)}
    onnx = column.get(("onnx", "int8", "onnxruntime"))
    peers = [column[(fmt, "int8", rt)] for fmt, rt in INT8_PEERS if (fmt, "int8", rt) in column]
    if onnx is None or not peers:
        return
    gap = np.nanmedian(rounds.ms[:, onnx] / rounds.ms[:, peers].min(axis=1))
    print(f"onnx int8 / faster of {', '.join(f'{f} int8' for f, _ in INT8_PEERS)}: {gap:.3f}x per round "
          f"(<= {INT8_GAP}: {'met' if gap <= INT8_GAP else 'MISSED'})")


def main() -> int:
    from edgebench.benchmarks.paired import time_rows
    from edgebench.devices.local import rows_of_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (reports/latest, or reports/runs/<id>)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--also", action="append", default=[], metavar="FORMAT:PRECISION:PATH",
                        help="another file of a row's format and precision, timed in the same rounds (its row: PRECISION*)")
    parser.add_argument("--config", type=Path, help="pipeline YAML naming the runtimes (default: configs/pipeline.yaml)")
    parser.add_argument("--save", type=Path, help="write the per-round samples here (JSON)")
    opts = parser.parse_args()
    config = load_pipeline_config(opts.config)
    budget = BudgetConfig(warmup_runs=opts.warmup, min_runs=opts.rounds, min_seconds=0, max_seconds=1e9, timeout_s=900)
    with tempfile.TemporaryDirectory(prefix="side-by-side-") as logs:
        ref, inputs, rows = rows_of_run(opts.run_dir.resolve(), config, Path(logs))
        rows += also_rows(opts.also, rows, Path(logs))
        results, rounds = time_rows(rows, ref, inputs, budget, opts.threads, None, config.benchmark.noisy_iqr_ratio)
    if opts.save:
        rounds.save(opts.save)
    print(f"{ref.name}, {len(rounds.ms)} interleaved rounds, {opts.threads} threads, {ref.inputs[0].shape}")
    print(f"{'format':12} {'precision':9} {'runtime':18} {'median ms':>9} {'x eager':>8} {'95 % interval':>15} "
          f"{'IQR':>6}  target")
    for i, r in enumerate(results):
        if r.ratio_vs_eager is None:
            print(f"{r.format:12} {r.precision:9} {r.runtime:18} {r.status}: {r.reason}")
            continue
        q1, q3 = np.percentile(rounds.ratios(i), [25, 75])
        target = TARGETS.get((r.runtime, r.precision)) if r.format != "pytorch" else None
        verdict = f"{target[0]} {target[1]:.2f}: {'met' if r.ratio_vs_eager <= target[1] else 'MISSED'}" if target else ""
        print(f"{r.format:12} {r.precision:9} {r.runtime:18} {r.p50_ms:9.1f} {r.ratio_vs_eager:8.3f} "
              f"[{r.ratio_low:5.3f}, {r.ratio_high:5.3f}] {q3 - q1:6.3f}  {verdict}")
    print_int8_gap(results, rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
