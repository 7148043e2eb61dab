"""Time a run's artifacts against PyTorch eager interleaved (A/B/C, B/C/A, ...), and print per-round ratios.

    .venv/bin/python benchmarks/side_by_side.py RUN_DIR [--rounds 20] [--threads 2] [--also onnx:int8:OLD.onnx]

One persistent child per (artifact, runtime) holds a loaded Session; the parent asks one child at a
time for one inference, rotating the order every round. Host drift (this machine's speed moves by
tens of percent between minutes) then hits every row of a round alike, so the median of the
per-round ratios to eager says more than p50s taken minutes apart. Prints the targets of issues #17
(LiteRT and ONNX Runtime fp32 <= 1.10x eager, TorchScript <= 1.05x), #10 and #27 (ONNX int8 >= 3x
faster than eager, and within 1.3x of the faster of LiteRT int8 and ExecuTorch int8, per round).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

from edgebench.records import Artifact, ModelRef, record_from_dict

TARGETS = {("torchscript", "fp32"): ("<=", 1.05), ("onnxruntime", "fp32"): ("<=", 1.10),
           ("litert", "fp32"): ("<=", 1.10), ("onnxruntime", "int8"): ("<=", 1 / 3)}
INT8_PEERS, INT8_GAP = (("tflite", "litert"), ("executorch", "executorch")), 1.3  # issue #27


def serve(conn, artifact: Artifact, runtime: str, ref: ModelRef, threads: int) -> None:
    """In the child: load once, then answer each request with the seconds of one inference."""
    from edgebench.runtimes.registry import get_runtime

    rng = np.random.default_rng(0)
    inputs = {t.name: rng.random(t.shape, dtype=np.float32) for t in ref.inputs}
    with get_runtime(runtime).load(artifact, ref, threads) as session:
        conn.send("ready")
        while conn.recv() == "run":
            start = time.perf_counter()
            session.run(inputs)
            conn.send(time.perf_counter() - start)


def rows_of(run_dir: Path) -> tuple[ModelRef, list[tuple[Artifact, str]]]:
    """The eager baseline and every passed local artifact x speed-measuring runtime usable here."""
    from edgebench.runtimes.registry import runtimes_for
    from edgebench.runtimes.torch_eager import eager_artifact

    records = json.loads((run_dir / "run.json").read_text())["records"]
    ref = record_from_dict(ModelRef, records["models"][0])
    rows = [(eager_artifact(ref), "torch")]
    for a in (record_from_dict(Artifact, d) for d in records["artifacts"]):
        if a.ok and a.model == ref.name:
            rows += [(a, r.name) for r in runtimes_for(a.format) if r.measures_speed and r.unavailable_reason() is None]
    return ref, rows


def also_rows(specs: list[str], rows: list[tuple[Artifact, str]]) -> list[tuple[Artifact, str]]:
    """`FORMAT:PRECISION:PATH` files timed in the same rounds (e.g. another build of one artifact), on the
    runtime of the run's own row of that format and precision."""
    from dataclasses import replace

    extra = []
    for spec in specs:
        fmt, precision, path = spec.split(":", 2)
        base = next(((a, rt) for a, rt in rows if (a.format, a.precision) == (fmt, precision)), None)
        if base is None or not Path(path).is_file():
            raise SystemExit(f"side_by_side: --also {spec}: no {fmt} {precision} row in the run, or no such file")
        extra.append((replace(base[0], path=str(Path(path).resolve()), precision=f"{precision}*"), base[1]))
    return extra


def interleaved(rows: list[tuple[Artifact, str]], ref: ModelRef, rounds: int, warmup: int, threads: int) -> np.ndarray:
    """Seconds of one inference per (round, row): every row loaded in its own child first, then one inference of
    each per round, the order rotated every round."""
    ctx = mp.get_context("spawn")
    pipes, procs = [], []
    for artifact, runtime in rows:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=serve, args=(child, artifact, runtime, ref, threads), daemon=True)
        proc.start()
        parent.recv()  # loaded: loading never overlaps a timed inference
        pipes.append(parent)
        procs.append(proc)
    times = np.zeros((rounds, len(rows)))
    for round_ in range(-warmup, rounds):
        order = np.roll(np.arange(len(rows)), round_)
        for i in order:
            time.sleep(0.05)  # let the previous runtime's worker threads stop spinning
            pipes[i].send("run")
            seconds = pipes[i].recv()
            if round_ >= 0:
                times[round_, i] = seconds
    for pipe, proc in zip(pipes, procs):
        pipe.send("stop")
        proc.join(30)
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run folder (reports/latest, or reports/runs/<id>)")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--also", action="append", default=[], metavar="FORMAT:PRECISION:PATH",
                        help="another file of a row's format and precision, timed in the same rounds (its row: PRECISION*)")
    opts = parser.parse_args()
    ref, rows = rows_of(opts.run_dir.resolve())
    rows += also_rows(opts.also, rows)
    times = interleaved(rows, ref, opts.rounds, opts.warmup, opts.threads)
    ratios = times / times[:, :1]  # per round, against that round's eager
    print(f"{ref.name}, {opts.rounds} interleaved rounds, {opts.threads} threads, {ref.inputs[0].shape}")
    print(f"{'format':12} {'precision':9} {'runtime':12} {'median ms':>9} {'x eager':>8} {'IQR':>6}  target")
    for (artifact, runtime), ms, ratio in zip(rows, np.median(times, axis=0) * 1e3, ratios.T):
        q1, med, q3 = np.percentile(ratio, [25, 50, 75])
        target = TARGETS.get((runtime, artifact.precision)) if artifact.format != "pytorch" else None
        verdict = f"{target[0]} {target[1]:.2f}: {'met' if med <= target[1] else 'MISSED'}" if target else ""
        print(f"{artifact.format:12} {artifact.precision:9} {runtime:12} {ms:9.1f} {med:8.3f} {q3 - q1:6.3f}  {verdict}")
    print_int8_gap(rows, times)
    return 0


def print_int8_gap(rows: list[tuple[Artifact, str]], times: np.ndarray) -> None:
    """ONNX Runtime int8 against the faster of LiteRT int8 and ExecuTorch int8, per round (issue #27's 1.3x)."""
    column = {(a.format, a.precision, runtime): i for i, (a, runtime) in enumerate(rows)}
    onnx = column.get(("onnx", "int8", "onnxruntime"))
    peers = [column[(fmt, "int8", rt)] for fmt, rt in INT8_PEERS if (fmt, "int8", rt) in column]
    if onnx is None or not peers:
        return
    gap = np.median(times[:, onnx] / times[:, peers].min(axis=1))
    print(f"onnx int8 / faster of {', '.join(f'{f} int8' for f, _ in INT8_PEERS)}: {gap:.3f}x per round "
          f"(<= {INT8_GAP}: {'met' if gap <= INT8_GAP else 'MISSED'})")


if __name__ == "__main__":
    sys.exit(main())
