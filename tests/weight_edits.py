"""One weight of one conv altered inside a real artifact file: the negative controls of the fp32 check and of
localization (tests, and benchmarks/weight_sweep.py).

The conv's element of largest |w| is raised by `share` x max|w| (issue 23: +50 %), where the file stores it:
the weight's bytes in one of the layouts converters write (as is: ONNX, Core ML, TorchScript; OHWI: TFLite
CONV_2D and XNNPACK; DHWIO: TFLite CONV_3D). A TorchScript archive gets its zip CRC mended, so the result is a
valid file with one wrong weight, as a converter bug would write it.
"""

from __future__ import annotations

import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np

SHARE = 0.5  # + this share of the tensor's max |w|
LAYOUTS = {4: [None, (0, 2, 3, 1)], 5: [None, (2, 3, 4, 1, 0)]}  # (O, I, ...) as stored: as is, OHWI, DHWIO


def conv_layers(module) -> dict[str, list[np.ndarray]]:
    """Module path -> the weight tensor(s) of every conv layer of `module`, in module order (a 2D-lowered
    Conv3d with summed taps holds one weight per temporal tap: models/lowering.py)."""
    import torch

    from edgebench.parity.localize import module_kind

    found = {}
    for name, m in module.named_modules():
        w = getattr(m, "weight", None)
        if name and module_kind(m) == "conv" and w is not None:
            parts = list(w) if isinstance(w, torch.nn.ParameterList) else [w]
            found[name] = [p.detach().numpy() for p in parts]
    return found


def _patch_zip_crc(path: Path, offset: int) -> None:
    """Recompute the CRC-32 of the archive member holding byte `offset`, in its local and central headers."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        infos = z.infolist()
    for info in infos:
        start = info.header_offset + 30 + len(info.filename.encode()) + \
            struct.unpack_from("<H", data, info.header_offset + 28)[0]  # the local header's extra field length
        if start <= offset < start + info.compress_size:
            crc = zlib.crc32(data[start:start + info.compress_size])
            struct.pack_into("<I", data, info.header_offset + 14, crc)
            central = data.find(b"PK\x01\x02" + data[info.header_offset + 4:info.header_offset + 6])
            while central >= 0 and struct.unpack_from("<I", data, central + 42)[0] != info.header_offset:
                central = data.find(b"PK\x01\x02", central + 4)
            struct.pack_into("<I", data, central + 16, crc)
            path.write_bytes(bytes(data))
            return


def alter_weight(files: list[Path], weights: list[np.ndarray], share: float = SHARE) -> tuple[Path, float]:
    """Raise the element of largest |w| (over `weights`, one conv's tensors) by share x max|w| where one of
    `files` stores it; returns the file and the amount added."""
    k = int(np.argmax([np.abs(w).max() for w in weights]))
    weight = weights[k]
    delta = float(share * np.abs(weight).max())
    index = np.unravel_index(int(np.abs(weight).argmax()), weight.shape)
    for perm in LAYOUTS.get(weight.ndim, [None]):
        stored = np.ascontiguousarray(weight if perm is None else weight.transpose(perm), dtype=np.float32)
        flat = int(np.ravel_multi_index(index if perm is None else tuple(index[p] for p in perm), stored.shape))
        for path in files:
            data = bytearray(path.read_bytes())
            at = data.find(stored.tobytes())
            if at < 0:
                continue
            if data.find(stored.tobytes(), at + 1) >= 0:
                raise ValueError(f"the weight {weight.shape} is stored twice in {path.name}")
            at += 4 * flat
            data[at:at + 4] = np.float32(stored.flat[flat] + delta).tobytes()
            path.write_bytes(bytes(data))
            if zipfile.is_zipfile(path):
                _patch_zip_crc(path, at)
            return path, delta
    raise ValueError(f"the weight {weight.shape} is not stored in {', '.join(p.name for p in files)} in a known layout")


def altered_copy(artifact_path: str | Path, fmt: str, module, name: str, folder: Path,
                 share: float = SHARE) -> Path:
    """A copy of the artifact (every file of it) in `folder` with one weight of conv `name` altered."""
    from edgebench.converters.registry import get_converter

    src = Path(artifact_path)
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    for f in get_converter(fmt).files(src):
        target = dst / f.relative_to(src) if src.is_dir() else folder / f.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, target)
    files = get_converter(fmt).files(dst)
    alter_weight([f for f in files if f.suffix not in (".json",)], conv_layers(module)[name], share)
    return dst
