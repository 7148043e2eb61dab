"""Parity: error metrics, verdicts against per-precision tolerances, kept outputs, localization of a failure."""
