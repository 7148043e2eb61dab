"""Repair the fixtures' failing int8 files, then time fp32, int8 and int8-mixed side by side (interleaved rounds).

    .venv/bin/python benchmarks/repair_speed.py [--formats onnx,tflite,executorch] [--rounds 30] [--threads 2]
                                                [--input-shape 1,3,16,112,112] [--work DIR]

The outlier fixture (tests/outlier_fixture.py: a net trained on moving bars, one channel 1000x larger and
divided back) is built under --work, its files exported and repaired as `edgebench repair` does, at a
clip size where latency means something (the net is fully convolutional). Then every file runs in its own
child, one inference each per round with the order rotated, so host drift hits a round's rows alike.
Prints per format: the repair (layers kept, trials, seconds), p50 of fp32, int8 and int8-mixed from the
same rounds, and the per-round ratios: the mixed file must stay faster than fp32 where int8 was.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.side_by_side import interleaved  # noqa: E402
from edgebench.records import Artifact, ModelRef, record_from_dict  # noqa: E402


def repaired_run(fixture, formats: list[str], shape: tuple[int, ...], out: Path, threads: int) -> Path:
    """`edgebench repair` on the fixture without benchmarks: the run folder."""
    from edgebench import pipeline
    from edgebench.config import load_pipeline_config
    from edgebench.repair.run import repair_config

    cfg = repair_config(load_pipeline_config(fixture.pipeline_yaml), formats, "int8")
    settings = pipeline.new_run(cfg.model_copy(update={"threads": threads}), out)
    result = pipeline.run_model_sequential(str(fixture.model_yaml), settings, str(fixture.weights), shape, bench=False)
    pipeline.finish_run(settings, [result])
    return settings.run_dir


def main() -> int:
    from edgebench.runtimes.registry import runtimes_for
    from tests.outlier_fixture import FORMATS, build_outlier_fixture

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-shape", default="1,3,16,112,112")
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgebench-repair-speed"))
    opts = parser.parse_args()
    formats = opts.formats.split(",")
    shape = tuple(int(v) for v in opts.input_shape.split(","))
    (opts.work / "fixture").mkdir(parents=True, exist_ok=True)
    fixture = build_outlier_fixture(opts.work / "fixture")
    run_dir = repaired_run(fixture, formats, shape, opts.work / "out", opts.threads)
    records = json.loads((run_dir / "run.json").read_text())["records"]
    artifacts = [record_from_dict(Artifact, a) for a in records["artifacts"]]
    ref = record_from_dict(ModelRef, records["models"][0])
    rows = [(a, next(r.name for r in runtimes_for(a.format) if r.measures_speed)) for a in artifacts if a.ok]
    times = interleaved(rows, ref, opts.rounds, opts.warmup, opts.threads)
    print(f"{ref.name} (training accuracy {fixture.train_accuracy:.2f}), input {shape}, {opts.rounds} interleaved "
          f"rounds, {opts.threads} threads; run {run_dir}")
    for rep in records["repairs"]:
        print(f"  {rep['format']} {rep['precision']}: {rep['status']}: {rep['reason']}")
    print(f"{'format':11} {'runtime':12} {'fp32 ms':>8} {'int8 ms':>8} {'mixed ms':>8} {'int8/fp32':>9} "
          f"{'mixed/fp32':>10} {'mixed/int8':>10}  mixed faster than fp32 where int8 was")
    failed = 0
    for fmt in formats:
        col = {a.precision: i for i, (a, _) in enumerate(rows) if a.format == fmt}
        if not {"fp32", "int8", "int8-mixed"} <= set(col):
            print(f"{fmt:11} missing: {sorted({'fp32', 'int8', 'int8-mixed'} - set(col))}")
            failed += 1
            continue
        ms = {p: float(np.median(times[:, i])) * 1e3 for p, i in col.items()}
        ratio = lambda a, b: float(np.median(times[:, col[a]] / times[:, col[b]]))  # noqa: E731 - per round
        int8_fp32, mixed_fp32, mixed_int8 = ratio("int8", "fp32"), ratio("int8-mixed", "fp32"), ratio("int8-mixed", "int8")
        held = int8_fp32 >= 1 or mixed_fp32 < 1  # asked only where int8 beat fp32
        failed += not held
        print(f"{fmt:11} {rows[col['fp32']][1]:12} {ms['fp32']:8.1f} {ms['int8']:8.1f} {ms['int8-mixed']:8.1f} "
              f"{int8_fp32:9.3f} {mixed_fp32:10.3f} {mixed_int8:10.3f}  {'held' if held else 'MISSED'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
