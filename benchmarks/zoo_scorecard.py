"""The zoo's coverage scorecard as Markdown (for docs/): a quick run of every registered model, or a run
folder already made, printed as the report's matrix, every failed cell's class and detail, each model's
largest child (resident peak) and the run's wall time.

    .venv/bin/python benchmarks/zoo_scorecard.py [--out DIR] [--models m ...] [--child-limit 12G]
    .venv/bin/python benchmarks/zoo_scorecard.py --run DIR/runs/<run id>     # print an existing run's
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from edgebench.models.registry import known_models
from edgebench.reports.scorecard import failures_list, markdown, scorecard
from edgebench.reports.writer import read_results_csv

EDGEBENCH = str(Path(sys.executable).with_name("edgebench"))


def run_zoo(out: Path, models: list[str], child_limit: str | None) -> Path:
    """`edgebench run --quick` over the models (default formats and precisions); its run folder."""
    args = [EDGEBENCH, "run", "--quick", "--out", str(out)]
    for m in models:
        args += ["--model", m]
    if child_limit:  # a pipeline.yaml beside the shipped one, with only the memory budget changed
        import yaml

        from edgebench.config import CONFIG_DIR

        config = yaml.safe_load((CONFIG_DIR / "pipeline.yaml").read_text())
        config["memory"] = {**config.get("memory", {}), "child_limit": child_limit}
        path = out / "zoo-pipeline.yaml"
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(config))
        args += ["--config", str(path)]
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=False)
    return (out / "latest").resolve()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, help="an existing run folder: print its scorecard only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--models", nargs="+", default=None, help="default: every model YAML in configs/models")
    parser.add_argument("--child-limit", default=None, help="memory.child_limit for this run (default: the config's)")
    args = parser.parse_args()
    run_dir = args.run or run_zoo(args.out or Path(tempfile.mkdtemp(prefix="zoo-")), args.models or known_models(),
                                      args.child_limit)
    info = json.loads((run_dir / "run.json").read_text())
    df = read_results_csv(run_dir / "results.csv")
    card = scorecard(df, (info.get("config") or {}).get("formats") or {})
    host = info.get("host", {})
    print(f"\nrun {info['run_id']} · {host.get('cpu', '?')} · {info.get('threads', '?')} threads · "
          f"{'quick' if (info.get('config') or {}).get('quick') else 'full'} budget · memory per child "
          f"{(info.get('config') or {}).get('memory', {}).get('child_limit', '?')} · {info.get('duration_s', 0) / 60:.0f} min\n")
    print(markdown(card))
    failed = failures_list(df)
    print(f"{len(failed)} failed cells:" if failed else "no failed cell")
    print("\n".join(failed))


if __name__ == "__main__":
    main()
