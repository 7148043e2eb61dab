"""Export a model in both forms (3d and 2d-lowered) and time every artifact next to PyTorch eager, in one run.

    .venv/bin/python benchmarks/lowering_compare.py [--model resnet_mixed|r3d_18|r2plus1d_18]
        [--budget full|quick] [--threads 2] [--input-shape 1x3x16x112x112] [--markdown]

Uses the real converters (export_artifact into a temporary cache, one per form) and the project's
benchmark harness (bench_local: one child per row, device lock). Prints p50, the ratio to eager
(eager = the unlowered 3D module, what a PyTorch user runs) and the op census: CONV_3D, CONV_2D,
TRANSPOSE, CONCATENATION and, for TFLite, the ops LiteRT's XNNPACK delegate took.
Targets (issue #17): LiteRT fp32 and ONNX Runtime fp32 <= 1.10x eager, TorchScript <= 1.05x.
Figures taken while other work loads the machine are noisy; ratios from one run are the informative part.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

from edgebench.benchmarks.local import bench_local
from edgebench.catalogue import format_entry
from edgebench.config import BenchmarkConfig
from edgebench.converters.export import export_artifact
from edgebench.converters.registry import get_converter
from edgebench.models.lowering import LOWERED, THREE_D
from edgebench.models.source import resolve_model
from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.torch_eager import eager_artifact

FORMATS = ("torchscript", "onnx", "tflite")
TARGETS = {"torchscript": 1.05, "onnxruntime": 1.10, "litert": 1.10}


def export_form(ref: ModelRef, fmt: str, lowered: bool, cache: Path, timeout_s: float) -> Artifact:
    """The fp32 artifact of one form: the real converter with its `form` set, its own cache folder."""
    converter = copy.copy(get_converter(fmt))
    converter.form = LOWERED if lowered else THREE_D
    return export_artifact(ref, fmt, "fp32", None, cache / (LOWERED if lowered else THREE_D), timeout_s,
                           use_cache=False, converter=converter)


def census(artifact: Artifact) -> dict[str, int]:
    """Convs by rank, transposes and concatenations of the saved file (and XNNPACK's share, for TFLite)."""
    if not artifact.ok:
        return {}
    if artifact.format == "tflite":
        return {**{k: artifact.op_census.get(k, 0) for k in ("CONV_3D", "CONV_2D", "TRANSPOSE", "CONCATENATION")},
                **tflite_delegation(artifact.path)}
    if artifact.format == "onnx":
        import onnx

        graph = onnx.load(artifact.path, load_external_data=False).graph
        rank = {t.name: len(t.dims) for t in graph.initializer}
        convs = [rank.get(n.input[1], 0) for n in graph.node if n.op_type == "Conv"]
        return {"Conv3D": convs.count(5), "Conv2D": convs.count(4), "Transpose": artifact.op_census.get("Transpose", 0),
                "Concat": artifact.op_census.get("Concat", 0)}
    return {k: artifact.op_census.get(k, 0) for k in ("aten::_convolution", "aten::transpose", "aten::cat")}


def tflite_delegation(path: str) -> dict[str, int]:
    """Ops inside XNNPACK partitions, from LiteRT's own node graph after allocate_tensors()."""
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.runtimes.delegation import delegated_ops

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    split = delegated_ops(interpreter)
    return {"partitions": split["partitions"]["DELEGATE"],
            "delegated": sum(split["delegated"].values()),
            "not_delegated": sum(split["not_delegated"].values()),
            "conv_delegated": sum(v for k, v in split["delegated"].items() if k.startswith("CONV")),
            "conv_not_delegated": sum(v for k, v in split["not_delegated"].items() if k.startswith("CONV"))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet_mixed")
    parser.add_argument("--budget", choices=("full", "quick"), default="full")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--input-shape", default=None, help="e.g. 1x3x8x56x56 (default: the model config's)")
    parser.add_argument("--formats", default=",".join(FORMATS))
    parser.add_argument("--markdown", action="store_true", help="also print the docs/converters.md table rows")
    args = parser.parse_args()

    shape = tuple(int(v) for v in args.input_shape.split("x")) if args.input_shape else None
    ref = resolve_model(args.model, input_shape=shape)
    budget = getattr(BenchmarkConfig(), args.budget)
    work = Path(tempfile.mkdtemp(prefix="edgebench-lowering-"))
    print(f"{ref.name} {'x'.join(map(str, ref.inputs[0].shape))}, {args.threads} threads, {args.budget} budget, "
          f"work dir {work}", flush=True)

    rows = []  # (form, format, runtime, artifact)
    for fmt in [f for f in args.formats.split(",") if f]:
        for lowered in (False, True):
            a = export_form(ref, fmt, lowered, work / "cache", budget.timeout_s)
            print(f"export {fmt:12s} {a.form or '?':10s} {a.status} {a.export_s:.0f} s {a.reason}", flush=True)
            rows.append((a.form or (LOWERED if lowered else THREE_D), fmt, next(iter(format_entry(fmt).runtimes)), a))

    def bench(artifact: Artifact, runtime: str, tag: str):
        r = bench_local(artifact, runtime, ref, None, budget, args.threads, None, budget.timeout_s,
                        work / "logs" / f"{tag}-{runtime}.log")
        print(f"bench  {tag:22s} {runtime:12s} {r.status} p50 {r.p50_ms or 0:.1f} ms {r.reason}", flush=True)
        return r

    eager = bench(eager_artifact(ref), "torch", "eager")
    results = [(form, fmt, runtime, a, bench(a, runtime, f"{form}-{fmt}")) for form, fmt, runtime, a in rows]
    eager_after = bench(eager_artifact(ref), "torch", "eager-again")  # drift of the load during the run

    # the baseline: the mean of the eager p50 before and after the rows (the load drifts during a run)
    base = sum(r.p50_ms for r in (eager, eager_after) if r.p50_ms) / max(1, sum(bool(r.p50_ms) for r in (eager, eager_after)))
    print(f"\neager (3d, unlowered) p50 {eager.p50_ms or 0:.1f} ms, again at the end {eager_after.p50_ms or 0:.1f} ms: "
          f"baseline {base:.1f} ms")
    parity = parity_of(ref, [(a, runtime) for _, _, runtime, a, _ in results])
    print(f"{'form':11s} {'runtime':12s} {'p50 ms':>8s} {'x eager':>8s} {'target':>7s}  parity fp32; census")
    table = []
    for (form, fmt, runtime, a, r), check in zip(results, parity):
        ratio = r.p50_ms / base if r.p50_ms and base else None
        verdict = "" if ratio is None else ("ok" if ratio <= TARGETS[runtime] else "MISS")
        cells = ", ".join(f"{k} {v}" for k, v in census(a).items())
        print(f"{form:11s} {runtime:12s} {r.p50_ms or 0:8.1f} {ratio or 0:8.2f} {TARGETS[runtime]:6.2f} {verdict:4s}"
              f" {check}; {cells or a.reason or r.reason}")
        table.append((form, runtime, r.p50_ms, ratio, check, cells))
    if args.markdown:
        print(f"\n| {ref.name} | eager (3d) | {base:.0f} | 1.00 | | |")
        for form, runtime, p50, ratio, check, cells in table:
            print(f"| {ref.name} | {runtime} {form} | {p50 or 0:.0f} | {ratio or 0:.2f} | {check} | {cells} |")


def parity_of(ref: ModelRef, rows: list[tuple[Artifact, str]]) -> list[str]:
    """Each artifact against the unlowered eager module on 2 seeded random clips, at the fp32 tolerance."""
    from edgebench.config import ParityConfig
    from edgebench.models.inputs import random_clips
    from edgebench.parity.check import check_parity, reference_outputs
    from edgebench.parity.verdict import tolerance_for

    inputs = {ref.inputs[0].name: random_clips(ref, 2, 0)}
    reference = reference_outputs(ref, inputs, threads=1)
    out = []
    for artifact, runtime in rows:
        r = check_parity(artifact, runtime, ref, inputs, reference, tolerance_for(ParityConfig(), "fp32"), threads=1)
        out.append(f"{r.status} (max abs {r.max_abs_err:.1e})" if r.max_abs_err is not None else f"{r.status} {r.reason}")
    return out


if __name__ == "__main__":
    main()
