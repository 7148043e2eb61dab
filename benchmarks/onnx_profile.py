"""Where ONNX Runtime spends an ONNX file's time: share per op type from its own profiler, nodes after optimization.

    .venv/bin/python benchmarks/onnx_profile.py MODEL.onnx [MODEL2.onnx ...] [--runs 10] [--threads 2]

Loads each file as the `onnxruntime` runtime does (CPU provider, every graph optimization), runs
`--runs` inferences on a seeded random input after one warm-up, and prints per op type its share of
the summed kernel time, its node count in the graph ONNX Runtime actually runs (after the QDQ fusions
and the NHWC layout transformer), the median latency, and which MLAS kernel each int8 conv's weights
select (converters/onnx_conv_kernel.py: `convsym`, or `qgemm`, on AMX where the CPU has it). Transpose,
QuantizeLinear and DequantizeLinear shares are what issue #27 tracks: data movement around the int8 convs.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

TRACKED = ("Transpose", "QuantizeLinear", "DequantizeLinear", "QLinearConv", "Conv")


def profile(path: Path, runs: int, threads: int) -> dict:
    """{"ms": median latency, "share": {op: fraction of kernel time}, "nodes": {op: count after optimization},
    "conv_kernels": {MLAS kernel: convs}}."""
    import onnxruntime as ort

    from edgebench.converters.onnx_conv_kernel import conv_kernels
    from edgebench.runtimes.onnxruntime import optimized_census

    with tempfile.TemporaryDirectory(prefix="onnx-profile-") as tmp:
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_profiling, so.profile_file_prefix = True, str(Path(tmp) / "profile")
        so.log_severity_level = 3
        session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        feed = {i.name: rng.random([d if isinstance(d, int) else 1 for d in i.shape], dtype=np.float32)
                for i in session.get_inputs()}
        session.run(None, feed)
        seconds = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feed)
            seconds.append(time.perf_counter() - start)
        events = json.loads(Path(session.end_profiling()).read_text())
    nodes = optimized_census(path, threads)
    per_op: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time"):
            per_op[e["args"]["op_name"]] += e["dur"]
    total = sum(per_op.values()) or 1.0
    return {"ms": float(np.median(seconds)) * 1e3, "share": {op: us / total for op, us in per_op.items()},
            "nodes": dict(nodes), "conv_kernels": dict(conv_kernels(path))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    opts = parser.parse_args()
    for path in opts.models:
        if not path.is_file():
            print(f"onnx_profile: {path}: no such file", file=sys.stderr)
            return 2
    for path in opts.models:
        result = profile(path, opts.runs, opts.threads)
        kernels = ", ".join(f"{k} {n}" for k, n in sorted(result["conv_kernels"].items()))
        print(f"{path}: median {result['ms']:.1f} ms over {opts.runs} runs, {opts.threads} threads; "
              f"convs by MLAS kernel: {kernels or 'none'}")
        ops = sorted(set(result["share"]) | set(TRACKED), key=lambda op: -result["share"].get(op, 0.0))
        print(f"  {'op type':28} {'share':>7} {'nodes':>6}")
        for op in ops:
            share, count = result["share"].get(op, 0.0), result["nodes"].get(op, 0)
            if share >= 0.001 or op in TRACKED:
                print(f"  {op:28} {share:7.1%} {count:6d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
