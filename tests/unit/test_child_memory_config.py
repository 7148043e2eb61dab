"""The memory budget's config: sizes, shares of the machine, and one-line errors for anything else."""

from __future__ import annotations

import pytest

from edgebench.child_memory import ChildMemory, machine_memory, parse_limit
from edgebench.config import PipelineConfig, validate
from edgebench.errors import UserError

GiB = 1024**3


@pytest.mark.parametrize("text, expected", [
    ("12G", 12 * GiB), ("800M", 800 * 1024**2), ("1.5GiB", int(1.5 * GiB)), ("2048", 2048 * 1024**2),
    ("50%", 8 * GiB), ("none", None),
])
def test_sizes_and_shares(text, expected):
    assert parse_limit(text, total=16 * GiB) == expected


@pytest.mark.parametrize("text", ["lots", "12X", "0%", "150%", "-1G"])
def test_anything_else_is_refused(text):
    with pytest.raises(ValueError):
        parse_limit(text, total=16 * GiB)


def test_the_default_is_below_the_machines_memory():
    default = parse_limit(PipelineConfig().memory.child_limit)
    assert 0 < default < machine_memory()


def test_a_bad_limit_in_the_config_names_the_field():
    with pytest.raises(UserError, match=r"pipeline.yaml.*memory.child_limit.*not a memory size"):
        validate(PipelineConfig, {"memory": {"child_limit": "lots"}}, "pipeline.yaml")


def test_the_reason_says_what_the_limit_counts():
    cg = ChildMemory(2100.0, 1500.0, "cgroup v1", True).reason("killed by SIGKILL")
    assert cg == ("out of memory: past the 1,500 MB cgroup v1 memory limit per child; resident peak 2,100 MB; "
                  "killed by SIGKILL")
    rl = ChildMemory(None, 6144.0, "address space", True).reason("MemoryError")
    assert rl == "out of memory: past the 6,144 MB address-space limit per child; resident peak unknown; MemoryError"
