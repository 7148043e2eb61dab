"""Every trained fixture (tests/trained_fixtures.py) in every format and precision, scored by `edgebench evaluate`.

    .venv/bin/python benchmarks/fixture_accuracy.py [--fixtures bn_maxpool,separable] [--out DIR] [--markdown]

Builds each fixture's videos and trained model under --out (seconds; the same weights on the same
host, so a second run takes its exports from the cache), then runs `edgebench.api.evaluate` on it
with every format of the catalogue in every precision its converter can make, int8 / w8a16 calibrated on the fixture's own
calibration videos. Prints one row per (fixture, format, precision, runtime): video top-1, the drop
against eager, its 95 % interval and the verdict against the precision's bound; refused and failed
exports with their reason. Exits 1 when a row is outside its bound or failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests import trained_fixtures  # noqa: E402


def pipeline_yaml(folder: Path, calibration: Path, threads: int) -> Path:
    """Every catalogued format in every precision it can make, calibrated on `calibration`; each format's runtimes."""
    import yaml

    from edgebench.catalogue import formats

    spec = {"formats": {name: list(entry.precisions) for name, entry in formats().items()}, "threads": threads,
            "calibration": {"videos": [str(calibration)], "clips": 8}}
    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def rows(name: str, result) -> list[list[str]]:
    """Table rows: every scored (artifact, runtime), then every artifact that was refused or failed to export."""
    from edgebench.evaluation.stats import ci_text

    table = []
    for r in result.accuracy:
        drop = "" if r.top1_drop is None else f"{r.top1_drop:+.1f}"
        verdict = r.verdict or ("baseline" if r.format == "pytorch" else r.status)
        top1 = "" if r.top1 is None else f"{r.top1:.1f}"
        table.append([name, r.format, r.precision, r.runtime, top1, drop,
                      ci_text(r.top1_drop_low, r.top1_drop_high) if r.top1_drop is not None else "",
                      verdict, r.reason])
    for a in result.artifacts:
        if not a.ok:
            table.append([name, a.format, a.precision, "", "", "", "", a.status, a.reason])
    return table


HEADER = ["fixture", "format", "precision", "runtime", "top-1 %", "drop", "95 % interval", "verdict", "reason"]


def failing(row: list[str]) -> bool:
    """Outside its bound, or a runtime / export failure (refused precisions are fine: they say why)."""
    return row[7] in ("failed", "accuracy_failed", "runtime_failed", "export_failed")


def main() -> int:
    from edgebench import api

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fixtures", default=",".join(trained_fixtures.FIXTURES))
    ap.add_argument("--out", default="/tmp/edgebench-fixture-accuracy")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--markdown", action="store_true", help="print the table as markdown (docs/evaluation.md)")
    args = ap.parse_args()
    out = Path(args.out)
    table = []
    for name in args.fixtures.split(","):
        built = trained_fixtures.build(name, out / "fixtures" / name)
        print(f"{name}: trained to {100 * built.train_accuracy:.1f} % on its training clips", flush=True)
        result = api.evaluate(model=str(built.model_yaml), dataset=built.dataset, weights=built.weights,
                              config=pipeline_yaml(out / "fixtures" / name, built.calibration, args.threads),
                              out=out / "runs")
        table += rows(name, result)
    if args.markdown:
        print("| " + " | ".join(HEADER) + " |\n|" + "---|" * len(HEADER))
        for row in table:
            print("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    else:
        widths = [max(len(r[i]) for r in table + [HEADER]) for i in range(len(HEADER) - 1)]
        for row in [HEADER] + table:
            print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    bad = [r for r in table if failing(r)]
    print(f"{len(table)} rows, {len(bad)} outside their bound or failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
