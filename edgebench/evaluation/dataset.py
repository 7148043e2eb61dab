"""A labelled video set: a folder per class (UCF101 / HMDB51 / Kinetics layout) or a CSV manifest."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from edgebench.errors import UserError

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".3gp", ".flv", ".ogv"})
MANIFEST_COLUMNS = ("path", "label")  # required; start_s and end_s are optional


@dataclass(frozen=True)
class Video:
    """One labelled video: the file, the model's label index, and an optional time window."""

    path: str
    label: str  # the model's own spelling
    target: int  # index into the model's labels
    start_s: float | None = None
    end_s: float | None = None


def label_key(name: str) -> str:
    """Case, `_` and space insensitive: "Air_drumming" and "air drumming" are the same label."""
    return re.sub(r"[\s_]+", " ", name.strip()).lower()


def load_dataset(source: str | Path, labels: tuple[str, ...], max_videos: int | None = None) -> list[Video]:
    """The videos of a folder-per-class tree or a CSV manifest, labels matched to the model's by name."""
    source = Path(source)
    if not labels:
        raise UserError(f"dataset {source}: the model has no labels list to match the dataset's labels against")
    if not source.exists():
        raise UserError(f"dataset {source}: no such file or folder")
    entries = read_entries(source)
    if not entries:
        raise UserError(f"dataset {source}: no videos found (expected <root>/<label>/<video> with video files "
                        "such as .mp4 or .avi, or a CSV manifest path,label[,start_s,end_s])")
    index = {label_key(name): i for i, name in enumerate(labels)}
    unknown = sorted({label for _, label, *_ in entries if label_key(label) not in index})
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" (+{len(unknown) - 10} more)" if len(unknown) > 10 else "")
        raise UserError(f"dataset {source}: {len(unknown)} label(s) the model does not know: {shown}")
    videos = [Video(path, labels[index[label_key(label)]], index[label_key(label)], start, end)
              for path, label, start, end in entries]
    return balanced_subset(videos, max_videos) if max_videos else videos


def balanced_subset(videos: list[Video], count: int) -> list[Video]:
    """At most `count` videos taken round-robin over the classes (in file order): deterministic and balanced."""
    by_class: dict[int, list[Video]] = {}
    for v in videos:
        by_class.setdefault(v.target, []).append(v)
    queues = [iter(vs) for _, vs in sorted(by_class.items())]
    chosen: list[Video] = []
    while queues and len(chosen) < count:
        for q in list(queues):
            v = next(q, None)
            if v is None:
                queues.remove(q)
            elif len(chosen) < count:
                chosen.append(v)
    return sorted(chosen, key=lambda v: (v.target, v.path))


def read_entries(source: Path) -> list[tuple[str, str, float | None, float | None]]:
    """(path, label, start_s, end_s) of every video of a CSV manifest (a file) or a folder-per-class tree."""
    return _read_manifest(source) if source.is_file() else _read_folders(source)


def _read_folders(root: Path) -> list[tuple[str, str, None, None]]:
    return [(str(f), folder.name, None, None)
            for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
            for f in sorted(folder.iterdir())
            if f.is_file() and f.suffix.lower() in VIDEO_SUFFIXES and not f.name.startswith(".")]


def _read_manifest(path: Path) -> list[tuple[str, str, float | None, float | None]]:
    """Rows of `path,label[,start_s,end_s]`; relative paths are relative to the manifest's folder."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = [c.strip() for c in reader.fieldnames or []]
            missing = [c for c in MANIFEST_COLUMNS if c not in header]
            if missing:
                raise UserError(f"dataset {path}: missing column {', '.join(missing)} "
                                f"(header: {', '.join(header) or 'empty'}; expected path,label[,start_s,end_s])")
            rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"dataset {path}: cannot read the CSV manifest ({type(e).__name__}: {e})") from None
    out = []
    for line, row in enumerate(rows, start=2):
        if not row.get("path"):
            raise UserError(f"dataset {path}: line {line}: empty path")
        file = Path(row["path"])
        file = file if file.is_absolute() else path.parent / file
        out.append((str(file), row.get("label", ""), _seconds(row, "start_s", path, line), _seconds(row, "end_s", path, line)))
    return out


def _seconds(row: dict, column: str, path: Path, line: int) -> float | None:
    text = row.get(column, "")
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise UserError(f"dataset {path}: line {line}: column {column}: not a number: {text!r}") from None
