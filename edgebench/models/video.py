"""Real clips from a video file, preprocessed exactly as torchvision's VideoClassification."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from edgebench.config import PreprocessConfig
from edgebench.errors import UserError, reason_of

log = logging.getLogger(__name__)


def decode_frames(path: str | Path) -> np.ndarray:
    """All frames of the first video stream as uint8 RGB, T x H x W x 3."""
    import av

    path = Path(path)
    if not path.is_file():
        raise UserError(f"video {path}: no such file")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"video {path}: no video stream")
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    except av.FFmpegError as e:
        raise UserError(f"video {path}: cannot decode ({reason_of(e)})") from None
    if not frames:
        raise UserError(f"video {path}: no decodable frames")
    return np.stack(frames)


def sample_indices(total: int, frames: int, clips: int, clip: int) -> np.ndarray:
    """`frames` indices spread uniformly over segment `clip` of `clips` equal segments."""
    start, stop = total * clip / clips, total * (clip + 1) / clips
    return np.linspace(start, stop - 1, frames).round().astype(int).clip(0, total - 1)


def preprocess(frames: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """T x H x W x 3 uint8 -> 3 x T x crop x crop float32 in [0, 1] (mean/std happen inside the model).

    The steps of torchvision's VideoClassification preset before its normalize, with the same
    functions: bilinear resize of the uint8 frames (antialias off), center crop, scale to [0, 1].
    """
    import torchvision.transforms.functional as TF

    x = torch.from_numpy(frames).permute(0, 3, 1, 2)  # T, C, H, W
    x = TF.resize(x, list(cfg.resize), interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
    x = TF.center_crop(x, [cfg.crop, cfg.crop])
    x = TF.convert_image_dtype(x, torch.float)
    return x.permute(1, 0, 2, 3).contiguous().numpy()


def read_clips(path: str | Path, cfg: PreprocessConfig, clips: int = 1) -> np.ndarray:
    """`clips` preprocessed clips from the video, N x 3 x T x crop x crop, values in [0, 1]."""
    frames = decode_frames(path)
    if len(frames) < cfg.frames:
        log.warning("video %s has %d frames, fewer than %d: looping it to fill the clip", path, len(frames), cfg.frames)
        frames = np.concatenate([frames] * (cfg.frames // len(frames) + 1))
    clips = max(1, min(clips, len(frames) // cfg.frames))
    return np.stack([preprocess(frames[sample_indices(len(frames), cfg.frames, clips, i)], cfg) for i in range(clips)])
