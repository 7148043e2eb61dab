"""Run one artifact on one runtime over every clip and judge it against the fp32 eager reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.config import LocalizeConfig, Tolerance
from edgebench.errors import UserError, reason_of
from edgebench.isolation import run_child
from edgebench.parity.localize import attach_localization, should_localize
from edgebench.parity.metrics import OutputMetrics
from edgebench.parity.verdict import judge
from edgebench.records import RUNTIME_FAILED, SKIPPED, Artifact, ModelRef, ParityResult
from edgebench.runtimes.base import NotSupported, Session


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
    from edgebench.runtimes.torch_eager import TorchEagerRuntime, eager_artifact

    missing = [t.name for t in ref.inputs if t.name not in inputs]
    if missing:
        raise UserError(f"parity inputs lack {', '.join(missing)} (have {', '.join(inputs)})")
    with TorchEagerRuntime().load(eager_artifact(ref), ref, threads) as session:
        return run_clips(session, inputs)


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _fill(result: ParityResult, metrics: list[OutputMetrics]) -> None:
    """Worst value over all outputs for each field of the result."""
    if not metrics:
        return
    worst = max(metrics, key=lambda m: m.max_abs_err)
    result.max_abs_err = _finite(worst.max_abs_err)
    result.max_abs_index = worst.max_abs_index
    result.mean_abs_err = _finite(max(m.mean_abs_err for m in metrics))
    result.max_rel_err = _finite(max(m.max_rel_err for m in metrics))
    result.cosine = _finite(min(m.cosine for m in metrics))
    result.psnr_db = _finite(min(m.psnr_db for m in metrics))
    top1 = [m.top1_agree for m in metrics if m.top1_agree is not None]
    top5 = [m.top5_agree for m in metrics if m.top5_agree is not None]
    result.top1_agree = min(top1) if top1 else None
    result.top5_agree = min(top5) if top5 else None
    result.min_passing_atol = _finite(max(m.min_passing_atol for m in metrics))


def _row(artifact: Artifact, runtime, clips: int, status: str = SKIPPED, reason: str = "") -> ParityResult:
    return ParityResult(model=artifact.model, format=artifact.format, precision=artifact.precision,
                        runtime=runtime.name, status=status, reason=reason, clips=clips,
                        runtime_version=runtime.version(), runtime_options=runtime.describe())


def _why_skip(artifact: Artifact, runtime) -> str | None:
    """Why this pair cannot be checked at all (no artifact, wrong format, runtime unusable here)."""
    if not artifact.ok:
        return f"no artifact ({artifact.status})"
    if artifact.format not in runtime.formats:
        return f"{runtime.name} does not run format {artifact.format}"
    return runtime.unavailable_reason()


def check_parity(
    artifact: Artifact,
    runtime_name: str,
    ref: ModelRef,
    inputs: dict[str, np.ndarray],
    reference: dict[str, np.ndarray],
    tolerance: Tolerance,
    threads: int = 0,
    runtime_options: dict[str, Any] | None = None,
) -> ParityResult:
    """Load, run every clip, judge; load/run errors become runtime_failed, NotSupported becomes skipped."""
    from edgebench.runtimes.registry import get_runtime

    runtime = get_runtime(runtime_name, runtime_options)
    result = _row(artifact, runtime, _clip_count(inputs))
    skip = _why_skip(artifact, runtime)
    if skip:
        result.reason = skip
        return result
    try:
        session = runtime.load(artifact, ref, threads)
    except NotSupported as e:
        result.reason = str(e)
        return result
    except Exception as e:  # noqa: BLE001 - a file the runtime cannot load is a result, not a crash
        result.status, result.reason = RUNTIME_FAILED, f"load failed: {reason_of(e)}"
        return result
    with session:
        result.runtime_options = {**result.runtime_options, **session.options}
        try:
            outputs = run_clips(session, inputs)
        except NotSupported as e:
            result.reason = str(e)
            return result
        except Exception as e:  # noqa: BLE001
            result.status, result.reason = RUNTIME_FAILED, f"inference failed: {reason_of(e)}"
            return result
    verdict = judge(outputs, reference, artifact.precision, tolerance)
    result.status, result.reason = verdict.status, verdict.reason
    _fill(result, verdict.metrics)
    return result


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
) -> ParityResult:
    """check_parity in a child process: a crash or a hang becomes runtime_failed with the reason.
    With `localize` (auto) and a path, a parity_failed row is localized (parity.localize) within its budget."""
    from edgebench.runtimes.registry import get_runtime

    runtime = get_runtime(runtime_name, runtime_options)  # an unknown name is a UserError here, not in the child
    clips = _clip_count(inputs)
    skip = _why_skip(artifact, runtime)
    if skip:  # no child needed to say so
        return _row(artifact, runtime, clips, reason=skip)
    args = (artifact, runtime_name, ref, inputs, reference, tolerance, threads, runtime_options)
    done = run_child(check_parity, args, timeout_s, log_path)
    if done.failure:
        failed = _row(artifact, runtime, clips, done.failure.status(RUNTIME_FAILED),
                      f"{done.failure.reason} (log: {done.failure.log_path})")
        failed.peak_mb = done.memory.peak_mb
        return failed
    value = done.value
    value.peak_mb = done.memory.peak_mb
    if localization_path and should_localize(value, localize):
        attach_localization(value, artifact, ref, inputs, localize, localization_path)
    return value
