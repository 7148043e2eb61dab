"""The one temporal sampler: which frames of a decoded video make each clip (`preprocess.sampling`).

Every consumer of clips goes through `clip_indices`: the demo, evaluation, parity's video clips,
calibration, `check` and the Python API, so a model is fed clips the way its weights were trained.

- `uniform`: `frames` indices spread evenly over the video (or its time window), first and last
  frame included; K clips = K equal segments, each sampled the same way.
- `consecutive`: runs of `frames` consecutive frames, after resampling the video to `fps` when set
  (torchvision's VideoClips: frame floor(i * rate / fps)); K clips start at
  floor(linspace(0, last start, K)), as torchvision's UniformClipSampler picks them.

Evenly spaced clips are what the demo, evaluation and parity take. Calibration passes a generator
and gets windows of the same kind at seeded random places (training's RandomClipSampler).
A video shorter than one clip is looped (consecutive) or has frames repeated (uniform).
"""

from __future__ import annotations

import numpy as np

from edgebench.config import PreprocessConfig

VERSION = "sampler-v2"  # in the keys of cached clips: a change below invalidates them


def resampled(total: int, rate: float | None, fps: float | None) -> np.ndarray:
    """Indices of the frames kept when a video of `total` frames at `rate` fps is resampled to `fps`."""
    if fps is None or rate is None or rate == fps:
        return np.arange(total)
    step = rate / fps
    if step.is_integer():  # torchvision slices every step-th frame then, keeping one more at the end in some videos
        return np.arange(0, total, int(step))
    kept = int(np.floor(total * fps / rate))
    return np.minimum(np.floor(np.arange(kept) * step).astype(int), total - 1)


def clip_indices(total: int, rate: float | None, pre: PreprocessConfig, clips: int = 1,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """clips x pre.frames indices into the decoded frames: evenly spaced clips, or random ones when `rng` is given."""
    if total < 1 or clips < 1:
        raise ValueError(f"no clip from {total} frames ({clips} clips asked)")
    if pre.sampling == "uniform":
        return _uniform(total, pre.frames, clips, rng)
    return _consecutive(resampled(total, rate, pre.fps), pre.frames, clips, rng)


def _uniform(total: int, frames: int, clips: int, rng: np.random.Generator | None) -> np.ndarray:
    """Windows of total / clips frames, `frames` indices spread over each (K evenly spaced windows = K segments)."""
    length = total / clips
    starts = np.linspace(0, total - length, clips) if rng is None else rng.uniform(0, total - length, clips)
    rows = [np.linspace(s, s + length - 1, frames) for s in starts]
    return np.clip(np.rint(rows), 0, total - 1).astype(int)


def _consecutive(kept: np.ndarray, frames: int, clips: int, rng: np.random.Generator | None) -> np.ndarray:
    """Runs of `frames` consecutive kept frames, starting evenly spaced (or at random) over the possible starts."""
    if len(kept) < frames:  # too short for one clip: looped, so every clip is the same run
        kept = np.resize(kept, frames)
    last = len(kept) - frames
    starts = np.floor(np.linspace(0, last, clips)).astype(int) if rng is None else rng.integers(0, last + 1, clips)
    return kept[starts[:, None] + np.arange(frames)]


def frames_needed(total: int, rate: float | None, pre: PreprocessConfig) -> int:
    """How many frames the video has for the sampler (after resampling): fewer than pre.frames means repeats."""
    return total if pre.sampling == "uniform" else len(resampled(total, rate, pre.fps))


def describe(pre: PreprocessConfig) -> str:
    """One line for `info`, logs and docs: `consecutive at 15 fps, 16 frames` or `uniform, 8 frames`."""
    rate = f" at {pre.fps:g} fps" if pre.fps else (" at the file's frame rate" if pre.sampling == "consecutive" else "")
    return f"{pre.sampling}{rate}, {pre.frames} frames"
