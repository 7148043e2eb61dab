"""The noise of correct files, output and per layer: what the fp32 bounds and the per-layer floors are set from.

    .venv/bin/python benchmarks/noise_floors.py [--models resnet_mixed,r3d_18,r2plus1d_18]
        [--fixtures tiny_motion,bn_maxpool,...] [--precisions fp32,fp16,int8,w8,w8a16]
        [--cache DIR] [--videos ../shared/data] [--threads 2]

Every format x precision of the list that a converter makes (export cache in --cache) of every model at its
full input shape is run on every runtime that executes it over 3 seeded random clips and 2 clips of each
video (calibration: the default seeded random clips), and judged against the configured bound. Each trained
fixture of tests/trained_fixtures.py is judged on 2 clips of one evaluation video per class and calibrated on
its own calibration videos (calibration and parity clips of one kind, docs/parity.md). Each artifact's
per-layer table comes from localization (its format's tapping runtime, first clip). Prints one line per (artifact, runtime), one per artifact's
layers, and per precision the lowest output PSNR and layer SQNR measured beside the bound and floor
configured (docs/parity.md). Figures taken while other work loads the machine are the same: noise here is
arithmetic, not timing.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quantization import parity_inputs  # noqa: E402
from edgebench import catalogue  # noqa: E402
from edgebench.config import PipelineConfig  # noqa: E402
from edgebench.converters.export import export_artifact  # noqa: E402
from edgebench.models.source import resolve_model  # noqa: E402

FORMATS = tuple(catalogue.formats())  # every format of the catalogue
RUNTIME_VARIANTS = {"litert": [{}, {"xnnpack": False}]}  # LiteRT's XNNPACK and builtin kernels differ


@dataclass
class Lowest:
    """The lowest figure of a precision and where it was measured."""

    value: float = math.inf
    where: str = ""
    seen: int = 0
    failed: list[str] = field(default_factory=list)

    def add(self, value: float, where: str) -> None:
        self.seen += 1
        if value < self.value:
            self.value, self.where = value, where


def fixture_model(name: str, folder: Path):
    """A trained fixture built in `folder`: its ModelRef, one evaluation video per class (its parity clips) and
    its calibration folder (a folder per class). `tiny_motion` is tests/evaluation_fixture.py's model (calibrated
    on its evaluation set, which is all it has); other names come from tests/trained_fixtures.py."""
    if name == "tiny_motion":
        from tests.evaluation_fixture import build_fixture

        fx = build_fixture(folder / name)
        model_yaml, weights, dataset, calibration = fx.model_yaml, fx.weights, fx.dataset, fx.dataset
    else:
        from tests.trained_fixtures import build

        built = build(name, folder / name)
        model_yaml, weights, dataset, calibration = built.model_yaml, built.weights, built.dataset, built.calibration
    videos = [sorted(d.glob("*.mp4"))[0] for d in sorted(dataset.iterdir()) if d.is_dir()]
    return resolve_model(str(model_yaml), str(weights)), videos, calibration


def judge_runtimes(artifact, ref, inputs, reference, tol, threads: int, outputs: Lowest) -> bool:
    """Every runtime of the format (LiteRT with and without XNNPACK); True when a row failed."""
    from edgebench.parity.check import check_parity
    from edgebench.runtimes.registry import runtimes_for

    failed = False
    for runtime in runtimes_for(artifact.format):
        for options in RUNTIME_VARIANTS.get(runtime.name, [{}]):
            r = check_parity(artifact, runtime.name, ref, inputs, reference, tol, threads, options or None)
            label = runtime.name + ("" if not options else " " + ",".join(f"{k}={v}" for k, v in options.items()))
            where = f"{ref.name} {artifact.format} {artifact.precision} {label}"
            if r.psnr_db is None:
                print(f"  {label:28s} {r.status}: {r.reason[:150]}")
                continue
            outputs.add(r.psnr_db, where)
            if r.status != "passed":
                failed = True
                outputs.failed.append(f"{where}: {r.reason[:200]}")
            print(f"  {label:28s} max abs {r.max_abs_err:.2e}  psnr {r.psnr_db:6.1f} dB  1-cos {1 - r.cosine:.1e}  "
                  f"top1 {r.top1_agree:.2f}  -> {r.status}")
    return failed


def layer_figures(artifact, ref, inputs, cfg, layers: Lowest, failed: bool) -> None:
    """The artifact's per-layer table: its lowest SQNR and largest jump; for a failing file, its culprit."""
    from edgebench.parity.localize import first_clip, localize

    try:
        loc = localize(artifact, ref, first_clip(inputs), cfg.localize)
    except Exception as e:  # noqa: BLE001 - a format without taps here: say so, go on
        print(f"  layers: localization failed: {type(e).__name__}: {str(e)[:200]}")
        return
    worst = min(loc.layers, key=lambda r: r.sqnr_db)
    jump = max(loc.layers, key=lambda r: r.jump)
    layers.add(worst.sqnr_db, f"{ref.name} {artifact.format} {artifact.precision} {worst.name}")
    blamed, rule = loc.blame(failed=False)
    if blamed:
        layers.failed.append(f"{ref.name} {artifact.format} {artifact.precision}: {loc.summary(failed=False)}")
    print(f"  layers: {len(loc.layers)} paired {loc.mapping}, unmatched {len(loc.unmatched)}; lowest SQNR "
          f"{worst.sqnr_db:.1f} dB at {worst.name}; largest jump {jump.jump:.3g}x at {jump.name}; "
          f"{'a layer jumps: ' + blamed if blamed else 'no layer jumps'} ({loc.seconds:.0f} s)")
    if failed:
        print(f"  failing rows blamed on: {loc.summary(failed=True)}")


def main() -> None:
    from edgebench.parity.check import reference_outputs
    from edgebench.parity.layers import sqnr_db

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="resnet_mixed,r3d_18,r2plus1d_18")
    ap.add_argument("--fixtures", default="", help="trained fixtures to add: tiny_motion (tests/evaluation_fixture.py) or tests/trained_fixtures.py names")
    ap.add_argument("--precisions", default="fp32")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--cache", default="/tmp/edgebench-noise/cache")
    ap.add_argument("--videos", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    cfg = PipelineConfig()
    precisions = args.precisions.split(",")
    outputs: dict[str, Lowest] = defaultdict(Lowest)
    layers: dict[str, Lowest] = defaultdict(Lowest)
    models = [(resolve_model(m), sorted(Path(args.videos).glob("*.mp4")), None) for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        models += [fixture_model(name, Path(tmp)) for name in args.fixtures.split(",") if name]
        for ref, videos, calibration_videos in models:
            inputs = parity_inputs(ref, videos, random=0 if calibration_videos else 3)
            reference = reference_outputs(ref, inputs, args.threads)
            calibration = cfg.calibration.model_copy(update={"videos": [str(calibration_videos)]}) \
                if calibration_videos else cfg.calibration
            for fmt in args.formats.split(","):
                for precision in precisions:
                    a = export_artifact(ref, fmt, precision, cfg.converter_options.get(fmt), Path(args.cache),
                                        cfg.export_timeout_s, calibration=calibration)
                    print(f"{ref.name} {fmt} {precision}: {a.status} {a.reason[:150]}", flush=True)
                    if not a.ok:
                        continue
                    failed = judge_runtimes(a, ref, inputs, reference, cfg.parity.tolerances[precision],
                                            args.threads, outputs[precision])
                    layer_figures(a, ref, inputs, cfg, layers[precision], failed)
    print("\nper precision: lowest output PSNR (worst clip) and lowest layer SQNR (first clip) of correct files")
    for precision in precisions:
        o, lay = outputs[precision], layers[precision]
        bound = cfg.parity.tolerances[precision].min_psnr_db
        floor = sqnr_db(cfg.localize.rel_floor[precision])
        print(f"  {precision}: output {o.value:.1f} dB over {o.seen} rows ({o.where}); bound {bound} dB, "
              f"margin {o.value - bound:.1f} dB; layers {lay.value:.1f} dB over {lay.seen} files ({lay.where}); "
              f"floor {floor:.1f} dB, margin {lay.value - floor:.1f} dB")
        for line in o.failed + lay.failed:
            print(f"    FAILED {line}")


if __name__ == "__main__":
    main()
