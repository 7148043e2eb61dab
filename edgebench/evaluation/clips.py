"""K clips per video through the model's own sampler and preprocessing, decoded once and cached as uint8 arrays."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from rich.console import Console
from rich.progress import Progress

from edgebench.config import PreprocessConfig, stable_hash
from edgebench.errors import UserError
from edgebench.evaluation.dataset import Video
from edgebench.hashing import file_sha256
from edgebench.models import sampling
from edgebench.records import atomic_path

if TYPE_CHECKING:
    from edgebench.models.video import DecodedVideo

log = logging.getLogger(__name__)


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


def decode(video: Video) -> DecodedVideo:
    """The video's frames, only those inside its time window when it has one, and its frame rate."""
    from edgebench.models.video import decode_video

    return decode_video(video.path, video.start_s, video.end_s)


def cache_key(file_sha256: str, video: Video, cfg: PreprocessConfig, clips: int) -> str:
    """What decides a video's clips: its bytes, the preprocessing (sampling and fps included), the clip count,
    the time window and the sampler's version."""
    return stable_hash({"file": file_sha256, "preprocess": cfg.model_dump(mode="json"), "clips": clips,
                        "window": [video.start_s, video.end_s], "sampler": sampling.VERSION})


def cached_clips(video: Video, cfg: PreprocessConfig, clips: int, cache_dir: Path) -> Path:
    """The .npy of this video's clips, decoded only when no cached file has the same key."""
    if not Path(video.path).is_file():
        raise UserError(f"video {video.path}: no such file")
    key = cache_key(file_sha256(Path(video.path)), video, cfg, clips)
    path = Path(cache_dir) / key[:2] / f"{key}.npy"
    if not path.exists():
        from edgebench.models.video import sample_clips

        arr = sample_clips(decode(video), cfg, clips)
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

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)
