"""Classify a video with a model or an exported artifact: `python -m edgebench.demo VIDEO`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.catalogue import EAGER, formats
from edgebench.errors import UserError
from edgebench.evaluation.score import softmax
from edgebench.models.sampling import describe
from edgebench.models.source import resolve_model
from edgebench.models.video import preprocess_of, read_clips
from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.registry import get_runtime, runtimes_for
from edgebench.runtimes.torch_eager import eager_artifact



@dataclass
class Classification:
    """The top labels of one video, and how they were made: model, weights, runtime, clips and their sampling."""

    model: str
    provenance: str
    runtime: str
    top: list[tuple[str, float]]
    clips: int = 1
    sampling: str = ""  # `consecutive at 15 fps, 16 frames`

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
    suffixes = {s: name for name, e in formats().items() for s in e.suffixes}  # for a file without its artifact.json
    fmt = suffixes.get(path.suffix)
    if fmt is None:
        raise UserError(f"artifact {path}: unknown suffix {path.suffix!r}; expected one of {', '.join(suffixes)}")
    return Artifact(model=ref.name, format=fmt, precision="fp32", status="passed", path=str(path),
                    inputs=ref.inputs, outputs=ref.outputs)


def _session_for(artifact: Artifact | None, ref: ModelRef):
    """A runtime session for the artifact (the first runtime usable here), or PyTorch eager."""
    if artifact is None:
        return EAGER.runtime, get_runtime(EAGER.runtime).load(eager_artifact(ref), ref, threads=0)
    reasons = []
    for runtime in runtimes_for(artifact.format):
        why = runtime.unavailable_reason()
        if why is None:
            return runtime.name, runtime.load(artifact, ref, threads=0)
        reasons.append(f"{runtime.name}: {why}")
    raise UserError(f"artifact {artifact.path}: no runtime can run {artifact.format} here ({'; '.join(reasons)})")


def classify(video: Path, model: str = "resnet_mixed", weights: str | None = None,
             artifact: Path | None = None, top: int = 5, clips: int = 1) -> Classification:
    """Top labels with probabilities for `clips` evenly spaced clips of the model's sampler (preprocess.sampling),
    softmax averaged over them: what `evaluate --clips-per-video <clips>` scores for this video."""
    ref = resolve_model(model, weights)
    pre = preprocess_of(ref)
    batch = read_clips(video, pre, clips)[:, None]  # N x 1 x C x T x H x W
    art = artifact_from_path(artifact, ref) if artifact else None
    runtime, session = _session_for(art, ref)
    with session:
        logits = np.stack([next(iter(session.run({ref.inputs[0].name: clip}).values())).reshape(-1) for clip in batch])
    probs = softmax(logits).mean(axis=0)
    order = np.argsort(-probs)[:top]
    labels = ref.labels or tuple(f"class {i}" for i in range(probs.size))
    return Classification(ref.name, ref.provenance, runtime, [(labels[i], float(probs[i])) for i in order],
                          len(batch), describe(pre))


if __name__ == "__main__":
    import sys

    from edgebench.cli import main

    sys.argv = [sys.argv[0], "demo", *sys.argv[1:]]
    main()
