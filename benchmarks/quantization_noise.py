"""The noise of correct quantization on real clips against injected quantization bugs (docs/parity.md).

    .venv/bin/python benchmarks/quantization_noise.py [--out DIR] [--videos ../shared/data]

Full resnet_mixed, parity clips: 2 each from every video in --videos (plus 3 seeded random ones with
--random); calibration on other clips of the same videos (8, min-max), or on seeded random clips with
--random-calibration. Prints, per artifact and bug, the worst-clip metrics.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.quantization import parity_inputs  # noqa: E402
from edgebench.config import CalibrationConfig, PipelineConfig  # noqa: E402
from edgebench.converters.export import export_artifact, mislabelled  # noqa: E402
from edgebench.models.source import resolve_model  # noqa: E402
from tests import quant_bugs  # noqa: E402


def line(name: str, outputs, reference, tol) -> None:
    from edgebench.parity.verdict import judge

    v = judge(outputs, reference, "int8", tol)
    m = v.metrics[0] if v.metrics else None
    figures = (f"max abs {m.max_abs_err:.3e}  1-cos {1 - m.cosine:.2e}  psnr {m.psnr_db:5.1f} dB  "
               f"top1 {m.top1_agree:.2f}  top5 {m.top5_agree:.2f}") if m else v.reason
    print(f"  {name:38s} {figures}  -> {v.status} {v.reason if m else ''}")


def run(session, inputs) -> dict[str, np.ndarray]:
    from edgebench.parity.check import run_clips

    return run_clips(session, inputs)


def main() -> None:
    from edgebench.converters.onnx import OnnxConverter, quantize
    from edgebench.models.calibration import make_calibration
    from edgebench.parity.check import reference_outputs
    from edgebench.runtimes.registry import get_runtime

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/edgebench-quantization")
    ap.add_argument("--videos", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--random", action="store_true", help="add 3 seeded random parity clips")
    ap.add_argument("--random-calibration", action="store_true")
    args = ap.parse_args()
    cfg = PipelineConfig()
    cache = Path(args.out) / "cache"
    ref = resolve_model("resnet_mixed")
    inputs = parity_inputs(ref, sorted(Path(args.videos).glob("*.mp4")), random=3 if args.random else 0)
    reference = reference_outputs(ref, inputs, args.threads)
    calibration = CalibrationConfig(videos=[] if args.random_calibration else [args.videos], clips=8)
    ort = get_runtime("onnxruntime")
    onnx_opts = OnnxConverter().merge_options(cfg.converter_options.get("onnx"))

    for precision in ("int8", "w8a16"):
        tol = cfg.parity.tolerances[precision]
        a = export_artifact(ref, "onnx", precision, onnx_opts, cache, 900, calibration=calibration)
        fp32 = export_artifact(ref, "onnx", "fp32", onnx_opts, cache, 900)
        print(f"onnx {precision} ({a.calibration}), tolerance {tol.model_dump(exclude_none=True)}")
        with ort.load(a, ref, args.threads) as s:
            line("correct", run(s, inputs), reference, tol)
        with tempfile.TemporaryDirectory() as tmp:
            bugs = {"wrong scale (one conv x2)": quant_bugs.onnx_wrong_scale,
                    "wrong scale (one conv x1.25)": lambda s_, d_: quant_bugs.onnx_wrong_scale(s_, d_, factor=1.25),
                    "per-channel scales reversed (one conv)": quant_bugs.onnx_scales_reversed,
                    "swapped output channels 0/1": quant_bugs.onnx_swapped_channel,
                    "stem input channels reversed": quant_bugs.onnx_stem_channels_reversed}
            for name, inject in bugs.items():
                bad = Path(tmp) / "bad.onnx"
                inject(Path(a.path), bad)
                with ort.load(replace(a, path=str(bad)), ref, args.threads) as s:
                    line(name, run(s, inputs), reference, tol)
            clips = make_calibration(ref, calibration, cache).load(ref)
            opts = {**onnx_opts, "calibration_method": "minmax"}
            for name, calib, exclude in (("calibration on 0..255 clips", quant_bugs.garbage(clips), ()),
                                         ("one conv left float", clips, (quant_bugs.conv_names(Path(fp32.path))[8],))):
                bad = Path(tmp) / "bad.onnx"
                quantize(Path(fp32.path), bad, calib, precision, opts, exclude=exclude)
                dtypes = OnnxConverter().compute_dtypes(bad)
                with ort.load(replace(a, path=str(bad)), ref, args.threads) as s:
                    line(name, run(s, inputs), reference, tol)
                print(f"  {'':38s} census {dtypes}: {mislabelled(precision, dtypes) or 'labelled right'}")

    mil = get_runtime("coreml-mil")
    tol = cfg.parity.tolerances["w8"]
    a = export_artifact(ref, "coreml", "w8", cfg.converter_options.get("coreml"), cache, 900)
    print(f"coreml w8 on coreml-mil, tolerance {tol.model_dump(exclude_none=True)}: {a.status} {a.reason}")
    if a.ok:
        for name, kind in (("correct", None), ("wrong scale (one conv x2)", "scale"),
                           ("per-channel scales reversed (one conv)", "reverse"), ("swapped output channels 0/1", "swap"),
                           ("stem input channels reversed", "stem")):
            with mil.load(a, ref, args.threads) as s:
                if kind:
                    quant_bugs.mil_weight_bug(s, kind)
                line(name, run(s, inputs), reference, tol)


if __name__ == "__main__":
    main()
