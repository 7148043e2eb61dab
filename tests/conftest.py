"""Shared fixtures (the small model spec, the real clips in ../shared/data) and the layer markers.

A test's folder is its layer, and the layer is its marker, so `pytest -m integration` and the Makefile's
`test-fast` (tests/unit only) select by layer: unit = pure logic in seconds, integration = real toolchains and
runtimes in child processes on small shapes, flows = prefect_test_harness, slow = the full-size model,
e2e = a real Prefect server and workers, browser = the HTML report in Chromium.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
SMALL_SHAPE = (1, 3, 4, 32, 32)
LAYERS = ("unit", "integration", "flows", "slow", "e2e", "browser")  # folders under tests/, one marker each


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups
def pytest_collection_modifyitems(items) -> None:
    """Mark every test with the layer of its folder (declared in pyproject.toml's markers), and its worker group
    under `pytest -n --dist loadgroup` (make test): a file's tests run on one worker, so its module fixtures are
    made once, and the tests sharing the full model's output folder run on one worker, in order, so the slow
    tests reuse the e2e run's exports."""
    for item in items:
        layer = item.path.relative_to(ROOT / "tests").parts[0]
        if layer in LAYERS:
            item.add_marker(layer)
        shares_full_model = "full_out" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("full_model" if shares_full_model else str(item.path.relative_to(ROOT))))


@pytest.fixture(scope="session", autouse=True)
def peak_cache(tmp_path_factory):
    """The host's limit measured by tests stays in the session: a busy test host must not become the cached peak."""
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEBENCH_PEAK_DIR", str(tmp_path_factory.mktemp("peak")))
    yield
    mp.undo()


@pytest.fixture(scope="session")
def bikes() -> Path:
    path = SHARED_DATA / "bikes.mp4"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    return path


@pytest.fixture
def fault_formats(monkeypatch):
    """The formats of tests/fault_converters.py in the catalogue (spawned export children inherit the variable)."""
    from edgebench.catalogue import PLUGINS_ENV
    from tests.fault_converters import PLUGIN

    monkeypatch.setenv(PLUGINS_ENV, PLUGIN)


@pytest.fixture(scope="session")
def small_ref():
    """resnet_mixed with random weights on a 1x3x4x32x32 input: every converter, in seconds."""
    from edgebench.models.source import resolve_model

    return resolve_model("resnet_mixed", input_shape=SMALL_SHAPE)


@pytest.fixture(scope="session")
def full_out(tmp_path_factory) -> Path:
    """One output folder (and artifact cache) for every test on the full model: each export happens once."""
    return tmp_path_factory.mktemp("full-model-out")
