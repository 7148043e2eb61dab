"""Where artifacts and remote results travel between machines: a local folder or any fsspec URL."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fsspec


class Storage:
    """A folder tree at `url` (a local path, file://, s3://bucket/prefix, ...)."""

    def __init__(self, url: str):
        self.url = url.rstrip("/")
        self.fs, self.root = fsspec.core.url_to_fs(self.url)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def _parent(self, key: str) -> None:
        self.fs.makedirs(self._path(key).rsplit("/", 1)[0], exist_ok=True)

    def url_of(self, key: str) -> str:
        return f"{self.url}/{key}"

    def put(self, local: Path, key: str) -> str:
        """Upload a file or a folder (recursively) under `key`; returns its URL. Skips what is there."""
        target = self._path(key)
        if not self.fs.exists(target):
            self._parent(key)
            tmp = f"{target}.tmp{os.getpid()}"
            self.fs.put(str(local), tmp, recursive=Path(local).is_dir())
            self.fs.mv(tmp, target, recursive=True)
        return self.url_of(key)

    def get(self, key: str, local: Path) -> Path:
        """Download `key` to `local` unless it is already there."""
        local = Path(local)
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + f".tmp{os.getpid()}")
            self.fs.get(self._path(key), str(tmp), recursive=self.fs.isdir(self._path(key)))
            os.replace(tmp, local)
        return local

    def write_json(self, key: str, data) -> str:
        tmp = self._path(key) + f".tmp{os.getpid()}"
        self._parent(key)
        with self.fs.open(tmp, "w") as f:
            json.dump(data, f, default=str)
        self.fs.mv(tmp, self._path(key))
        return self.url_of(key)

    def read_json(self, key: str):
        with self.fs.open(self._path(key)) as f:
            return json.load(f)
