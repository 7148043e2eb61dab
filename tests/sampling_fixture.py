"""Blinking disks whose class depends on how frames are sampled: the two-protocols symptom of issue 23.

Three classes of 16-frame H.264 videos (32x32, 8 fps): a disk blinking with a period of 4 frames, one
blinking with a period of 8 frames, and one that stays lit. The tiny net is trained on 8 frames spread
uniformly over each video (`preprocess.sampling: uniform`), through edgebench's own sampler. Uniformly
sampled, the fast blink alternates lit / dark; 8 consecutive frames of it show two lit, two dark, which
is what the slow blink looks like when sampled uniformly: scored with consecutive clips, the fast
class is lost while the model is right on every video sampled the way it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.evaluation_fixture import MEAN, STD, train, write_video
from tests.evaluation_model import BLINKS

SIZE, FRAMES, FPS, CLIP = 32, 16, 8, 8
PERIOD = {"blinking fast": 4, "blinking slow": 8, "steady": None}
MODEL_FILE = Path(__file__).with_name("evaluation_model.py")


@dataclass(frozen=True)
class BlinkFixture:
    """The trained weights, the labelled set it is scored on and a model YAML per sampling protocol."""

    weights: Path
    dataset: Path
    yamls: dict[str, Path]  # "uniform" | "consecutive" -> model YAML declaring it
    train_accuracy: float


def disk_video(name: str, rng: np.random.Generator) -> np.ndarray:
    """FRAMES x SIZE x SIZE x 3 uint8: a disk of random place, size and colour on a noisy dark background,
    lit on the first half of each period (random phase), or always."""
    period = PERIOD[name]
    phase = int(rng.integers(0, period)) if period else 0
    cy, cx = rng.uniform(10, SIZE - 10, size=2)
    radius = rng.uniform(6, 9)
    colour = rng.uniform(150, 255, size=3)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    disk = (rows - cy) ** 2 + (cols - cx) ** 2 < radius ** 2
    frames = rng.normal(40, 12, size=(FRAMES, SIZE, SIZE, 3))
    for t in range(FRAMES):
        if period is None or (t + phase) % period < period / 2:
            frames[t][disk] = colour
    return np.clip(frames, 0, 255).astype(np.uint8)


def make_set(root: Path, per_class: int, seed: int) -> Path:
    """<root>/<class with _>/<n>.mp4 for every class."""
    rng = np.random.default_rng(seed)
    for name in BLINKS:
        for i in range(per_class):
            write_video(root / name.replace(" ", "_") / f"{i:02d}.mp4", disk_video(name, rng), fps=FPS)
    return root


def preprocess(sampling: str) -> dict:
    return {"sampling": sampling, "frames": CLIP, "resize": [SIZE, SIZE], "crop": SIZE,
            "mean": list(MEAN), "std": list(STD)}


def write_model_yaml(folder: Path, sampling: str) -> Path:
    """A model YAML for the blink net declaring `sampling`: 1x3x8x32x32 input in [0, 1], the three classes."""
    import yaml

    spec = {"name": f"blink_{sampling}", "source": f"{MODEL_FILE}:blink_net", "seed": 0,
            "inputs": [{"name": "video", "shape": [1, 3, CLIP, SIZE, SIZE]}],
            "outputs": [{"name": "logits", "shape": [1, len(BLINKS)]}],
            "labels": list(BLINKS), "preprocess": preprocess(sampling),
            "evaluation": {"clips_per_video": 1}}
    path = folder / f"blink_{sampling}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def training_clips(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly sampled clip per video (the whole video) through edgebench's sampler, and the targets."""
    from edgebench.config import PreprocessConfig
    from edgebench.evaluation.clips import decode
    from edgebench.evaluation.dataset import load_dataset
    from edgebench.models.video import sample_clips, to_model_input

    pre = PreprocessConfig(**preprocess("uniform"))
    videos = load_dataset(root, BLINKS)
    x = np.concatenate([to_model_input(sample_clips(decode(v), pre, 1)) for v in videos])
    return x, np.array([v.target for v in videos])


def build_blink_fixture(folder: Path, per_class: int = 8, train_per_class: int = 24) -> BlinkFixture:
    """Training and scoring sets, weights trained on uniform clips, a YAML per protocol (seconds on two cores)."""
    import torch

    from tests.evaluation_model import blink_net

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a net this small trains faster on one thread, above all on a busy host
    try:
        model, accuracy = train(*training_clips(make_set(folder / "train", train_per_class, seed=1)), steps=60,
                                factory=blink_net)
    finally:
        torch.set_num_threads(threads)
    weights = folder / "blink.pt"
    torch.save(model.state_dict(), weights)
    return BlinkFixture(weights, make_set(folder / "eval", per_class, seed=2),
                        {s: write_model_yaml(folder, s) for s in ("uniform", "consecutive")}, accuracy)
