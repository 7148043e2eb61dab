"""The runtimes, from the catalogue (edgebench/catalogue.py): the eager baseline's, then each format's."""

from __future__ import annotations

import functools
from typing import Any

from edgebench.catalogue import configured_runtime, runtime_class, runtime_refs
from edgebench.runtimes.base import Runtime


@functools.lru_cache(maxsize=None)
def _instance(name: str) -> Runtime:
    return runtime_class(name)()


def runtime_names() -> list[str]:
    """Every runtime name, in catalogue order (no runtime module imported)."""
    return list(runtime_refs())


def get_runtime(name: str, options: dict[str, Any] | None = None) -> Runtime:
    """The runtime; with `options`, a new instance configured with them (e.g. {"xnnpack": False})."""
    return configured_runtime(name, options) if options else _instance(name)


def all_runtimes() -> dict[str, Runtime]:
    """Every runtime, by name, in catalogue order (imports every runtime module)."""
    return {name: _instance(name) for name in runtime_refs()}


def runtimes_for(fmt: str) -> list[Runtime]:
    """Every runtime that can execute artifacts of format `fmt`, in catalogue order."""
    return [r for r in all_runtimes().values() if fmt in r.formats]
