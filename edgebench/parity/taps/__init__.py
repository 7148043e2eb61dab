"""Per-format exposure of an artifact's intermediate tensors: the format's catalogue `tapper` -> [ArtifactTap]."""

from __future__ import annotations

import numpy as np

from edgebench.catalogue import format_entry, formats
from edgebench.errors import UserError
from edgebench.parity.taps.base import ArtifactTap


def artifact_taps(fmt: str, path: str, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """The intermediate tensors of one artifact for one input (a UserError for a format without a tapper)."""
    tapper = format_entry(fmt).tapper
    if not tapper:
        having = [name for name, e in formats().items() if e.tapper]
        raise UserError(f"localization: no way to expose {fmt} tensors ({tapper.none}); "
                        f"supported: {', '.join(having)}")
    return tapper.load()(path, inputs)
