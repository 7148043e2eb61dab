"""A small labelled set of real video files with a learnable signal, and a tiny 3D CNN trained on it.

Each video shows bright bars on a noisy background moving right, left, down or up (the class),
encoded with PyAV (H.264) in the folder-per-class layout. The model is a user model (a model
YAML whose source is tests/evaluation_model.py) trained for a few seconds on a separate training
set decoded through edgebench's own clip sampling and preprocessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.evaluation_model import DIRECTIONS

SIZE, FRAMES, FPS = 40, 32, 8  # 40x40 frames, 4 s; clips of 8 frames resized to 32x32
MEAN, STD = (0.3, 0.3, 0.3), (0.3, 0.3, 0.3)  # the model YAML's: the export-friendly form normalizes inside
STEP = {"moving right": (0, 1), "moving left": (0, -1), "moving down": (1, 0), "moving up": (-1, 0)}
MODEL_FILE = Path(__file__).with_name("evaluation_model.py")


@dataclass(frozen=True)
class EvalFixture:
    """Paths of the fixture: the model YAML, trained weights, the evaluation set and the training accuracy."""

    model_yaml: Path
    pipeline_yaml: Path
    weights: Path
    dataset: Path
    train_accuracy: float


def bars_video(direction: str, rng: np.random.Generator) -> np.ndarray:
    """FRAMES x SIZE x SIZE x 3 uint8: bright bars across the frame moving in `direction`, random period,
    speed, phase and colour, on a noisy dark background."""
    dy, dx = STEP[direction]
    period = rng.uniform(8.0, 12.0)
    speed = rng.uniform(1.0, 0.3 * period)  # under half a period per frame: the motion is not aliased
    phase = rng.uniform(0, period)
    colour = rng.uniform(160, 255, size=3)
    rows, cols = np.mgrid[0:SIZE, 0:SIZE]
    along = rows if dy else cols  # bars lie across the direction of motion
    frames = rng.normal(40, 12, size=(FRAMES, SIZE, SIZE, 3))
    for t in range(FRAMES):
        offset = (dy or dx) * speed * t
        bright = ((along - offset - phase) % period) < period / 2
        frames[t][bright] = colour
    return np.clip(frames, 0, 255).astype(np.uint8)


def write_video(path: Path, frames: np.ndarray, fps: int = FPS) -> None:
    """Encode RGB frames as an H.264 .mp4 with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        stream.options = {"crf": "12"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def make_dataset(root: Path, per_class: int, seed: int) -> Path:
    """<root>/<direction with _>/<n>.mp4 for every direction (folder names use _: matched to the labels' spaces)."""
    rng = np.random.default_rng(seed)
    for direction in DIRECTIONS:
        for i in range(per_class):
            write_video(root / direction.replace(" ", "_") / f"{i:02d}.mp4", bars_video(direction, rng))
    return root


def write_model_yaml(folder: Path, clips_per_video: int = 3) -> Path:
    """A model YAML for the tiny net: 1x3x8x32x32 input in [0, 1], four labels, its evaluation section."""
    import yaml

    spec = {
        "name": "tiny_motion", "description": "4-way motion direction, trained on synthetic videos (tests)",
        "source": f"{MODEL_FILE}:tiny_video_net", "seed": 0,
        "inputs": [{"name": "video", "shape": [1, 3, 8, 32, 32]}],
        "outputs": [{"name": "logits", "shape": [1, len(DIRECTIONS)]}],
        "labels": list(DIRECTIONS),
        "preprocess": {"frames": 8, "resize": [32, 32], "crop": 32, "mean": list(MEAN), "std": list(STD)},
        "export_friendly": {"normalize_inside": True, "mean_pool": True, "fold_batchnorm": True},
        "evaluation": {"clips_per_video": clips_per_video},
    }
    path = folder / "tiny_motion.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_pipeline_yaml(folder: Path) -> Path:
    """Every fp32 format (Core ML through coreml-mil on Linux) and every runtime: the formats the test scores."""
    import yaml

    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"formats": {f: ["fp32"] for f in ("torchscript", "onnx", "coreml", "tflite")},
                                    "threads": 1}))
    return path


def training_clips(root: Path, clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Clips (float [0, 1]) and targets of every video under root, through edgebench's clip sampling."""
    from edgebench.config import PreprocessConfig
    from edgebench.evaluation.clips import decode
    from edgebench.evaluation.dataset import load_dataset
    from edgebench.models.video import sample_clips, to_model_input

    pre = PreprocessConfig(frames=8, resize=(32, 32), crop=32)
    xs, ys = [], []
    for v in load_dataset(root, DIRECTIONS):
        c = to_model_input(sample_clips(decode(v), pre, clips))
        xs.append(c)
        ys += [v.target] * len(c)
    return np.concatenate(xs), np.array(ys)


def train(x: np.ndarray, y: np.ndarray, steps: int = 60, seed: int = 0, factory=None):
    """The tiny net (or `factory()`) trained with Adam on normalized (x, y); returns it with its training accuracy."""
    import torch

    from tests.evaluation_model import tiny_video_net

    torch.manual_seed(seed)
    model = (factory or tiny_video_net)()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    xt, yt = (torch.from_numpy(x) - MEAN[0]) / STD[0], torch.from_numpy(y)  # what Normalized does inside
    g = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, len(xt), (16,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
    return model, accuracy


def build_fixture(folder: Path, per_class: int = 10, train_per_class: int = 6) -> EvalFixture:
    """Datasets, model YAML and trained weights under `folder` (a few seconds on two cores)."""
    import torch

    make_dataset(folder / "train", train_per_class, seed=1)
    dataset = make_dataset(folder / "eval", per_class, seed=2)
    model, accuracy = train(*training_clips(folder / "train", clips=3))
    weights = folder / "tiny_motion.pt"
    torch.save(model.state_dict(), weights)
    return EvalFixture(write_model_yaml(folder), write_pipeline_yaml(folder), weights, dataset, accuracy)
