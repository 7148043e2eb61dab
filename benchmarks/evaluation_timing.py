"""Time the two costs of an evaluation of full-size resnet_mixed, and extrapolate them to 100 videos.

1. Decoding one real video and making its K clips (PyAV + torchvision's preset, edgebench.evaluation.clips),
   with no clip cache: what the first run over a dataset pays once per video.
2. One eager forward of resnet_mixed on one 1x3x16x112x112 clip (random weights: speed does not
   depend on them), what every (artifact, runtime) pays per clip.

Prints seconds per video and the extrapolation: 100 videos x (decode + K forwards) for the first
runtime, 100 x K forwards for each further runtime (the clips come from the cache). The other
runtimes' per-clip cost differs from eager's by their latency ratio (see the latency table).

    .venv/bin/python benchmarks/evaluation_timing.py [--video ../shared/data/bikes.mp4] [--clips 5] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from edgebench.config import PROJECT_ROOT
from edgebench.evaluation.clips import decode
from edgebench.evaluation.dataset import Video
from edgebench.models.registry import load_model_config
from edgebench.models.sampling import describe
from edgebench.models.source import resolve_model
from edgebench.models.video import sample_clips, to_model_input
from edgebench.runtimes.registry import get_runtime
from edgebench.runtimes.torch_eager import eager_artifact


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--video", default=str(PROJECT_ROOT.parent / "shared" / "data" / "bikes.mp4"))
    ap.add_argument("--clips", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    pre = load_model_config("resnet_mixed").preprocess
    video = Video(args.video, "", 0)
    decode_s = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        clips = sample_clips(decode(video), pre, args.clips)
        decode_s.append(time.perf_counter() - start)
    frames = len(decode(video).frames)
    ref = resolve_model("resnet_mixed")
    session = get_runtime("torch").load(eager_artifact(ref), ref, args.threads)
    x = to_model_input(clips[:1])  # 1 x 3 x 16 x 112 x 112
    session.run({"video": x})  # warm-up
    forward_s = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        session.run({"video": x})
        forward_s.append(time.perf_counter() - start)
    d, f = statistics.median(decode_s), statistics.median(forward_s)
    print(f"video {Path(args.video).name}: {frames} frames; {args.clips} clips ({describe(pre)})")
    print(f"decode + clips: {d:.2f} s per video (median of {args.repeats}, no cache)")
    print(f"eager forward:  {f:.2f} s per clip (median of {args.repeats}, threads {session.options['threads']})")
    print(f"100 videos, first runtime (decode + {args.clips} clips each): {100 * (d + args.clips * f) / 60:.1f} min")
    print(f"100 videos, each further runtime ({args.clips} clips each, cached): {100 * args.clips * f / 60:.1f} min")


if __name__ == "__main__":
    main()
