"""Every zoo model through the lowering, the rewrites, every default export and its parity check: one line per cell.

    .venv/bin/python benchmarks/zoo_lowering.py [--models all|s3d,mvit_v2_s] [--formats onnx,tflite]
        [--input-shape s3d=1x3x16x224x224 ...] [--config pipeline.yaml] [--out reports-zoo]

Each model runs in its own child process (the real pipeline steps without benchmarks: prepare, export in
children, parity in children); the parent prints, per model, its weights and how much its outputs depend
on the input (near 0: every parity verdict on it is weak), the share of FLOPs that runs lowered, the 3D
ops kept, where the folded tensor went back to 5-D, then per (format, precision) the export status, the
rewrites applied, the export time and, per runtime, the parity verdict or the reason it failed, and last
the model's wall time and the peak resident memory of its whole process tree (wait4's ru_maxrss).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from edgebench.models.registry import expand_models


def output_spread(ref) -> float:
    """max |f(a) - f(b)| / max |f(a)| of the eager module on two seeded clips: near 0, the outputs ignore the
    input (random weights whose activations vanish) and every parity check on them is weak evidence."""
    import torch

    from edgebench.models.source import build_module, example_input

    with torch.no_grad():
        a, b = (build_module(ref)(example_input(ref, seed)) for seed in (1, 2))
    return float((a - b).abs().max() / a.abs().max())


def one_model(name: str, shape: tuple[int, ...] | None, formats: list[str] | None, config: str | None,
              out: str) -> None:
    """Runs in the child: the model's lowering facts, then its cells."""
    from edgebench import pipeline
    from edgebench.config import load_pipeline_config
    from edgebench.models.source import lowering_report, resolve_model

    ref = resolve_model(name, input_shape=shape)
    report = lowering_report(ref)
    share = f"{100 * report.lowered_share:.2f} %" if report.lowered_share is not None else "not counted"
    print(f"{name}: {ref.provenance}; output spread {output_spread(ref):.2g}; form {report.form} "
          f"{report.reason or report.driver}; lowered {share} of {report.flops_total / 1e9:.1f} GFLOP; kept 3D "
          f"{report.kept or 'none'}; 5-D views {report.unfolded or 'none'}", flush=True)
    cfg = load_pipeline_config(Path(config) if config else None)
    settings = pipeline.new_run(pipeline.narrow_config(cfg, formats), out, quick=True)
    result = pipeline.run_model_sequential(name, settings, None, shape, bench=False)
    for a in result.artifacts:
        rewrites = f" rewrites {', '.join(a.rewrites)};" if a.rewrites else ""
        print(f"  {a.format:<11} {a.precision:<5} export {a.status} {a.export_s:.0f} s ({a.form or '-'});{rewrites} "
              f"{a.reason}", flush=True)
        for p in (p for p in result.parity if (p.format, p.precision) == (a.format, a.precision)):
            figures = f"max abs {p.max_abs_err:.2g}, PSNR {p.psnr_db:.1f} dB" if p.max_abs_err is not None else ""
            print(f"  {'':<17} {p.runtime:<12} {p.status} {figures} {p.reason}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="all", help="comma-separated model names, or all")
    parser.add_argument("--formats", default=None, help="comma-separated formats (default: the configured ones)")
    parser.add_argument("--input-shape", action="append", default=[], metavar="MODEL=NxCxTxHxW",
                        help="a smaller input for one model (conversion questions, not speed)")
    parser.add_argument("--config", default=None, help="a pipeline YAML (default: configs/pipeline.yaml)")
    parser.add_argument("--out", default="reports-zoo")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child's model
    args = parser.parse_args()
    shapes = {m: s for m, _, s in (item.partition("=") for item in args.input_shape)}
    formats = args.formats.split(",") if args.formats else None
    if args.one:
        shape = shapes.get(args.one)
        one_model(args.one, tuple(int(v) for v in shape.split("x")) if shape else None, formats, args.config, args.out)
        return
    for name in expand_models(args.models.split(",")):
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, __file__, "--one", name, "--out", args.out,
                                  *(["--formats", args.formats] if args.formats else []),
                                  *(["--config", args.config] if args.config else []),
                                  *(f"--input-shape={item}" for item in args.input_shape)])
        _, status, usage = os.wait4(child.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        print(f"{name}: {time.perf_counter() - start:.0f} s, peak RSS of its process tree {usage.ru_maxrss / 1e6:.1f} GB"
              f"{'' if code == 0 else f', exit code {code}'}", flush=True)


if __name__ == "__main__":
    main()
