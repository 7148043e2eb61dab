"""Repair of failing reduced-precision files: the smallest set of layers to keep in float (docs/repair.md)."""
