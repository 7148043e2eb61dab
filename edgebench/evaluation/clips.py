"""K clips per video through the model's own preprocessing, decoded once and cached as uint8 arrays."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from edgebench.config import PreprocessConfig, stable_hash
from edgebench.errors import UserError, reason_of
from edgebench.evaluation.dataset import Video
from edgebench.records import atomic_path

log = logging.getLogger(__name__)
SAMPLING = "uniform-starts-v1"  # part of the cache key: a change of the sampling below invalidates cached clips


@dataclass(frozen=True)
class VideoClips:
    """One decoded video: where its clips are cached and which label it has."""

    path: str
    target: int
    clips_path: str  # .npy, uint8 N x 3 x T x crop x crop (values / 255 are the model's [0, 1] input)
    clips: int


@dataclass(frozen=True)
class EvalSet:
    """The clips every artifact of one model is scored on, and what could not be read."""

    model: str
    dataset: str
    labels: tuple[str, ...]
    videos: tuple[VideoClips, ...]
    unreadable: tuple[tuple[str, str], ...]  # (path, one-line reason)
    clips_per_video: int
    unreadable_list: str = ""  # a text file naming every unreadable video and why

    @property
    def targets(self) -> np.ndarray:
        return np.array([v.target for v in self.videos], dtype=np.int64)

    @property
    def video_of_clip(self) -> np.ndarray:
        """For each clip, in run order, the index of its video."""
        return np.repeat(np.arange(len(self.videos)), [v.clips for v in self.videos])


def clip_starts(total: int, frames: int, clips: int) -> np.ndarray:
    """First frame of each of `clips` runs of `frames` consecutive frames, spaced uniformly over the video."""
    return np.linspace(0, max(total - frames, 0), clips).round().astype(int)


def decode(video: Video) -> np.ndarray:
    """The video's frames (T x H x W x 3 uint8), only those inside its time window when it has one."""
    from edgebench.models.video import decode_frames

    if video.start_s is None and video.end_s is None:
        return decode_frames(video.path)
    import av

    start, end = video.start_s or 0.0, video.end_s if video.end_s is not None else float("inf")
    try:
        with av.open(video.path) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)
                      if f.time is not None and start <= f.time < end]
    except (av.FFmpegError, IndexError) as e:  # IndexError: no video stream
        raise UserError(f"video {video.path}: cannot decode ({reason_of(e)})") from None
    if not frames:
        raise UserError(f"video {video.path}: no frames between {start:g} s and {end:g} s")
    return np.stack(frames)


def make_clips(frames: np.ndarray, cfg: PreprocessConfig, clips: int) -> np.ndarray:
    """`clips` clips of cfg.frames consecutive frames, resized and cropped: uint8 N x 3 x T x crop x crop."""
    from edgebench.models.video import preprocess

    if len(frames) < cfg.frames:  # a short video is looped to fill one clip, as the parity clips are
        frames = np.concatenate([frames] * (cfg.frames // len(frames) + 1))
    index = clip_starts(len(frames), cfg.frames, clips)[:, None] + np.arange(cfg.frames)
    used, where = np.unique(index, return_inverse=True)  # resize each frame once, even where clips overlap
    pixels = preprocess(frames[used], cfg)  # 3 x U x crop x crop, float k / 255
    u8 = np.rint(pixels * 255.0).astype(np.uint8)
    return np.stack([u8[:, where.reshape(index.shape)[i]] for i in range(len(index))])


def to_model_input(clips_u8: np.ndarray) -> np.ndarray:
    """uint8 clips back to the float32 [0, 1] values the preprocessing produced (k / 255, exactly)."""
    return clips_u8.astype(np.float32) / np.float32(255.0)


def cache_key(file_sha256: str, video: Video, cfg: PreprocessConfig, clips: int) -> str:
    return stable_hash({"file": file_sha256, "preprocess": cfg.model_dump(mode="json"), "clips": clips,
                        "window": [video.start_s, video.end_s], "sampling": SAMPLING})


def cached_clips(video: Video, cfg: PreprocessConfig, clips: int, cache_dir: Path) -> Path:
    """The .npy of this video's clips, decoded only when no cached file has the same key."""
    from edgebench.hashing import file_sha256

    if not Path(video.path).is_file():
        raise UserError(f"video {video.path}: no such file")
    key = cache_key(file_sha256(Path(video.path)), video, cfg, clips)
    path = Path(cache_dir) / key[:2] / f"{key}.npy"
    if not path.exists():
        arr = make_clips(decode(video), cfg, clips)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, arr)
    return path


def build_eval_set(model: str, dataset: str, labels: tuple[str, ...], videos: list[Video], cfg: PreprocessConfig,
                   clips: int, cache_dir: Path) -> EvalSet:
    """Decode (or find in the cache) every video once; unreadable ones are listed, never fatal."""
    done: list[VideoClips] = []
    unreadable: list[tuple[str, str]] = []
    with progress(len(videos), f"{model}: decoding clips") as step:
        for v in videos:
            try:
                path = cached_clips(v, cfg, clips, cache_dir)
                count = int(np.load(path, mmap_mode="r").shape[0])
                done.append(VideoClips(v.path, v.target, str(path), count))
            except Exception as e:  # noqa: BLE001 - a broken file is a counted skip, whatever the decoder raised
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                unreadable.append((v.path, reason))
                log.warning("skipping unreadable video: %s", reason)
            step()
    if not done:
        raise UserError(f"dataset {dataset}: none of its {len(videos)} videos could be read "
                        f"(first: {unreadable[0][1] if unreadable else '?'})")
    return EvalSet(model, str(dataset), labels, tuple(done), tuple(unreadable), clips)


@contextmanager
def progress(total: int, description: str) -> Iterator:
    """A rich progress bar on a terminal (stderr), nothing when piped or logged; yields `advance()`."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
