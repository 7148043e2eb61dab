"""Runtimes: one small class per backend that can execute an artifact (see registry.py)."""
