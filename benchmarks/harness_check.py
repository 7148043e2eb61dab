"""Check our latency harness against torch.utils.benchmark on full-size resnet_mixed, PyTorch eager.

Both time the same Session.run call on the same clip in this one process, interleaved in short
rounds (ours, Timer, ours, Timer, ...) so drift and other load on the machine hit both alike.
Prints both medians (over all rounds) and their ratio; exits 1 when ours / Timer is outside
0.95..1.05. About 80 s on 2 quiet cores; on a busy host the ratio carries that noise.

    .venv/bin/python benchmarks/harness_check.py [--rounds 4] [--seconds 6] [--threads 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch
import torch.utils.benchmark as tb

from edgebench.benchmarks.harness import measure
from edgebench.benchmarks.stats import summarize
from edgebench.config import BudgetConfig
from edgebench.models.inputs import random_clips
from edgebench.models.source import resolve_model
from edgebench.runtimes.base import resolve_threads
from edgebench.runtimes.registry import get_runtime
from edgebench.runtimes.torch_eager import eager_artifact

LOW, HIGH = 0.95, 1.05


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds of each method")
    ap.add_argument("--seconds", type=float, default=6.0, help="steady-state seconds per round and method")
    ap.add_argument("--threads", type=int, default=0, help="0: every core")
    args = ap.parse_args()
    t0 = time.perf_counter()
    ref = resolve_model("resnet_mixed")
    threads = resolve_threads(args.threads)
    session = get_runtime("torch").load(eager_artifact(ref), ref, threads)
    feed = {ref.inputs[0].name: random_clips(ref, 1, 0)[0]}
    budget = BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=args.seconds, max_seconds=2 * args.seconds)
    timer = tb.Timer(stmt="session.run(feed)", globals={"session": session, "feed": feed},
                     num_threads=torch.get_num_threads(), label="resnet_mixed eager")

    ours_ms: list[float] = []
    theirs_ms: list[float] = []
    for round_ in range(1, args.rounds + 1):
        r = measure(session, [feed], budget)
        ours_ms += r["samples_ms"]
        m = timer.blocked_autorange(min_run_time=args.seconds)
        theirs_ms += [t * 1e3 for t in m.times]
        print(f"round {round_}: harness p50 {r['p50_ms']:.1f} ms ({r['runs']} runs), "
              f"Timer median {m.median * 1e3:.1f} ms ({len(m.times)} blocks of {m.number_per_run})")

    ours = summarize([v / 1e3 for v in ours_ms])
    theirs_p50 = statistics.median(theirs_ms)
    ratio = ours["p50_ms"] / theirs_p50
    ok = LOW <= ratio <= HIGH
    load = os.getloadavg()[0]
    print(f"threads {threads}, torch {torch.__version__}, load average {load:.1f} on {os.cpu_count()} cores")
    if load > (os.cpu_count() or 1):
        print("warning: the host is busy with other work; both medians, and their ratio, carry that noise")
    print(f"harness median   {ours['p50_ms']:.1f} ms over {ours['runs']} runs "
          f"(IQR {ours['iqr_ms']:.1f} ms, noisy={ours['noisy']}, outliers={ours['outliers']})")
    print(f"Timer median     {theirs_p50:.1f} ms over {len(theirs_ms)} blocks")
    print(f"ratio harness/Timer = {ratio:.4f} ({'within' if ok else 'OUTSIDE'} {LOW}..{HIGH}); "
          f"{time.perf_counter() - t0:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
