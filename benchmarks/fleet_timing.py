"""Wall time of the fanned-out nightly, cold (empty artifact cache) and warm (cached exports), with 1 and 2
fleet workers on this machine; each model's time on its worker; and what W hosts would take on paper.

    .venv/bin/python benchmarks/fleet_timing.py [--workers 1 2] [--models a b ...] [--formats f ...]
        [--precisions p ...] [--input-shape 1 3 4 32 32] [--cpus-per-worker 0] [--budget quick]

Every configuration gets its own Prefect server and workers (`edgebench serve` into a temporary
PREFECT_HOME) and its own output folder; the nightly deployment runs with fan_out=true, the parent on
the `default` worker, the models on the `fleet` workers. Defaults: the configured models (the zoo),
their default formats, the quick budget. The paper estimate schedules the measured per-model times of
the one-worker run on W hosts, longest first (LPT), which is within 4/3 of the best schedule.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from edgebench.config import load_pipeline_config

NIGHTLY = "export-and-benchmark/nightly"


def run_nightly(api_url: str, parameters: dict) -> tuple[float, str]:
    """Start the nightly deployment and wait for it; (wall seconds, final state name)."""
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    start = time.perf_counter()
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        run = run_deployment(NIGHTLY, parameters=parameters, timeout=None)
    return time.perf_counter() - start, run.state.name if run.state else "unknown"


def model_seconds(out: Path) -> dict[str, float]:
    """Each model's wall time on its worker, from the results files of the latest run."""
    run_id = (out / "latest").resolve().name
    found = {}
    for path in (out / "storage" / "runs" / run_id / "models").glob("*.json"):
        found[path.stem] = json.loads(path.read_text())["worker"]["seconds"]
    return found


def lpt_makespan(seconds: list[float], hosts: int) -> float:
    """Longest processing time first onto the least loaded host: the schedule's length."""
    loads = [0.0] * hosts
    for s in sorted(seconds, reverse=True):
        loads[loads.index(min(loads))] += s
    return max(loads)


def measure(workers: int, args, parameters: dict) -> dict:
    from edgebench.flows import serve

    home = Path(tempfile.mkdtemp(prefix=f"fleet-{workers}w-"))
    os.environ["PREFECT_HOME"] = str(home / "prefect")
    out = home / "out"
    state = serve.serve(say=lambda line: None, fleet_workers=workers, cpus_per_worker=args.cpus_per_worker)
    try:
        got = {}
        for kind in ("cold", "warm"):
            seconds, final = run_nightly(state["api_url"], {**parameters, "out": str(out)})
            got[kind] = seconds
            got[f"{kind}_state"] = final
            got[f"{kind}_models"] = model_seconds(out)
            print(f"  {workers} worker(s), {kind}: {seconds:,.0f} s ({final}); per model: "
                  + ", ".join(f"{m} {s:,.0f} s" for m, s in sorted(got[f"{kind}_models"].items())), flush=True)
    finally:
        serve.stop(say=lambda line: None)
    return got


def main() -> None:
    config = load_pipeline_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(config.models))
    parser.add_argument("--formats", nargs="+")
    parser.add_argument("--precisions", nargs="+")
    parser.add_argument("--input-shape", type=int, nargs="+")
    parser.add_argument("--cpus-per-worker", type=int, default=0)
    parser.add_argument("--budget", choices=["quick", "full"], default="quick")
    args = parser.parse_args()
    parameters = {"fan_out": True, "models": args.models, "budget": args.budget,
                  "formats": args.formats, "precisions": args.precisions, "input_shape": args.input_shape}
    print(f"models: {', '.join(args.models)}; formats: {', '.join(args.formats or config.formats)}; "
          f"{args.budget} budget; {os.cpu_count()} cores; cpus per worker: {args.cpus_per_worker or 'shared'}")
    results = {w: measure(w, args, parameters) for w in args.workers}
    print("\nworkers   cold s   warm s   cold vs 1 worker   warm vs 1 worker")
    base = results.get(1)
    for w, r in results.items():
        ratio = lambda k: f"{base[k] / r[k]:.2f}x" if base else "-"  # noqa: E731
        print(f"{w:>7} {r['cold']:>8,.0f} {r['warm']:>8,.0f} {ratio('cold'):>18} {ratio('warm'):>18}")
    if base:
        print("\non paper, W hosts (one worker each, this host's per-model times, longest first):")
        for kind in ("cold", "warm"):
            times = list(base[f"{kind}_models"].values())
            overhead = base[kind] - sum(times)  # the parent's own time: new run, dispatch, gathering, the report
            line = ", ".join(f"W={w} {lpt_makespan(times, w) + overhead:,.0f} s" for w in sorted({1, 2, 4, len(times)}))
            print(f"  {kind}: sum of models {sum(times):,.0f} s, longest {max(times):,.0f} s, parent {overhead:,.0f} s; {line}")


if __name__ == "__main__":
    main()
