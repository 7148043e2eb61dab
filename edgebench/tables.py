"""Cells shared by the console tables of exports, parity and latency."""

from __future__ import annotations

from edgebench.records import PASSED, SKIPPED

_STYLES = {PASSED: "green", SKIPPED: "dim"}


def number(x: float | None, fmt: str) -> str:
    """`x` formatted, or "-" when there is no value."""
    return "-" if x is None else format(x, fmt)


def status_cell(status: str) -> str:
    """The status in rich markup: green passed, dim skipped, red anything else."""
    style = _STYLES.get(status, "red")
    return f"[{style}]{status}[/{style}]"
