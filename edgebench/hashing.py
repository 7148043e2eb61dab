"""sha256 of files, read in blocks: artifact folders, weights, videos and calibration sets all hash the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path


def update_with_file(h, path: Path):
    """Feed the file's bytes into the hash `h` (1 MiB at a time); returns `h`."""
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h


def file_sha256(path: Path) -> str:
    """The file's sha256, hex."""
    return update_with_file(hashlib.sha256(), path).hexdigest()
