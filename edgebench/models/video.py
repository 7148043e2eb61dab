"""Real clips from a video file: decoded with PyAV, sampled by models/sampling.py, preprocessed exactly as
torchvision's VideoClassification."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgebench.config import PreprocessConfig
from edgebench.errors import UserError, reason_of
from edgebench.models import sampling
from edgebench.models.registry import load_model_config
from edgebench.records import ModelRef

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodedVideo:
    """The frames of a video (or of its time window) and the stream's frame rate."""

    path: str
    frames: np.ndarray  # T x H x W x 3 uint8 RGB
    fps: float | None  # the stream's average rate; None when the container does not say


def decode_video(path: str | Path, start_s: float | None = None, end_s: float | None = None) -> DecodedVideo:
    """All frames of the first video stream, or those whose time is in [start_s, end_s) when a window is given."""
    import av

    path = Path(path)
    if not path.is_file():
        raise UserError(f"video {path}: no such file")
    windowed = start_s is not None or end_s is not None
    start, end = start_s or 0.0, end_s if end_s is not None else float("inf")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"video {path}: no video stream")
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.guessed_rate
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)
                      if not windowed or (f.time is not None and start <= f.time < end)]
    except av.FFmpegError as e:
        raise UserError(f"video {path}: cannot decode ({reason_of(e)})") from None
    if not frames:
        where = f" between {start:g} s and {end:g} s" if windowed else ""
        raise UserError(f"video {path}: no decodable frames{where}")
    return DecodedVideo(str(path), np.stack(frames), float(rate) if rate else None)


def preprocess(frames: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """T x H x W x 3 uint8 -> 3 x T x crop x crop float32 in [0, 1] (mean/std happen inside the model).

    The steps of torchvision's VideoClassification preset before its normalize, with the same
    functions: bilinear resize of the uint8 frames (antialias off), center crop, scale to [0, 1].
    """
    import torchvision.transforms.functional as TF

    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # T, C, H, W
    size = [cfg.resize] if isinstance(cfg.resize, int) else list(cfg.resize)  # one number: the shorter side
    x = TF.resize(x, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
    x = TF.center_crop(x, [cfg.crop, cfg.crop])
    x = TF.convert_image_dtype(x, torch.float)
    return x.permute(1, 0, 2, 3).contiguous().numpy()


def sample_clips(video: DecodedVideo, cfg: PreprocessConfig, clips: int = 1,
                 rng: np.random.Generator | None = None) -> np.ndarray:
    """`clips` clips chosen by the sampler, resized and cropped: uint8 N x 3 x T x crop x crop (k / 255 = model input).

    Evenly spaced clips, or at seeded random places with `rng` (calibration). Each frame is resized
    once, even where clips overlap; uint8 is exact: the preprocessing makes k / 255 values.
    """
    total = len(video.frames)
    if cfg.fps and video.fps is None:
        raise UserError(f"video {video.path}: no frame rate in the file to resample to {cfg.fps:g} fps from")
    if sampling.frames_needed(total, video.fps, cfg) < cfg.frames:
        log.warning("video %s has %d frames (%s), fewer than %d: %s", video.path, total, sampling.describe(cfg),
                    cfg.frames, "repeating frames" if cfg.sampling == "uniform" else "looping it to fill the clip")
    index = sampling.clip_indices(total, video.fps, cfg, clips, rng)
    used, where = np.unique(index, return_inverse=True)
    u8 = np.rint(preprocess(video.frames[used], cfg) * 255.0).astype(np.uint8)  # 3 x U x crop x crop
    return np.stack([u8[:, row] for row in where.reshape(index.shape)])


def to_model_input(clips_u8: np.ndarray) -> np.ndarray:
    """uint8 clips back to the float32 [0, 1] values the preprocessing produced (k / 255, exactly)."""
    return clips_u8.astype(np.float32) / np.float32(255.0)


def read_clips(path: str | Path, cfg: PreprocessConfig, clips: int = 1) -> np.ndarray:
    """`clips` evenly spaced clips of the video, float32 N x 3 x T x crop x crop in [0, 1]."""
    return to_model_input(sample_clips(decode_video(path), cfg, clips))


def preprocess_of(ref: ModelRef) -> PreprocessConfig:
    """The model's preprocessing, with frames and crop taken from its input shape when that is overridden (tests)."""
    pre = load_model_config(ref.config_path).preprocess
    shape = tuple(ref.inputs[0].shape)
    if len(shape) != 5:
        raise UserError(f"{ref.name}: input {ref.inputs[0].name} {shape} is not N x C x T x H x W: no video clips fit it")
    _, _, frames, height, _ = shape
    if (frames, height) == (pre.frames, pre.crop):
        return pre
    scale = height / pre.crop
    sides = [max(height, round(side * scale)) for side in ([pre.resize] if isinstance(pre.resize, int) else pre.resize)]
    resize = sides[0] if isinstance(pre.resize, int) else tuple(sides)
    return pre.model_copy(update={"frames": frames, "crop": height, "resize": resize})
