"""Time the default pipeline cold (empty cache), warm (cached exports) and --quick, with the peak
memory of the whole process tree, and print the figures; then compare the two full-budget runs'
ratios to eager, row by row.

    .venv/bin/python benchmarks/pipeline_timing.py [--out DIR] [--model resnet_mixed]

Targets on a 2-core machine: cold <= 6 min, warm <= 3 min, quick <= 2 min, peak <= 6 GB; each row's
ratio to eager in the cold and the warm run within 5 % of each other (MLPerf Mobile's replication rule).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

EDGEBENCH = str(Path(sys.executable).with_name("edgebench"))
TARGETS = {"cold": 360.0, "warm": 180.0, "quick": 120.0}
PEAK_TARGET_GB = 6.0
REPLICATION = 0.05  # two runs' ratios to eager within 5 % of each other


def tree_rss(proc: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, in bytes."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def timed_run(args: list[str]) -> tuple[float, float, int]:
    """(seconds, peak GB of the process tree sampled every 0.2 s, exit code)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        handle = psutil.Process(proc.pid)
        while not done.is_set():
            try:
                peak = max(peak, tree_rss(handle))
            except psutil.Error:
                return
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for line in proc.stdout:
        if line.startswith("["):
            print("   ", line.rstrip(), flush=True)
    code = proc.wait()
    done.set()
    sampler.join()
    return time.perf_counter() - start, peak / 1e9, code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="output folder (default: a new temporary one)")
    parser.add_argument("--model", default="resnet_mixed")
    opts = parser.parse_args()
    out = opts.out or Path(tempfile.mkdtemp(prefix="edgebench-timing-"))
    base = [EDGEBENCH, "run", "--model", opts.model, "--out", str(out)]
    runs = {"cold": base, "warm": base, "quick": [*base, "--quick"]}
    figures, run_dirs = {}, {}
    for name, args in runs.items():
        print(f"== {name}: {' '.join(args[1:])}", flush=True)
        figures[name] = timed_run(args)
        run_dirs[name] = (out / "latest").resolve()
    print(f"\n{'run':6} {'seconds':>8} {'target':>7} {'peak GB':>8}  exit")
    ok = True
    for name, (seconds, peak, code) in figures.items():
        met = seconds <= TARGETS[name] and peak <= PEAK_TARGET_GB and code == 0
        ok &= met
        print(f"{name:6} {seconds:8.1f} {TARGETS[name]:7.0f} {peak:8.2f}  {code}  {'ok' if met else 'MISSED'}")
    ok &= replicated(run_dirs["cold"], run_dirs["warm"])
    print(f"reports under {out}")
    return 0 if ok else 1


def replicated(first: Path, second: Path) -> bool:
    """Print each row's ratio to eager in two runs and their difference; True when every row is within REPLICATION."""
    import pandas as pd

    key = ["format", "precision", "runtime", "device"]
    a, b = (pd.read_csv(d / "results.csv", keep_default_na=False) for d in (first, second))
    both = a.merge(b, on=key, suffixes=("_1", "_2"))
    both = both[(both["format"] != "pytorch") & (both["ratio_vs_eager_1"] != "") & (both["ratio_vs_eager_2"] != "")]
    print(f"\nratio to eager, {first.name} (cold) against {second.name} (warm):")
    print(f"{'row':36} {'cold':>7} {'warm':>7} {'diff':>7}")
    ok = True
    for _, r in both.iterrows():
        r1, r2 = float(r["ratio_vs_eager_1"]), float(r["ratio_vs_eager_2"])
        diff = r2 / r1 - 1
        ok &= abs(diff) <= REPLICATION
        label = f"{r['format']} {r['precision']} {r['runtime']}"
        print(f"{label:36} {r1:7.3f} {r2:7.3f} {diff * 100:+6.1f} %  {'ok' if abs(diff) <= REPLICATION else 'MISSED'}")
    print(f"{len(both)} rows, every one within {REPLICATION * 100:g} %: {'yes' if ok and len(both) else 'NO'}")
    return ok and len(both) > 0


if __name__ == "__main__":
    sys.exit(main())
