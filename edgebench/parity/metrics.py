"""Error statistics of one output against the reference, over all clips (arrays are clips x output shape).

Definitions (all in float64):
- max_abs_err, mean_abs_err: of |out - ref|; max_abs_index is the worst element's index, clip first.
- max_rel_err: max of |out - ref| / max(|ref|, 1e-6).
- cosine: cosine similarity of each clip's flattened output with the reference; the worst clip.
- psnr_db: AI Hub Models' definition, 20 * log10((max|ref| + 1e-5) / (rmse + 1e-10)), per clip; the worst clip.
- top1_agree: fraction of rows (clip x batch) whose argmax over the last axis matches the reference's.
- top5_agree: mean over rows of |top5(out) & top5(ref)| / 5 (k = min(5, classes)).
- min_passing_atol: the smallest atol for which np.allclose(out, ref, rtol=1e-3, atol) holds,
  i.e. max(0, max(|out - ref| - 1e-3 * |ref|)) (Polygraphy's "minimum required tolerance").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

REL_FLOOR = 1e-6
PSNR_EPS, PSNR_EPS2 = 1e-5, 1e-10
ATOL_RTOL = 1e-3


@dataclass(frozen=True)
class OutputMetrics:
    """The statistics of one named output; None where a metric does not apply (top-k of a 1-wide output)."""

    name: str
    max_abs_err: float
    max_abs_index: tuple[int, ...]
    mean_abs_err: float
    max_rel_err: float
    cosine: float
    psnr_db: float
    top1_agree: float | None
    top5_agree: float | None
    min_passing_atol: float
    clips: int

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_per_clip(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Cosine similarity per clip (1.0 when both are all zeros, 0.0 when only one is)."""
    a = out.reshape(len(out), -1).astype(np.float64)
    b = ref.reshape(len(ref), -1).astype(np.float64)
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    dot = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = dot / (na * nb)
    cos = np.where((na == 0) & (nb == 0), 1.0, np.where((na == 0) | (nb == 0), 0.0, cos))
    return np.clip(cos, -1.0, 1.0)


def psnr_per_clip(out: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """PSNR in dB per clip, as AI Hub Models compute it (peak = max |ref|)."""
    a = out.reshape(len(out), -1).astype(np.float64)
    b = ref.reshape(len(ref), -1).astype(np.float64)
    rmse = np.sqrt(((a - b) ** 2).mean(axis=1))
    peak = np.abs(b).max(axis=1)
    return 20.0 * np.log10((peak + PSNR_EPS) / (rmse + PSNR_EPS2))


def topk_agreement(out: np.ndarray, ref: np.ndarray, k: int) -> float | None:
    """Mean overlap of the top-k classes per row (last axis = classes); None for outputs with < 2 classes."""
    classes = out.shape[-1] if out.ndim else 0
    if classes < 2:
        return None
    k = min(k, classes)
    a = out.reshape(-1, classes).astype(np.float64)
    b = ref.reshape(-1, classes).astype(np.float64)
    if k == 1:
        return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())
    top_a = np.argsort(-a, axis=1, kind="stable")[:, :k]
    top_b = np.argsort(-b, axis=1, kind="stable")[:, :k]
    return float(np.mean([len(set(x) & set(y)) / k for x, y in zip(top_a, top_b)]))


def compare(name: str, out: np.ndarray, ref: np.ndarray) -> OutputMetrics:
    """All statistics of `out` against `ref` (same shape: clips x output shape)."""
    a = np.asarray(out, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"output '{name}': shape {a.shape} != reference {b.shape}")
    diff = np.abs(a - b)
    worst = int(np.argmax(diff)) if diff.size else 0
    return OutputMetrics(
        name=name,
        max_abs_err=float(diff.max()) if diff.size else 0.0,
        max_abs_index=tuple(int(i) for i in np.unravel_index(worst, diff.shape)) if diff.size else (),
        mean_abs_err=float(diff.mean()) if diff.size else 0.0,
        max_rel_err=float((diff / np.maximum(np.abs(b), REL_FLOOR)).max()) if diff.size else 0.0,
        cosine=float(cosine_per_clip(a, b).min()),
        psnr_db=float(psnr_per_clip(a, b).min()),
        top1_agree=topk_agreement(a, b, 1),
        top5_agree=topk_agreement(a, b, 5),
        min_passing_atol=float(np.maximum(diff - ATOL_RTOL * np.abs(b), 0.0).max()) if diff.size else 0.0,
        clips=len(a),
    )


def compare_outputs(reference: dict[str, np.ndarray], outputs: dict[str, np.ndarray]) -> dict[str, dict]:
    """{output name: metrics as a plain dict} for every reference output; a missing or misshapen one gets
    {"error": why} instead (for callers outside the verdict, such as device outputs from AI Hub)."""
    result: dict[str, dict] = {}
    for name, ref in reference.items():
        out = outputs.get(name)
        if out is None:
            result[name] = {"error": f"no output '{name}' (have {', '.join(outputs) or 'none'})"}
        elif np.shape(out) != np.shape(ref):
            result[name] = {"error": f"output '{name}' shape {np.shape(out)} != reference {np.shape(ref)}"}
        else:
            result[name] = compare(name, out, ref).to_dict()
    return result
