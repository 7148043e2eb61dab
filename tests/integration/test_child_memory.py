"""The memory budget of every child: past it a child alone dies as out_of_memory with its peak; the rest goes on."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import pytest

from edgebench import isolation
from edgebench.child_memory import ChildGuard, MemoryBudget, parse_limit
from edgebench.converters.export import export_artifact
from edgebench.records import OUT_OF_MEMORY, RunData
from edgebench.reports.rows import flatten
from tests import fault_converters as faults
from tests.child_jobs import hungry

MiB = 1024 * 1024


def _cgroups_here() -> bool:
    return ChildGuard(MemoryBudget(256 * MiB, "auto")).enforced_by.startswith("cgroup")


ENFORCERS = ["address-space", pytest.param("cgroup", marks=pytest.mark.skipif(
    not _cgroups_here(), reason="this host lets edgebench make no memory cgroup"))]


@pytest.fixture
def budget():
    """Set a budget for the test; the default one back afterwards."""
    before = isolation.memory_budget()
    yield lambda limit, enforce: isolation.use_memory_budget(MemoryBudget(parse_limit(limit), enforce))
    isolation.use_memory_budget(before)


@pytest.mark.parametrize("enforce", ENFORCERS)
def test_a_child_past_its_limit_is_out_of_memory_and_the_next_one_runs(budget, enforce, tmp_path):
    budget("300M", enforce)
    over = isolation.run_child(hungry, (600,), 120, tmp_path / "over.log")
    assert over.failure is not None and over.failure.status("runtime_failed") == OUT_OF_MEMORY
    assert over.failure.reason.startswith("out of memory: past the 300 MB ") and "per child" in over.failure.reason
    assert over.memory.limit_mb == 300 and over.memory.peak_mb is not None
    under = isolation.run_child(hungry, (100,), 120, tmp_path / "under.log")  # negative control: within the budget
    assert under.failure is None and under.value == 100
    assert not under.memory.out_of_memory and 100 <= under.memory.peak_mb < 300


def test_the_peak_is_the_childs_own_not_the_parents(budget, tmp_path):
    budget("none", "auto")
    ballast = bytearray(400 * MiB)  # the parent holds 400 MiB more than the child will
    ballast[:: 4096] = b"\x01" * len(ballast[:: 4096])
    done = isolation.run_child(hungry, (50,), 120, tmp_path / "c.log")
    assert done.failure is None and done.memory.limit_mb is None
    assert 50 <= done.memory.peak_mb < 300, done.memory
    del ballast


def test_an_export_over_budget_is_an_out_of_memory_row_and_the_others_export(budget, small_ref, tmp_path, fault_formats):
    # A torch child holds ~0.8 GB resident but maps ~3.5 GB of address space: the limit fits the mechanism.
    limit = "1500M" if _cgroups_here() else "6G"
    budget(limit, "auto")
    other = replace(small_ref, name="other")  # a second model, so the two fault artifacts are two rows
    jobs = {"hungry": (faults.Hungry(), small_ref), "tiny": (faults.Tiny(), other), "torchscript": (None, small_ref)}
    with ThreadPoolExecutor(max_workers=3) as pool:
        futures = {name: pool.submit(export_artifact, ref, "torchscript" if c is None else "fault", "fp32", {},
                                     tmp_path / name, 300, True, c) for name, (c, ref) in jobs.items()}
    got = {name: f.result() for name, f in futures.items()}
    hungry_art = got["hungry"]
    assert hungry_art.status == OUT_OF_MEMORY and hungry_art.reason.startswith("out of memory: "), hungry_art.reason
    assert f"past the {parse_limit(limit) // MiB:,} MB" in hungry_art.reason and hungry_art.peak_mb > 0
    assert got["tiny"].ok and got["torchscript"].ok, (got["tiny"].reason, got["torchscript"].reason)
    assert got["torchscript"].peak_mb > 50  # a real export child's peak comes back too

    run = RunData(run_id="r", started_at="2026-12-04T00:00:00+00:00", ended_at="", out_dir=str(tmp_path), threads=2,
                  models=[small_ref, other], artifacts=list(got.values()))
    rows = flatten(run, runtimes_for={"fault": ["faultrt"], "torchscript": ["torchscript"]})
    oom = rows[rows["status"] == OUT_OF_MEMORY]
    assert len(oom) == 1 and oom["failure"].iloc[0] == "out_of_memory" and oom["peak_mb"].iloc[0] > 0
    assert (rows.loc[rows["status"] != OUT_OF_MEMORY, "failure"] == "").all()  # the others: no failure class
