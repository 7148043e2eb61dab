"""The converter of a format, from its catalogue entry (edgebench/catalogue.py): one instance per class."""

from __future__ import annotations

import functools

from edgebench.catalogue import Ref, format_entry, formats
from edgebench.converters.base import Converter


@functools.lru_cache(maxsize=None)
def _instance(ref: Ref) -> Converter:
    return ref.load()()


def get_converter(fmt: str) -> Converter:
    """The format's converter; an unknown format is a UserError listing the known ones."""
    return _instance(format_entry(fmt).converter)


def converters() -> dict[str, Converter]:
    """Every catalogued format's converter, in catalogue order (imports every converter module)."""
    return {name: _instance(entry.converter) for name, entry in formats().items()}
