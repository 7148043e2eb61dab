"""The repair fixture: OutlierNet trained for seconds on the moving-bars videos, then given an outlier channel.

The float model keeps its accuracy (the outlier is divided back by the next conv); its int8 files fail
parity in ONNX, TFLite and ExecuTorch. Used by tests/integration/test_repair*.py and benchmarks/repair_speed.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tests.evaluation_fixture import MEAN, STD, make_dataset, train, training_clips
from tests.evaluation_model import DIRECTIONS
from tests.outlier_model import NEXT_LAYER, OUTLIER_LAYER, add_outlier, outlier_net

MODEL_FILE = Path(__file__).with_name("outlier_model.py")
FORMATS = ("onnx", "tflite", "executorch")  # the toolchains whose int8 files the outlier breaks
CLIP_FRAMES = 8
# The layers a repair keeps in float, as localization names them (the export form wraps the net in `model`).
OUTLIER_LAYERS = (f"model.{OUTLIER_LAYER}", f"model.{NEXT_LAYER}")


@dataclass(frozen=True)
class OutlierFixture:
    """Paths: model YAML, pipeline YAML, trained weights with the outlier, the labelled set; training accuracy."""

    model_yaml: Path
    pipeline_yaml: Path
    weights: Path
    dataset: Path
    train_accuracy: float


def write_model_yaml(folder: Path, clips_per_video: int = 2) -> Path:
    """outlier_net on 1x3x8x32x32 clips in [0, 1], the four motion labels, normalization inside."""
    import yaml

    spec = {
        "name": "outlier_net", "description": "moving-bars net with an outlier channel (repair tests)",
        "source": f"{MODEL_FILE}:outlier_net", "seed": 0,
        "inputs": [{"name": "video", "shape": [1, 3, CLIP_FRAMES, 32, 32]}],
        "outputs": [{"name": "logits", "shape": [1, len(DIRECTIONS)]}],
        "labels": list(DIRECTIONS),
        "preprocess": {"frames": CLIP_FRAMES, "resize": [32, 32], "crop": 32, "mean": list(MEAN), "std": list(STD)},
        "evaluation": {"clips_per_video": clips_per_video},
    }
    path = folder / "outlier_net.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def write_pipeline_yaml(folder: Path) -> Path:
    """fp32 and int8 in the three formats, one thread each, the quick repair budget of the issue."""
    import yaml

    path = folder / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"formats": {f: ["fp32", "int8"] for f in FORMATS}, "threads": 1,
                                    "runtimes": ["torch", "onnxruntime", "litert", "executorch"]}))
    return path


def build_outlier_fixture(folder: Path, per_class: int = 6, train_per_class: int = 6) -> OutlierFixture:
    """Videos, YAMLs and the trained weights with the outlier under `folder` (seconds on two cores)."""
    import torch

    make_dataset(folder / "train", train_per_class, seed=1)
    dataset = make_dataset(folder / "eval", per_class, seed=2)
    x, y = training_clips(folder / "train", clips=3)
    for seed in range(4):  # a start whose ReLUs die learns nothing: the next seed (fixed order, reproducible)
        model, accuracy = train(x, y, steps=80, seed=seed, factory=outlier_net)
        if accuracy >= 0.9:
            break
    else:
        raise RuntimeError(f"OutlierNet did not learn the moving bars (training accuracy {accuracy:.2f})")
    weights = folder / "outlier_net.pt"
    torch.save(add_outlier(model, (torch.from_numpy(x) - MEAN[0]) / STD[0]).state_dict(), weights)
    return OutlierFixture(write_model_yaml(folder), write_pipeline_yaml(folder), weights, dataset, accuracy)
