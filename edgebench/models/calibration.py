"""Calibration clips for int8 / w8a16 exports: real video through the model's sampler, or seeded random.

`calibration.videos` names video files, folders of them, folder-per-class trees (`<root>/<label>/<video>`)
and evaluate's CSV manifests (`path,label[,start_s,end_s]`). The clips are picked class-balanced and
seeded: the classes in turn, each class's videos in a seeded order; each picked video gives clips of
the model's own sampling (`preprocess.sampling`, models/sampling.py) at seeded random places, as a
training loader would draw them. Parity and evaluation take evenly spaced clips of the same sampler,
so the two are of one kind and, from the same video, rarely the same clips (one uniform clip spans a
whole video: there they coincide). Random clips come from a separate stream (`RANDOM_STREAM`),
never parity's `default_rng(parity.seed)`.
The set is saved once per (model inputs, calibration config, chosen videos) as an .npz in the
artifact cache; its sha256 goes into the cache key of every artifact calibrated on it.
"""

from __future__ import annotations

import logging
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.config import CalibrationConfig, PreprocessConfig, stable_hash
from edgebench.errors import UserError
from edgebench.evaluation.dataset import VIDEO_SUFFIXES, Video, read_entries
from edgebench.hashing import file_sha256
from edgebench.models import sampling
from edgebench.records import ModelRef, atomic_path

log = logging.getLogger(__name__)

RANDOM_STREAM = 0xCA11B  # second entropy word: calibration's random draws are never parity's default_rng(seed)
LOOSE = ""  # the class of video files given one by one or lying loose in a folder


@dataclass(frozen=True)
class CalibrationSet:
    """A saved set of calibration clips: where, its sha256, where the clips came from, how many, which method."""

    path: str
    sha256: str
    source: str  # "video:bikes.mp4,carphone_pristine.mp4" | "video:12 videos of 4 classes from train" | "random"
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


def calibration_videos(entries: list[str]) -> list[Video]:
    """Every video the entries name, with its class: files, folders (loose videos and <label>/<video> subfolders)
    and CSV manifests; a missing path or one that holds no video is a UserError."""
    found: list[Video] = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_file() and path.suffix.lower() == ".csv":
            rows = read_entries(path)
        elif path.is_file():
            rows = [(str(path), LOOSE, None, None)]
        elif path.is_dir():
            loose = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES
                           and not p.name.startswith("."))
            rows = [(str(p), LOOSE, None, None) for p in loose] + read_entries(path)
        else:
            raise UserError(f"calibration.videos: no such file or folder {entry}")
        if not rows:
            raise UserError(f"calibration.videos: {entry} holds no video (neither video files nor <label>/<video> "
                            f"subfolders; suffixes {', '.join(sorted(VIDEO_SUFFIXES))})")
        found += [Video(p, label, -1, start, end) for p, label, start, end in rows]
    classes = sorted({v.label for v in found})
    return [Video(v.path, v.label, classes.index(v.label), v.start_s, v.end_s) for v in found]


def pick_videos(videos: list[Video], count: int, seed: int) -> list[tuple[Video, int]]:
    """Which videos the `count` clips come from and how many from each: the classes in turn, each class's videos
    in a seeded order, starting over when a class runs out (a video picked twice gives two clips)."""
    rng = np.random.default_rng([seed, RANDOM_STREAM])
    by_class: dict[int, list[Video]] = {}
    for v in videos:
        by_class.setdefault(v.target, []).append(v)
    orders = [[vs[i] for i in rng.permutation(len(vs))] for _, vs in sorted(by_class.items())]
    uses: Counter[Video] = Counter()
    for i in range(count):
        order = orders[i % len(orders)]
        uses[order[(i // len(orders)) % len(order)]] += 1
    return list(uses.items())


def video_clips(picks: list[tuple[Video, int]], pre: PreprocessConfig, seed: int) -> np.ndarray:
    """The picked videos' clips through the model's sampler at seeded random places: N x 1 x 3 x T x crop x crop."""
    from edgebench.models.video import decode_video, sample_clips, to_model_input

    rng = np.random.default_rng([seed, RANDOM_STREAM, 1])
    parts = []
    for video, count in picks:
        try:
            decoded = decode_video(video.path, video.start_s, video.end_s)
        except UserError as e:
            raise UserError(f"calibration.videos: {e}") from None
        parts.append(to_model_input(sample_clips(decoded, pre, count, rng)))
    return np.concatenate(parts)[:, None]  # each clip gets a batch axis of 1


def random_clips(ref: ModelRef, count: int, seed: int) -> np.ndarray:
    """`count` clips uniform in [0, 1] from calibration's own random stream, each with the input's shape."""
    rng = np.random.default_rng([seed, RANDOM_STREAM])
    return rng.random((count, *ref.inputs[0].shape), dtype=np.float32)


def describe(picks: list[tuple[Video, int]], entries: list[str]) -> str:
    """Where the clips came from, for rows: the files when few and unlabelled, else counts of videos and classes."""
    paths = sorted({v.path for v, _ in picks})
    classes = {v.label for v, _ in picks} - {LOOSE}
    if not classes and len(paths) <= 3:
        return "video:" + ",".join(Path(p).name for p in paths)
    sources = ",".join(Path(e).name for e in entries)
    return f"video:{len(paths)} videos of {len(classes) or 1} classes from {sources}"


def set_key(ref: ModelRef, cfg: CalibrationConfig, pre: PreprocessConfig | None, picks: list[tuple[Video, int]]) -> str:
    """What decides the clips: the model config and input shape, the sampler, the calibration config, the picked
    videos' bytes and windows."""
    return stable_hash({"config": ref.config_hash, "inputs": [list(t.shape) for t in ref.inputs],
                        "preprocess": pre.model_dump(mode="json") if pre else None, "sampler": sampling.VERSION,
                        "calibration": cfg.model_dump(mode="json"),
                        "videos": [(Path(v.path).name, file_sha256(Path(v.path)), v.start_s, v.end_s, n)
                                   for v, n in picks]})


def make_calibration(ref: ModelRef, cfg: CalibrationConfig, cache_dir: Path) -> CalibrationSet:
    """The calibration set for `ref`, made once and saved under <cache_dir>/<model>/calibration-<key>.npz."""
    from edgebench.models.video import preprocess_of

    picks = pick_videos(calibration_videos(cfg.videos), cfg.clips, cfg.seed) if cfg.videos else []
    pre = preprocess_of(ref) if picks else None  # random clips need no sampler
    path = Path(cache_dir) / ref.name / f"calibration-{set_key(ref, cfg, pre, picks)[:16]}.npz"
    intact = _intact(path, ref)
    if path.exists() and not intact:
        log.warning("calibration cache: %s is damaged; making it again", path)
    if not intact:
        clips = video_clips(picks, pre, cfg.seed) if picks else random_clips(ref, cfg.clips, cfg.seed)
        if clips.shape[1:] != tuple(ref.inputs[0].shape):
            raise UserError(f"calibration: clips of shape {clips.shape[1:]} do not fit input "
                            f"{ref.inputs[0].name} {ref.inputs[0].shape}")
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, clips=clips.astype(np.float32))
    return CalibrationSet(str(path), file_sha256(path), describe(picks, cfg.videos) if picks else "random",
                          cfg.clips, cfg.method)


def _intact(path: Path, ref: ModelRef) -> bool:
    """The saved set loads and holds clips of the input's shape (a truncated file does not)."""
    try:
        with np.load(path) as data:
            return data["clips"].shape[1:] == tuple(ref.inputs[0].shape)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return False
