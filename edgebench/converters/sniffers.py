"""Content checks: does a file (or folder) hold an artifact of a format, whatever its name? (`edgebench check`)"""

from __future__ import annotations

import zipfile
from pathlib import Path


def _identifier(path: Path) -> bytes:
    """Bytes 4..8 of a file: where a FlatBuffers file keeps its 4-character file identifier."""
    if not path.is_file():
        return b""
    with path.open("rb") as f:
        return f.read(8)[4:8]


def is_tflite(path: Path) -> bool:
    return _identifier(path) == b"TFL3"  # the file_identifier of LiteRT's schema


def is_pte(path: Path) -> bool:
    return _identifier(path) == b"ET12"  # the file_identifier of ExecuTorch's program.fbs


def is_mlpackage(path: Path) -> bool:
    return path.is_dir() and (path / "Manifest.json").exists()


def is_torchscript(path: Path) -> bool:
    """torch.jit.save's zip archive: it holds the module's code and constants.pkl (a torch.save checkpoint does not)."""
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.endswith("/constants.pkl") for name in archive.namelist())


def is_onnx(path: Path) -> bool:
    """A protobuf ONNX parses into a graph with nodes (external data is not read)."""
    import onnx  # 1 s to import: only when a file's name did not tell its format

    try:
        return path.is_file() and len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # noqa: BLE001 - not parseable as ONNX: another format
        return False
