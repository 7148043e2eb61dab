"""Latency harness, statistics and device backends (local, Qualcomm AI Hub)."""
