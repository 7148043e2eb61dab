"""The small model's fp32 artifacts, exported once per session through the pipeline's export (one child each,
two at a time, one cache folder): every module that only reads them shares them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from edgebench.converters.export import export_artifact
from edgebench.records import Artifact

SMALL_FP32 = ("torchscript", "onnx", "coreml", "tflite")
TIMEOUT_S = 600


@pytest.fixture(scope="session")
def small_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("small-cache")


@pytest.fixture(scope="session")
def small_exports(small_ref, small_cache) -> dict[str, Artifact]:
    """format -> its fp32 artifact of the small resnet_mixed (fresh exports, never cache hits)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {fmt: pool.submit(export_artifact, small_ref, fmt, "fp32", {}, small_cache, TIMEOUT_S)
                   for fmt in SMALL_FP32}
    artifacts = {fmt: f.result() for fmt, f in futures.items()}
    for fmt, a in artifacts.items():
        assert a.status == "passed", f"{fmt}: {a.reason}\n{Path(a.log_path).read_text()[-3000:]}"
    return artifacts
