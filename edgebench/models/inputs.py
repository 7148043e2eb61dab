"""The parity and benchmark inputs of a run: seeded random clips plus real clips, saved to replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.config import ParityConfig
from edgebench.records import ModelRef


def random_clips(ref: ModelRef, count: int, seed: int) -> np.ndarray:
    """`count` clips uniform in [0, 1], shaped like the model's first input (batch included)."""
    rng = np.random.default_rng(seed)
    shape = ref.inputs[0].shape
    return rng.random((count, *shape), dtype=np.float32)


def make_inputs(ref: ModelRef, cfg: ParityConfig) -> dict[str, np.ndarray]:
    """{"<input name>": clips x input shape}: random clips first, then clips from the video, if any."""
    from edgebench.models.registry import load_model_config

    clips = random_clips(ref, cfg.random_clips, cfg.seed)
    if cfg.video:
        from edgebench.models.video import read_clips

        pre = load_model_config(ref.config_path).preprocess
        real = read_clips(cfg.video, pre, cfg.video_clips)[:, None]  # each clip gets a batch axis of 1
        if real.shape[1:] == clips.shape[1:]:
            clips = np.concatenate([clips, real])
    return {ref.inputs[0].name: clips}


def save_inputs(path: Path, inputs: dict[str, np.ndarray]) -> None:
    from edgebench.records import atomic_path

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **inputs)


def load_inputs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
