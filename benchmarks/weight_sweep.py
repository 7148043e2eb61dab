"""One weight altered per conv layer, one layer at a time, in real fp32 files: does `edgebench check` fail every
altered file (exit 1) and does `--localize` name the altered layer; does every correct file pass (issue 23).

    .venv/bin/python benchmarks/weight_sweep.py [--models resnet_mixed] [--fixture] [--formats onnx,tflite]
        [--sample N] [--correct resnet_mixed,r3d_18,r2plus1d_18] [--correct-formats ...] [--cache DIR]

For each model (full input shape) and format, the fp32 artifact comes from the export cache; for every conv
of the form it was exported from (or N spread over the depth with --sample), a copy with the conv's element
of largest |w| raised by half the tensor's max |w| (tests/weight_edits.py) is checked by the real command,
`edgebench check FILE --model M --localize` in a child process with the default configuration. --fixture adds
the trained tiny_motion model of tests/evaluation_fixture.py. With --correct, the unaltered files of those
models (and of the fixture) in --correct-formats are checked the same way and must pass. Prints one line per
file (exit code, output PSNR, the layer blamed and by which rule) and the totals.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edgebench.config import PipelineConfig  # noqa: E402
from edgebench.converters.export import export_artifact  # noqa: E402
from edgebench.models.source import build_module, resolve_model  # noqa: E402
from tests import weight_edits  # noqa: E402

FORMATS = ("torchscript", "onnx", "tflite", "coreml", "executorch")


@dataclass
class Checked:
    """What one `edgebench check --localize` said about one file."""

    code: int
    psnr: str
    blamed: str
    reason: str
    seconds: float


def check(path: Path, ref, out: Path) -> Checked:
    """`edgebench check PATH --model M [--weights W] --localize` as a command; the first row of its results.csv."""
    cmd = [str(Path(sys.executable).with_name("edgebench")), "check", str(path), "--model", ref.config_path,
           "--localize", "--out", str(out)]
    if ref.weights_path:
        cmd += ["--weights", ref.weights_path]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    rows = list(csv.DictReader((out / "latest" / "results.csv").open())) if (out / "latest" / "results.csv").exists() else []
    parity = [r for r in rows if r.get("psnr_db")]
    if not parity:
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [""]
        return Checked(done.returncode, "", "", tail[0][:200], seconds)
    row = parity[0]
    return Checked(done.returncode, f"{float(row['psnr_db']):.1f}", row.get("first_divergent_layer", ""),
                   row.get("reason", ""), seconds)


def spread(names: list[str], n: int) -> list[str]:
    """n names spread evenly over the list (first and last included), or all of them."""
    if not n or n >= len(names):
        return names
    return [names[round(i * (len(names) - 1) / (n - 1))] for i in range(n)]


def rule_of(reason: str) -> str:
    for marker, rule in (("the layers before", "jump"), ("under its floor", "floor"), ("the largest jump", "largest")):
        if marker in reason:
            return rule
    return "-"


def sweep(ref, fmt: str, cfg: PipelineConfig, cache: Path, work: Path, sample: int, totals: dict) -> None:
    from edgebench.models.lowering import LOWERED

    a = export_artifact(ref, fmt, "fp32", cfg.converter_options.get(fmt), cache, cfg.export_timeout_s)
    if not a.ok:
        print(f"{ref.name} {fmt}: export {a.status}: {a.reason[:200]}", flush=True)
        return
    module = build_module(ref, lowered=a.form == LOWERED)
    names = spread(list(weight_edits.conv_layers(module)), sample)
    print(f"{ref.name} {fmt} fp32 ({a.form}): {len(names)} convs altered one at a time", flush=True)
    for name in names:
        folder = work / f"{ref.name}-{fmt}-{name}"
        altered = weight_edits.altered_copy(a.path, fmt, module, name, folder / "file")
        c = check(altered, ref, folder / "out")
        named = c.blamed == name
        totals["altered"] += 1
        totals["failed"] += c.code == 1
        totals["named"] += named
        print(f"  {name:32s} exit {c.code}  psnr {c.psnr:>6s} dB  blamed {c.blamed or '-':32s} "
              f"({rule_of(c.reason)}) {'ok' if named and c.code == 1 else 'MISSED'}  {c.seconds:.0f} s", flush=True)
        if not (named and c.code == 1):
            print(f"      {c.reason[:400]}")


def correct(ref, fmt: str, cfg: PipelineConfig, cache: Path, work: Path, totals: dict) -> None:
    a = export_artifact(ref, fmt, "fp32", cfg.converter_options.get(fmt), cache, cfg.export_timeout_s)
    if not a.ok:
        print(f"  correct {ref.name} {fmt}: export {a.status}: {a.reason[:200]}", flush=True)
        return
    c = check(Path(a.path), ref, work / f"correct-{ref.name}-{fmt}")
    totals["correct"] += 1
    totals["passed"] += c.code == 0
    print(f"  correct {ref.name:12s} {fmt:12s} exit {c.code}  psnr {c.psnr:>6s} dB  "
          f"{'ok' if c.code == 0 else 'FALSE ALARM: ' + c.reason[:300]}  {c.seconds:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet_mixed")
    ap.add_argument("--fixture", action="store_true", help="add the trained tiny_motion model of the tests")
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--sample", type=int, default=0, help="convs per file, spread over the depth (0: every conv)")
    ap.add_argument("--correct", default="", help="models whose unaltered files must pass (e.g. resnet_mixed,r3d_18)")
    ap.add_argument("--correct-formats", default=",".join(FORMATS))
    ap.add_argument("--cache", default="/tmp/edgebench-noise/cache")
    args = ap.parse_args()
    cfg = PipelineConfig()
    cache = Path(args.cache)
    totals = dict.fromkeys(("altered", "failed", "named", "correct", "passed"), 0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = [resolve_model(m) for m in args.models.split(",") if m]
        fixture = None
        if args.fixture:
            from tests.evaluation_fixture import build_fixture

            fx = build_fixture(work / "fixture")
            fixture = resolve_model(str(fx.model_yaml), str(fx.weights))
            models.append(fixture)
        for ref in models:
            for fmt in args.formats.split(","):
                sweep(ref, fmt, cfg, cache, work, args.sample, totals)
        checked = [resolve_model(m) for m in args.correct.split(",") if m] + ([fixture] if fixture and args.correct else [])
        for ref in checked:
            for fmt in args.correct_formats.split(","):
                correct(ref, fmt, cfg, cache, work, totals)
    print(f"\naltered files: {totals['altered']}, failed (exit 1) {totals['failed']}, altered layer named "
          f"{totals['named']}; correct files: {totals['correct']}, passed (exit 0) {totals['passed']}; "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
