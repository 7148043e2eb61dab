"""One weight altered per conv layer, one layer at a time, in real fp32 files: does `edgebench check` fail every
altered file (exit 1) and does `--localize` name the altered layer; does every correct file pass (issue 23).

    .venv/bin/python benchmarks/weight_sweep.py [--models resnet_mixed] [--fixtures tiny_motion]
        [--formats onnx,tflite] [--sample N] [--int8 onnx,tflite,executorch] [--bugs 3]
        [--correct resnet_mixed,r3d_18,r2plus1d_18] [--correct-formats ...] [--cache DIR]

For each model (full input shape) and format, the fp32 artifact comes from the export cache; for every conv
of the form it was exported from (or N spread over the depth with --sample), a copy with the conv's element
of largest |w| raised by half the tensor's max |w| (tests/weight_edits.py) is checked by the real command,
`edgebench check FILE --model M --localize` in a child process with the default configuration. --fixtures adds
trained fixtures (noise_floors.fixture_model). --int8 does the same for the int8 files of those formats with
one conv's weight scales x2 (tests/quant_bugs.py), after checking the correct int8 file. With --correct, the
unaltered fp32 files of those models (and of the fixtures) in --correct-formats are checked the same way and
must pass. Prints one line per file (exit code, output PSNR, the layer blamed and by which rule) and totals.
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

from benchmarks.noise_floors import fixture_model  # noqa: E402
from edgebench import catalogue  # noqa: E402
from edgebench.config import PipelineConfig  # noqa: E402
from edgebench.converters.export import export_artifact  # noqa: E402
from edgebench.models.source import build_module, resolve_model  # noqa: E402
from tests import weight_edits  # noqa: E402

FORMATS = tuple(catalogue.formats())  # every format of the catalogue
SHARED_VIDEOS = ROOT.parent / "shared" / "data"


@dataclass
class Checked:
    """What one `edgebench check --localize` said about one file."""

    code: int
    psnr: str
    blamed: str
    reason: str
    seconds: float


def check(path: Path, ref, out: Path, *more: str) -> Checked:
    """`edgebench check PATH --model M [--weights W] --localize ...` as a command; the first row of its results.csv."""
    cmd = [str(Path(sys.executable).with_name("edgebench")), "check", str(path), "--model", ref.config_path,
           "--localize", "--out", str(out), *more]
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


def same_layer(blamed: str, expected: str) -> bool:
    """The blamed reference layer is the one an exporter recorded (it may add a wrapper's prefix)."""
    return bool(blamed) and (expected == blamed or expected.endswith("." + blamed))


def int8_bugs(model, fmt: str, cfg: PipelineConfig, cache: Path, work: Path, bugs: int, totals: dict) -> None:
    """The correct int8 file, then copies with one conv's weight scales x2 (tests/quant_bugs.py), `bugs` convs
    spread over the depth: each must fail `check --precision int8 --localize` and be blamed on that conv. A
    fixture is calibrated on its own videos and judged on one of them (one kind of clip: docs/parity.md)."""
    import yaml

    from edgebench.models.lowering import LOWERED
    from tests import quant_bugs

    ref, videos, calibration_videos = model
    calibration = cfg.calibration.model_copy(update={"videos": [str(calibration_videos)]}) \
        if calibration_videos else cfg.calibration
    a = export_artifact(ref, fmt, "int8", cfg.converter_options.get(fmt), cache, cfg.export_timeout_s,
                        calibration=calibration)
    if not a.ok:
        print(f"{ref.name} {fmt} int8: export {a.status}: {a.reason[:200]}", flush=True)
        return
    folder = work / f"{ref.name}-{fmt}-int8"
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "pipeline.yaml"
    config.write_text(yaml.safe_dump({"parity": {"random_clips": 0, "video": str(videos[0])}} if calibration_videos else {}))
    args = ("--precision", "int8", "--config", str(config))
    c = check(Path(a.path), ref, folder / "out-correct", *args)
    totals["correct"] += 1
    totals["passed"] += c.code == 0
    print(f"{ref.name} {fmt} int8 ({a.calibration}): correct file exit {c.code}, psnr {c.psnr} dB"
          + ("" if c.code == 0 else f": {c.reason[:300]}"), flush=True)
    for k in spread(list(range(quant_bugs.conv_count(Path(a.path), fmt))), bugs):
        bad = folder / f"scale-{k}" / Path(a.path).name
        bad.parent.mkdir()
        expected = quant_bugs.WRONG_SCALE[fmt](Path(a.path), bad, conv_index=k) or \
            quant_bugs.tflite_conv_layer(Path(a.path), k, build_module(ref, lowered=a.form == LOWERED))  # PT2E keeps no paths
        c = check(bad, ref, bad.parent / "out", *args)
        named = same_layer(c.blamed, expected)
        totals["altered"] += 1
        totals["failed"] += c.code == 1
        totals["named"] += named
        print(f"  conv {k:2d} scales x2 ({expected:30s}) exit {c.code}  psnr {c.psnr:>6s} dB  blamed "
              f"{c.blamed or '-':30s} ({rule_of(c.reason)}) {'ok' if named and c.code == 1 else 'MISSED'}  "
              f"{c.seconds:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet_mixed")
    ap.add_argument("--fixtures", default="", help="trained fixtures to add: tiny_motion (tests/evaluation_fixture.py) or tests/trained_fixtures.py names")
    ap.add_argument("--formats", default="onnx,tflite")
    ap.add_argument("--sample", type=int, default=0, help="convs per file, spread over the depth (0: every conv)")
    ap.add_argument("--correct", default="", help="models whose unaltered files must pass (e.g. resnet_mixed,r3d_18)")
    ap.add_argument("--correct-formats", default=",".join(FORMATS))
    ap.add_argument("--int8", default="", help="formats whose int8 files get one conv's scales x2 (onnx,tflite,executorch)")
    ap.add_argument("--bugs", type=int, default=3, help="int8 convs altered per file, spread over the depth")
    ap.add_argument("--cache", default="/tmp/edgebench-noise/cache")
    args = ap.parse_args()
    cfg = PipelineConfig()
    cache = Path(args.cache)
    totals = dict.fromkeys(("altered", "failed", "named", "correct", "passed"), 0)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        models = [(resolve_model(m), sorted(SHARED_VIDEOS.glob("*.mp4")), None) for m in args.models.split(",") if m]
        models += [fixture_model(name, work) for name in args.fixtures.split(",") if name]
        for model in models:
            for fmt in [f for f in args.formats.split(",") if f]:
                sweep(model[0], fmt, cfg, cache, work, args.sample, totals)
            for fmt in [f for f in args.int8.split(",") if f]:
                int8_bugs(model, fmt, cfg, cache, work, args.bugs, totals)
        fixtures = [m[0] for m in models if m[2]]
        checked = [resolve_model(m) for m in args.correct.split(",") if m] + (fixtures if args.correct else [])
        for ref in checked:
            for fmt in args.correct_formats.split(","):
                correct(ref, fmt, cfg, cache, work, totals)
    print(f"\naltered files: {totals['altered']}, failed (exit 1) {totals['failed']}, altered layer blamed "
          f"{totals['named']}; correct files: {totals['correct']}, passed (exit 0) {totals['passed']}; "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
