"""What a wrong clip sampling protocol costs: a net trained on uniform clips, scored by `edgebench evaluate` (eager)
with each `preprocess.sampling` declared; prints top-1 overall and per class, and the demo's agreement.

    python benchmarks/sampling_protocols.py [--per-class 20] [--out DIR]

The blinking-disk set of tests/sampling_fixture.py (H.264, 16 frames at 8 fps): a fast blink (period 4
frames), a slow one (period 8) and a steady disk; the net sees 8 frames.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench import api
from edgebench.demo import classify
from edgebench.evaluation.dataset import load_dataset
from tests.evaluation_model import BLINKS
from tests.sampling_fixture import build_blink_fixture


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-class", type=int, default=20, help="held-out videos per class")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    args = ap.parse_args()
    folder = args.out or Path(tempfile.mkdtemp(prefix="sampling-protocols-"))
    start = time.perf_counter()
    fx = build_blink_fixture(folder, per_class=args.per_class)
    print(f"trained on uniform clips of {3 * 24} videos in {time.perf_counter() - start:.1f} s "
          f"(training accuracy {fx.train_accuracy:.0%}); scoring {3 * args.per_class} held-out videos")
    config = folder / "pipeline.yaml"
    config.write_text("formats: {}\nthreads: 1\n")  # eager only
    videos = load_dataset(fx.dataset, BLINKS)
    for sampling, yaml in fx.yamls.items():
        result = api.evaluate(str(yaml), fx.dataset, clips_per_video=1, config=config, out=folder / sampling,
                              weights=fx.weights)
        (eager,) = result.accuracy
        with np.load(eager.predictions_path) as saved:
            pred, targets = saved["video_pred"], saved["targets"]
        per_class = ", ".join(f"{name} {np.sum((pred == targets) & (targets == i))}/{np.sum(targets == i)}"
                              for i, name in enumerate(BLINKS))
        demo = [classify(Path(v.path), str(yaml), str(fx.weights), top=1).top[0][0] for v in videos]
        agree = sum(d == BLINKS[p] for d, p in zip(demo, pred))
        print(f"declared {sampling:11s}: eager top-1 {eager.top1:5.1f} % ({per_class}); "
              f"demo agrees with evaluate on {agree}/{len(videos)} videos")


if __name__ == "__main__":
    main()
