"""Calibration clips for int8 / w8a16 exports: real video through the model's preprocessing, or seeded random.

Never the parity clips: parity samples `frames` indices spread over equal segments of its video
and draws random clips from `default_rng(parity.seed)`; calibration takes windows of consecutive
frames at seeded random starts and draws from a separate random stream, so the two cannot coincide.
The set is saved once per (model inputs, calibration config, video files) as an .npz in the
artifact cache; its sha256 goes into the cache key of every artifact calibrated on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.config import CalibrationConfig, PreprocessConfig, stable_hash
from edgebench.errors import UserError
from edgebench.hashing import file_sha256
from edgebench.records import ModelRef, atomic_path

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
RANDOM_STREAM = 0xCA11B  # second entropy word: calibration's random clips are never parity's default_rng(seed)


@dataclass(frozen=True)
class CalibrationSet:
    """A saved set of calibration clips: where, its sha256, where the clips came from, how many, which method."""

    path: str
    sha256: str
    source: str  # "video:bikes.mp4,carphone_pristine.mp4" | "random"
    clips: int
    method: str

    @property
    def label(self) -> str:
        """What a row says: `video:bikes.mp4 x8 minmax 1a2b3c4d` or `random x8 minmax ...`."""
        return f"{self.source} x{self.clips} {self.method} {self.sha256[:8]}"

    def load(self, ref: ModelRef) -> list[dict[str, np.ndarray]]:
        """One dict {input name: clip with its batch axis} per clip."""
        with np.load(self.path) as data:
            clips = data["clips"]
        return [{ref.inputs[0].name: clip} for clip in clips]


def video_files(entries: list[str]) -> list[Path]:
    """The configured files, and the video files inside configured folders (sorted); a missing one is a UserError."""
    found: list[Path] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())
            if not inside:
                raise UserError(f"calibration.videos: folder {entry} holds no video ({', '.join(VIDEO_SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise UserError(f"calibration.videos: no such file or folder {entry}")
    return found


def preprocess_for(ref: ModelRef, pre: PreprocessConfig) -> PreprocessConfig:
    """The model's preprocessing, with frames and crop taken from the input shape when it is overridden (tests)."""
    _, _, frames, height, _ = ref.inputs[0].shape
    if (frames, height) == (pre.frames, pre.crop):
        return pre
    scale = height / pre.crop
    resize = (max(height, round(pre.resize[0] * scale)), max(height, round(pre.resize[1] * scale)))
    return pre.model_copy(update={"frames": frames, "crop": height, "resize": resize})


def video_clips(files: list[Path], pre: PreprocessConfig, count: int, seed: int) -> np.ndarray:
    """`count` clips, round robin over the files: `pre.frames` consecutive frames at seeded random starts."""
    from edgebench.models.video import decode_frames, preprocess

    rng = np.random.default_rng([seed, RANDOM_STREAM])
    decoded = [decode_frames(f) for f in files]
    clips = []
    for i in range(count):
        frames = decoded[i % len(decoded)]
        if len(frames) < pre.frames:
            frames = np.concatenate([frames] * (pre.frames // len(frames) + 1))
        start = int(rng.integers(0, len(frames) - pre.frames + 1))
        clips.append(preprocess(frames[start:start + pre.frames], pre)[None])  # batch axis of 1
    return np.stack(clips)


def random_clips(ref: ModelRef, count: int, seed: int) -> np.ndarray:
    """`count` clips uniform in [0, 1] from calibration's own random stream, each with the input's shape."""
    rng = np.random.default_rng([seed, RANDOM_STREAM])
    return rng.random((count, *ref.inputs[0].shape), dtype=np.float32)


def set_key(ref: ModelRef, cfg: CalibrationConfig, files: list[Path]) -> str:
    """What decides the clips: the model config and input shape, the calibration config, the videos' bytes."""
    return stable_hash({"config": ref.config_hash, "inputs": [list(t.shape) for t in ref.inputs],
                        "calibration": cfg.model_dump(mode="json"),
                        "videos": [(f.name, file_sha256(f)) for f in files]})


def make_calibration(ref: ModelRef, cfg: CalibrationConfig, cache_dir: Path) -> CalibrationSet:
    """The calibration set for `ref`, made once and saved under <cache_dir>/<model>/calibration-<key>.npz."""
    from edgebench.models.registry import load_model_config

    files = video_files(cfg.videos)
    path = Path(cache_dir) / ref.name / f"calibration-{set_key(ref, cfg, files)[:16]}.npz"
    source = "video:" + ",".join(f.name for f in files) if files else "random"
    if not path.exists():
        if files:
            clips = video_clips(files, preprocess_for(ref, load_model_config(ref.config_path).preprocess),
                                cfg.clips, cfg.seed)
        else:
            clips = random_clips(ref, cfg.clips, cfg.seed)
        if clips.shape[1:] != tuple(ref.inputs[0].shape):
            raise UserError(f"calibration: clips of shape {clips.shape[1:]} do not fit input "
                            f"{ref.inputs[0].name} {ref.inputs[0].shape}")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, clips=clips.astype(np.float32))
    return CalibrationSet(str(path), file_sha256(path), source, cfg.clips, cfg.method)

