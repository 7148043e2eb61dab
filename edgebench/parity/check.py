"""Run one artifact on one runtime over every clip, keep the outputs, then judge the kept outputs.

Running and judging are two steps: the session runs (in a child process for a run), its outputs are
saved in the run folder (parity/outputs.py), and the verdict is computed from the saved file
(parity/verdict.py), so it can be computed again with other tolerances without running anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.catalogue import EAGER
from edgebench.config import LocalizeConfig, Tolerance
from edgebench.errors import UserError, reason_of
from edgebench.isolation import run_child
from edgebench.parity.localize import attach_localization, should_localize
from edgebench.parity.outputs import load_outputs, outputs_key, save_outputs
from edgebench.parity.verdict import judged
from edgebench.records import PASSED, RUNTIME_FAILED, SKIPPED, Artifact, ModelRef, ParityResult
from edgebench.runtimes.base import NotSupported, Runtime, Session
from edgebench.runtimes.registry import get_runtime
from edgebench.runtimes.torch_eager import eager_artifact


def _clip_count(inputs: dict[str, np.ndarray]) -> int:
    counts = {len(v) for v in inputs.values()}
    if len(counts) != 1:
        raise UserError(f"parity inputs disagree on the number of clips: {sorted(counts)}")
    return counts.pop()


def run_clips(session: Session, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each clip through the session, one at a time; outputs stacked: {name: clips x output shape}."""
    per_clip = [session.run({name: clips[i] for name, clips in inputs.items()}) for i in range(_clip_count(inputs))]
    names = list(per_clip[0])
    stacked = {}
    for name in names:
        values = [np.asarray(out.get(name)) for out in per_clip]
        stacked[name] = np.stack(values) if len({v.shape for v in values}) == 1 else np.asarray(values, dtype=object)
    return stacked


def reference_outputs(ref: ModelRef, inputs: dict[str, np.ndarray], threads: int = 0) -> dict[str, np.ndarray]:
    """The fp32 eager outputs for every clip, computed once: {name: clips x output shape}."""
    missing = [t.name for t in ref.inputs if t.name not in inputs]
    if missing:
        raise UserError(f"parity inputs lack {', '.join(missing)} (have {', '.join(inputs)})")
    with get_runtime(EAGER.runtime).load(eager_artifact(ref), ref, threads) as session:
        return run_clips(session, inputs)


@dataclass
class Ran:
    """What one session did: its outputs, or why there are none (skipped: it cannot run; runtime_failed: it broke)."""

    status: str  # passed (outputs made) | skipped | runtime_failed
    reason: str = ""
    outputs: dict[str, np.ndarray] = field(default_factory=dict)
    session_options: dict[str, Any] = field(default_factory=dict)  # what the session reported (threads, delegates)


def run_session(artifact: Artifact, runtime: Runtime, ref: ModelRef, inputs: dict[str, np.ndarray],
                threads: int) -> Ran:
    """Load and run every clip: load/run errors are runtime_failed, NotSupported is skipped (runs in the child)."""
    try:
        session = runtime.load(artifact, ref, threads)
    except NotSupported as e:
        return Ran(SKIPPED, str(e))
    except Exception as e:  # noqa: BLE001 - a file the runtime cannot load is a result, not a crash
        return Ran(RUNTIME_FAILED, f"load failed: {reason_of(e)}")
    with session:
        try:
            return Ran(PASSED, outputs=run_clips(session, inputs), session_options=dict(session.options))
        except NotSupported as e:
            return Ran(SKIPPED, str(e))
        except Exception as e:  # noqa: BLE001
            return Ran(RUNTIME_FAILED, f"inference failed: {reason_of(e)}")


def _row(artifact: Artifact, runtime: Runtime, clips: int, status: str = SKIPPED, reason: str = "") -> ParityResult:
    return ParityResult(model=artifact.model, format=artifact.format, precision=artifact.precision,
                        runtime=runtime.name, status=status, reason=reason, clips=clips,
                        runtime_version=runtime.version(), runtime_options=runtime.describe())


def judge_ran(row: ParityResult, ran: Ran, artifact: Artifact, inputs: dict[str, np.ndarray],
              reference: dict[str, np.ndarray], tolerance: Tolerance, outputs_dir: str | Path | None,
              reference_path: str = "") -> ParityResult:
    """A session's outcome as a row: no outputs, its reason; outputs, saved (with `outputs_dir`) and judged."""
    row.runtime_options = {**row.runtime_options, **ran.session_options}
    if ran.status != PASSED:
        row.status, row.reason = ran.status, ran.reason
        return row
    outputs = ran.outputs
    if outputs_dir is not None:
        key = outputs_key(artifact.sha256 or artifact.path, row.runtime, row.runtime_options, inputs)
        meta = {"model": row.model, "format": row.format, "precision": row.precision, "runtime": row.runtime,
                "runtime_version": row.runtime_version, "runtime_options": row.runtime_options,
                "artifact": artifact.path, "artifact_sha256": artifact.sha256, "device": row.device}
        row.outputs_path = str(save_outputs(outputs_dir, key, outputs, meta))
        outputs = load_outputs(row.outputs_path)[0]  # the verdict is the saved file's
    row.reference_path = reference_path
    return judged(row, outputs, reference, tolerance)


def check_parity(
    artifact: Artifact,
    runtime_name: str,
    ref: ModelRef,
    inputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    tolerance: Tolerance,
    threads: int = 0,
    runtime_options: dict[str, Any] | None = None,
    outputs_dir: str | Path | None = None,
) -> ParityResult:
    """Run in this process and judge; with `outputs_dir`, the outputs are kept there and judged from the file."""
    runtime = get_runtime(runtime_name, runtime_options)
    row = _row(artifact, runtime, _clip_count(inputs))
    if skip := runtime.why_not(artifact):
        row.reason = skip
        return row
    ran = run_session(artifact, runtime, ref, inputs, threads)
    return judge_ran(row, ran, artifact, inputs, reference, tolerance, outputs_dir)


def _run_in_child(artifact: Artifact, runtime_name: str, runtime_options: dict[str, Any] | None, ref: ModelRef,
                  inputs: dict[str, np.ndarray], threads: int) -> Ran:
    return run_session(artifact, get_runtime(runtime_name, runtime_options), ref, inputs, threads)


def check_parity_isolated(
    artifact: Artifact,
    runtime_name: str,
    ref: ModelRef,
    inputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    tolerance: Tolerance,
    threads: int,
    timeout_s: float,
    log_path: str | Path,
    runtime_options: dict[str, Any] | None = None,
    localize: LocalizeConfig | None = None,
    localization_path: str | Path | None = None,
    outputs_dir: str | Path | None = None,
    reference_path: str = "",
) -> ParityResult:
    """The session in a child process (a crash or a hang becomes runtime_failed with the reason), its outputs kept
    in `outputs_dir` (default: `outputs/` beside the log) and judged here. With `localize` (auto) and a path, a
    parity_failed row is localized (parity.localize) within its budget."""
    runtime = get_runtime(runtime_name, runtime_options)  # an unknown name is a UserError here, not in the child
    clips = _clip_count(inputs)
    row = _row(artifact, runtime, clips)
    if skip := runtime.why_not(artifact):  # no child needed to say so
        row.reason = skip
        return row
    done = run_child(_run_in_child, (artifact, runtime_name, runtime_options, ref, inputs, threads), timeout_s,
                     log_path)
    if done.failure:
        failed = _row(artifact, runtime, clips, done.failure.status(RUNTIME_FAILED),
                      f"{done.failure.reason} (log: {done.failure.log_path})")
        failed.peak_mb = done.memory.peak_mb
        return failed
    outputs_dir = outputs_dir if outputs_dir is not None else Path(log_path).parent / "outputs"
    row = judge_ran(row, done.value, artifact, inputs, reference, tolerance, outputs_dir, reference_path)
    row.peak_mb = done.memory.peak_mb
    if localization_path and should_localize(row, localize):
        attach_localization(row, artifact, ref, inputs, localize, localization_path)
    return row
