"""The parity verdict: structure first, then NaN/Inf, then the metrics against the precision's tolerance.

A pure function of outputs, the reference and a tolerance: nothing here runs a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgebench.config import ParityConfig, Tolerance
from edgebench.errors import UserError
from edgebench.parity.metrics import OutputMetrics, compare
from edgebench.records import PARITY_FAILED, PASSED, ParityResult

# Output dtypes a runtime may return for an artifact of each precision, besides the reference's own.
_EXTRA_DTYPES = {"fp16": {np.dtype(np.float16)}}


@dataclass
class Verdict:
    """passed or parity_failed, why, and the per-output metrics (empty when the structure differs)."""

    status: str
    reason: str = ""
    metrics: list[OutputMetrics] = field(default_factory=list)


def tolerance_for(cfg: ParityConfig, precision: str) -> Tolerance:
    """The configured tolerance for an artifact precision; a UserError when none is configured."""
    if precision not in cfg.tolerances:
        raise UserError(f"parity.tolerances has no entry for precision '{precision}' "
                        f"(configured: {', '.join(sorted(cfg.tolerances))})")
    return cfg.tolerances[precision]


def check_structure(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], precision: str) -> str | None:
    """Output count, names, shapes and dtypes against the reference; the first mismatch, naming both sides."""
    if len(outputs) != len(reference):
        return f"output count {len(outputs)} ({', '.join(outputs)}) != reference {len(reference)} ({', '.join(reference)})"
    if set(outputs) != set(reference):
        return f"output names {sorted(outputs)} != reference {sorted(reference)}"
    for name, ref in reference.items():
        out = np.asarray(outputs[name])
        if out.shape != ref.shape:
            return f"output '{name}' shape {tuple(out.shape[1:])} != reference {tuple(ref.shape[1:])}"
        allowed = {ref.dtype} | _EXTRA_DTYPES.get(precision, set())
        if out.dtype not in allowed:
            return f"output '{name}' dtype {out.dtype} != reference {ref.dtype}" + (
                f" (or {', '.join(str(d) for d in _EXTRA_DTYPES[precision])} for {precision})"
                if precision in _EXTRA_DTYPES else "")
    return None


def check_finite(outputs: dict[str, np.ndarray]) -> str | None:
    """The first output holding NaN or Inf, with the counts."""
    for name, out in outputs.items():
        out = np.asarray(out)
        if out.dtype.kind != "f":
            continue
        nan, inf = int(np.isnan(out).sum()), int(np.isinf(out).sum())
        if nan or inf:
            return f"output '{name}' has {nan} NaN and {inf} Inf values"
    return None


def check_tolerance(metrics: list[OutputMetrics], tol: Tolerance) -> list[str]:
    """Every bound a metric breaks, as 'metric value op bound on output'."""
    broken = []
    for m in metrics:
        where = f" on '{m.name}'"
        if tol.max_abs_err is not None and not m.max_abs_err <= tol.max_abs_err:
            broken.append(f"max_abs_err {m.max_abs_err:.3g} > {tol.max_abs_err:g}{where} at {m.max_abs_index}")
        if tol.min_cosine is not None and not m.cosine >= tol.min_cosine:
            broken.append(f"cosine {m.cosine:.8f} < {tol.min_cosine:g}{where}")
        if tol.min_psnr_db is not None and not m.psnr_db >= tol.min_psnr_db:
            broken.append(f"psnr_db {m.psnr_db:.1f} < {tol.min_psnr_db:g}{where}")
        if tol.min_top1_agree is not None and m.top1_agree is not None and not m.top1_agree >= tol.min_top1_agree:
            broken.append(f"top1_agree {m.top1_agree:.3f} < {tol.min_top1_agree:g}{where}")
        if tol.min_top5_agree is not None and m.top5_agree is not None and not m.top5_agree >= tol.min_top5_agree:
            broken.append(f"top5_agree {m.top5_agree:.3f} < {tol.min_top5_agree:g}{where}")
    return broken


def judge(outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray], precision: str, tol: Tolerance) -> Verdict:
    """Structure, then NaN/Inf, then values: the first failing stage decides."""
    problem = check_structure(outputs, reference, precision)
    if problem:
        return Verdict(PARITY_FAILED, problem)
    problem = check_finite(outputs)
    if problem:
        return Verdict(PARITY_FAILED, problem)
    metrics = [compare(name, outputs[name], reference[name]) for name in reference]
    broken = check_tolerance(metrics, tol)
    return Verdict(PARITY_FAILED if broken else PASSED, "; ".join(broken), metrics)


def judged(result: ParityResult, outputs: dict[str, np.ndarray], reference: dict[str, np.ndarray],
           tolerance: Tolerance) -> ParityResult:
    """The row with the verdict of `outputs` written in: status, reason and the worst value of every metric."""
    verdict = judge(outputs, reference, result.precision, tolerance)
    result.status, result.reason = verdict.status, verdict.reason
    fill_metrics(result, verdict.metrics)
    return result


def fill_metrics(result: ParityResult, metrics: list[OutputMetrics]) -> None:
    """Worst value over all outputs for each metric field of the row (none when the structure differed)."""
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


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None
