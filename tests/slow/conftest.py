"""The full 1x3x16x112x112 resnet_mixed and its default artifacts, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgebench.config import PipelineConfig
from edgebench.converters.export import export_artifact, plan_artifacts


@pytest.fixture(scope="session")
def full_ref():
    from edgebench.models.source import resolve_model

    return resolve_model("resnet_mixed")


@pytest.fixture(scope="session")
def artifacts(full_ref, full_out):
    cache = full_out / "cache"  # the pipeline's own cache layout: the e2e run's exports are reused
    done = {}
    for fmt, precision, options in plan_artifacts(PipelineConfig()):
        a = export_artifact(full_ref, fmt, precision, options, cache, timeout_s=900)
        assert a.ok, f"{fmt} {precision}: {a.reason}\n{Path(a.log_path).read_text()[-3000:]}"
        done[(fmt, precision)] = a
    return done
