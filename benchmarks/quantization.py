"""Export every configured reduced-precision artifact of the full model, judge it on real clips and time it
side by side with PyTorch eager fp32 and its fp32 sibling; print size, p50, speed-ups and error figures.

    .venv/bin/python benchmarks/quantization.py [--out DIR] [--videos ../shared/data] [--formats onnx,coreml]

Target (issue #10): ONNX int8 p50 at least 1.5x faster than PyTorch eager fp32, parity passing.
Figures taken while other work loads the machine are noisy; the ratios, measured in one process
one after the other, are the informative part.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edgebench.config import BudgetConfig, CalibrationConfig, PipelineConfig
from edgebench.converters.export import export_artifact
from edgebench.models.source import resolve_model
from edgebench.records import ModelRef

ROOT = Path(__file__).resolve().parents[1]
PLAN = {"onnx": ["fp32", "int8", "w8a16"], "coreml": ["fp32", "w8", "int8"], "tflite": ["fp32", "int8"],
        "torchscript": ["fp32", "int8"]}
TARGET = 1.5


def parity_inputs(ref: ModelRef, videos: list[Path], random: int = 3) -> dict[str, np.ndarray]:
    """`random` seeded random clips plus 2 clips from each video (the parity clips of docs/parity.md)."""
    from edgebench.models.inputs import random_clips
    from edgebench.models.video import preprocess_of, read_clips

    pre = preprocess_of(ref)
    parts = [random_clips(ref, random, 0)] + [read_clips(v, pre, 2)[:, None] for v in videos]
    return {ref.inputs[0].name: np.concatenate(parts)}


def p50(artifact, runtime: str, ref: ModelRef, inputs, budget: BudgetConfig, threads: int) -> float | None:
    from edgebench.benchmarks.harness import measure
    from edgebench.runtimes.registry import get_runtime

    rt = get_runtime(runtime)
    if rt.unavailable_reason() or not rt.measures_speed:
        return None
    with rt.load(artifact, ref, threads) as session:
        return measure(session, inputs, budget)["p50_ms"]


def main() -> None:
    from edgebench.parity.check import check_parity, reference_outputs
    from edgebench.runtimes.registry import runtimes_for
    from edgebench.runtimes.torch_eager import eager_artifact

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/edgebench-quantization")
    ap.add_argument("--videos", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--formats", default="onnx,coreml,tflite,torchscript")
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--method", default="minmax")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()

    cfg = PipelineConfig()
    ref = resolve_model("resnet_mixed")
    videos = sorted(Path(args.videos).glob("*.mp4"))
    calibration = CalibrationConfig(videos=[args.videos], clips=args.clips, method=args.method)
    inputs = parity_inputs(ref, videos, random=0)  # calibrated on video: judged on video (docs/parity.md)
    reference = reference_outputs(ref, inputs, args.threads)
    budget = BudgetConfig(warmup_runs=2, min_runs=5, min_seconds=args.seconds, max_seconds=60)
    eager = p50(eager_artifact(ref), "torch", ref, inputs, budget, args.threads)
    print(f"pytorch eager fp32: p50 {eager:.1f} ms  (threads {args.threads}, {len(videos)} videos, "
          f"{len(next(iter(inputs.values())))} parity clips)")
    for fmt in args.formats.split(","):
        fp32_p50: dict[str, float] = {}
        for precision in PLAN[fmt]:
            start = time.perf_counter()
            a = export_artifact(ref, fmt, precision, cfg.converter_options.get(fmt), Path(args.out) / "cache", 900,
                                calibration=calibration)
            took = time.perf_counter() - start
            if not a.ok:
                print(f"{fmt:12s} {precision:6s} {a.status}: {a.reason}")
                continue
            print(f"{fmt:12s} {precision:6s} {a.size_bytes / 2**20:6.1f} MiB  export {took:5.1f} s  "
                  f"compute {a.compute_dtypes}  calibration {a.calibration or '-'}")
            tol = cfg.parity.tolerances.get(precision)
            for rt in runtimes_for(fmt):
                if rt.unavailable_reason():
                    continue
                pr = check_parity(a, rt.name, ref, inputs, reference, tol, args.threads) if tol else None
                t = p50(a, rt.name, ref, inputs, budget, args.threads)
                if precision == "fp32" and t:
                    fp32_p50[rt.name] = t
                speed = f"p50 {t:7.1f} ms  x{eager / t:4.2f} vs eager" if t else "p50      -"
                if t and rt.name in fp32_p50 and precision != "fp32":
                    speed += f"  x{fp32_p50[rt.name] / t:4.2f} vs fp32"
                err = (f"{pr.status:13s} cos {pr.cosine:.6f} psnr {pr.psnr_db:5.1f} top1 {pr.top1_agree:.2f} "
                       f"top5 {pr.top5_agree:.2f} maxabs {pr.max_abs_err:.2e} {pr.reason}") if pr and pr.cosine else (
                       pr.status + " " + pr.reason if pr else "no tolerance")
                print(f"    {rt.name:12s} {speed}  {err}")
                if fmt == "onnx" and precision == "int8" and t:
                    ok = eager / t >= TARGET and pr is not None and pr.status == "passed"
                    print(f"    TARGET onnx int8 >= {TARGET}x eager fp32 with parity: "
                          f"{'met' if ok else 'NOT met'} ({eager / t:.2f}x)")


if __name__ == "__main__":
    main()
