"""A runtime slowed on purpose: every `Session.run` sleeps a fixed fraction of its own time.

The regression finder's detection rate is measured with it (benchmarks/regression_error_rates.py):
`runtime_variants: {onnxruntime-slow10: {runtime: onnxruntime, options: {slowdown: 0.10}}}` is the
real runtime, loaded and run as usual, 10 % slower by the wall clock. `catalogue.configured_runtime` wraps any
runtime given the option `slowdown`.
"""

from __future__ import annotations

import time
from typing import Any

from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import Runtime, Session


class SlowedSession(Session):
    """The inner session, then a sleep of `fraction` x the time it took."""

    def __init__(self, inner: Session, fraction: float):
        self.inner, self.fraction = inner, fraction
        self.options = {**dict(getattr(inner, "options", {}) or {}), "slowdown": fraction}

    def run(self, inputs):
        start = time.perf_counter()
        out = self.inner.run(inputs)
        time.sleep(self.fraction * (time.perf_counter() - start))
        return out

    def close(self) -> None:
        self.inner.close()


class SlowedRuntime(Runtime):
    """`inner` with every run slowed by `fraction` (0.10: 10 % slower); everything else is the inner runtime's."""

    def __init__(self, inner: Runtime, fraction: float):
        self.inner, self.fraction = inner, fraction
        self.name, self.library, self.measures_speed = inner.name, inner.library, inner.measures_speed

    @property
    def formats(self) -> frozenset[str]:
        return self.inner.formats

    def unavailable_reason(self) -> str | None:
        return self.inner.unavailable_reason()

    def why_not(self, artifact: Artifact) -> str | None:
        return self.inner.why_not(artifact)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "slowdown": self.fraction}

    def version(self) -> str:
        return self.inner.version()

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        return SlowedSession(self.inner.load(artifact, ref, threads), self.fraction)
