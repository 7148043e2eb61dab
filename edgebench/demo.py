"""Classify a video with a model or an exported artifact: `python -m edgebench.demo VIDEO`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.converters.registry import CONVERTERS
from edgebench.errors import UserError
from edgebench.models.source import resolve_model
from edgebench.models.video import preprocess_of, read_clips
from edgebench.records import Artifact, ModelRef

# Artifact file suffix -> format, for an --artifact given without its artifact.json.
SUFFIX_FORMATS = {s: fmt for fmt, c in CONVERTERS.items() for s in (c.suffix, *c.other_suffixes)}


@dataclass
class Classification:
    model: str
    provenance: str
    runtime: str
    top: list[tuple[str, float]]

    @property
    def random_weights(self) -> bool:
        return self.provenance.startswith("random")


def artifact_from_path(path: Path, ref: ModelRef) -> Artifact:
    """The Artifact record saved beside the file, or a minimal one inferred from the suffix."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"artifact {path}: no such file")
    record = path.parent / "artifact.json"
    if record.exists():
        art = Artifact.load(record)
        return Artifact.from_dict({**art.to_dict(), "path": str(path)})
    fmt = SUFFIX_FORMATS.get(path.suffix)
    if fmt is None:
        raise UserError(f"artifact {path}: unknown suffix {path.suffix!r}; expected one of {', '.join(SUFFIX_FORMATS)}")
    return Artifact(model=ref.name, format=fmt, precision="fp32", status="passed", path=str(path),
                    inputs=ref.inputs, outputs=ref.outputs)


def _session_for(artifact: Artifact | None, ref: ModelRef):
    """A runtime session for the artifact (the first runtime usable here), or PyTorch eager."""
    from edgebench.runtimes.registry import get_runtime, runtimes_for
    from edgebench.runtimes.torch_eager import eager_artifact

    if artifact is None:
        return "torch", get_runtime("torch").load(eager_artifact(ref), ref, threads=0)
    reasons = []
    for runtime in runtimes_for(artifact.format):
        why = runtime.unavailable_reason()
        if why is None:
            return runtime.name, runtime.load(artifact, ref, threads=0)
        reasons.append(f"{runtime.name}: {why}")
    raise UserError(f"artifact {artifact.path}: no runtime can run {artifact.format} here ({'; '.join(reasons)})")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def classify(video: Path, model: str = "resnet_mixed", weights: str | None = None,
             artifact: Path | None = None, top: int = 5) -> Classification:
    """Top labels with probabilities for the video's first clip by the model's sampler (preprocess.sampling):
    the clip `evaluate --clips-per-video 1` scores."""
    ref = resolve_model(model, weights)
    clip = read_clips(video, preprocess_of(ref), clips=1)  # 1 x C x T x H x W
    art = artifact_from_path(artifact, ref) if artifact else None
    runtime, session = _session_for(art, ref)
    with session:
        logits = next(iter(session.run({ref.inputs[0].name: clip}).values()))
    probs = softmax(logits.reshape(-1))
    order = np.argsort(-probs)[:top]
    labels = ref.labels or tuple(f"class {i}" for i in range(probs.size))
    return Classification(ref.name, ref.provenance, runtime, [(labels[i], float(probs[i])) for i in order])


if __name__ == "__main__":
    import sys

    from edgebench.cli import main

    sys.argv = [sys.argv[0], "demo", *sys.argv[1:]]
    main()
