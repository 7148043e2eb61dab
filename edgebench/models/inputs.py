"""The parity and benchmark inputs of a run: seeded random clips plus real clips, saved to replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.config import ParityConfig
from edgebench.errors import UserError
from edgebench.records import ModelRef, atomic_path


def random_clips(ref: ModelRef, count: int, seed: int) -> np.ndarray:
    """`count` clips uniform in [0, 1], shaped like the model's first input (batch included)."""
    rng = np.random.default_rng(seed)
    shape = ref.inputs[0].shape
    return rng.random((count, *shape), dtype=np.float32)


def make_inputs(ref: ModelRef, cfg: ParityConfig) -> dict[str, np.ndarray]:
    """{"<input name>": clips x input shape}: seeded random clips first, then the video's clips through the model's
    sampler (at the input's frames and size), if a video is set."""
    clips = random_clips(ref, cfg.random_clips, cfg.seed)
    if cfg.video:
        from edgebench.models.video import preprocess_of, read_clips

        real = read_clips(cfg.video, preprocess_of(ref), cfg.video_clips)[:, None]  # each clip: a batch axis of 1
        if real.shape[1:] != clips.shape[1:]:
            raise UserError(f"parity.video: clips of shape {real.shape[1:]} do not fit input "
                            f"{ref.inputs[0].name} {ref.inputs[0].shape}")
        clips = np.concatenate([clips, real])
    return {ref.inputs[0].name: clips}


def save_inputs(path: Path, inputs: dict[str, np.ndarray]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, **inputs)


def load_inputs(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
