"""Parity: error metrics, verdicts against per-precision tolerances, and the isolated check of one artifact."""

from edgebench.parity.check import check_parity, check_parity_isolated, reference_outputs
from edgebench.parity.table import parity_table

__all__ = ["check_parity", "check_parity_isolated", "reference_outputs", "parity_table"]
