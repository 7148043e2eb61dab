"""The installed version of a distribution, read from its metadata (the package itself is not imported)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def package_version(dist: str) -> str:
    """"2.14.1", or "not installed"."""
    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"
