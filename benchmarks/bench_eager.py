"""PyTorch eager latency of a registered model through the pipeline's own path (bench_local, fresh child).

    .venv/bin/python benchmarks/bench_eager.py [--model resnet_mixed] [--budget full|quick] [--threads 0]

Prints the LatencyResult as JSON (raw samples left out). Full budget on resnet_mixed: about 40 s.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from edgebench.benchmarks.flops import model_flops  # noqa: E402
from edgebench.benchmarks.local import bench_local  # noqa: E402
from edgebench.config import BenchmarkConfig  # noqa: E402
from edgebench.models.source import resolve_model  # noqa: E402
from edgebench.records import PASSED  # noqa: E402
from edgebench.runtimes.torch_eager import eager_artifact  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet_mixed")
    ap.add_argument("--budget", choices=("full", "quick"), default="full")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    ref = resolve_model(args.model)
    budget = getattr(BenchmarkConfig(), args.budget)
    log = Path(tempfile.mkdtemp(prefix="edgebench-eager-")) / "bench.log"
    row = bench_local(eager_artifact(ref), "torch", ref, None, budget, args.threads, model_flops(ref),
                      budget.timeout_s, log)
    d = row.to_dict()
    d["extra"] = {k: v for k, v in d["extra"].items() if k != "samples_ms"}
    print(json.dumps(d, indent=1, default=str))
    return 0 if row.status == PASSED else 1


if __name__ == "__main__":
    sys.exit(main())
