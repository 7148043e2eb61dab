"""Shared fixtures: the small model spec unit tests use, and the real clips in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SMALL_SHAPE = (1, 3, 4, 32, 32)


@pytest.fixture(scope="session")
def bikes() -> Path:
    path = SHARED_DATA / "bikes.mp4"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


@pytest.fixture(scope="session")
def small_ref():
    """resnet_mixed with random weights on a 1x3x4x32x32 input: every converter, in seconds."""
    from edgebench.models.source import resolve_model

    return resolve_model("resnet_mixed", input_shape=SMALL_SHAPE)


@pytest.fixture(scope="session")
def full_out(tmp_path_factory) -> Path:
    """One output folder (and artifact cache) for every test on the full model: each export happens once."""
    return tmp_path_factory.mktemp("full-model-out")
