"""Synthetic runtimes of known latency (and known failures) for the benchmark tests."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from edgebench.records import PASSED, Artifact, ModelRef, TensorSpec
from edgebench.runtimes.base import Runtime, Session

TINY_REF = ModelRef(
    name="tiny", config_path="", weights_path=None, provenance="random:seed=0", weights_sha256="0" * 64,
    config_hash="0" * 64, inputs=(TensorSpec("video", (1, 3, 2, 4, 4)),), outputs=(TensorSpec("logits", (1, 4)),),
)
SLEEP_ARTIFACT = Artifact(model="tiny", format="sleep", precision="fp32", status=PASSED, path="(synthetic)")


def tiny_inputs(clips: int = 3) -> dict[str, np.ndarray]:
    return {"video": np.random.default_rng(0).random((clips, 1, 3, 2, 4, 4), dtype=np.float32)}


class SleepSession(Session):
    """Sleeps `latency_s` per run (a busy-wait tail makes it precise); can crash, hang or emit NaN."""

    def __init__(self, latency_s: float, fail: str, fail_at: int):
        self.latency_s, self.fail, self.fail_at, self.calls = latency_s, fail, fail_at, 0
        self.options = {"latency_s": latency_s}

    def run(self, inputs):
        self.calls += 1
        if self.fail and self.calls >= self.fail_at:
            if self.fail == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            if self.fail == "hang":
                time.sleep(3600)
            if self.fail == "raise":
                raise RuntimeError("synthetic kernel error")
            if self.fail == "nan":
                return {"logits": np.full((1, 4), np.nan, np.float32)}
        end = time.perf_counter() + self.latency_s
        if self.latency_s > 0.002:
            time.sleep(self.latency_s - 0.002)
        while time.perf_counter() < end:
            pass
        return {"logits": np.zeros((1, 4), np.float32)}


class SleepRuntime(Runtime):
    """A runtime for format "sleep" whose sessions take a known time per run."""

    formats = frozenset({"sleep"})
    library = "numpy"

    def __init__(self, latency_s: float = 0.05, fail: str = "", fail_at: int = 1, name: str = "sleep",
                 unavailable: str | None = None):
        self.latency_s, self.fail, self.fail_at, self.name, self.unavailable = latency_s, fail, fail_at, name, unavailable

    def unavailable_reason(self):
        return self.unavailable

    def version(self) -> str:
        return "synthetic-1"

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        if self.fail == "load":
            raise RuntimeError("synthetic load error")
        return SleepSession(self.latency_s, "" if self.fail == "load" else self.fail, self.fail_at)


class EagerSleepRuntime(SleepRuntime):
    """A SleepRuntime that stands in for the eager baseline (format "pytorch", runtime "torch")."""

    formats = frozenset({"pytorch"})

    def __init__(self, latency_s: float = 0.05):
        super().__init__(latency_s, name="torch")


EAGER_ARTIFACT = Artifact(model="tiny", format="pytorch", precision="fp32", status=PASSED)
