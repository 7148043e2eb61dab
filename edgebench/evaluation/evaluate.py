"""Evaluate one (artifact, runtime) on an EvalSet in a child process, score it, judge its drop against eager."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgebench.catalogue import EAGER
from edgebench.config import EvaluationConfig, base_precision, validate
from edgebench.errors import UserError
from edgebench.evaluation import stats
from edgebench.evaluation.clips import EvalSet, build_eval_set
from edgebench.evaluation.dataset import load_dataset
from edgebench.evaluation.score import score_logits
from edgebench.isolation import run_child
from edgebench.models.registry import load_model_config
from edgebench.records import ACCURACY_FAILED, AccuracyResult, Artifact, ModelRef, PASSED, RUNTIME_FAILED, SKIPPED, atomic_path, write_text_atomic
from edgebench.runtimes.registry import get_runtime



def evaluation_config(ref: ModelRef, overrides: dict[str, Any] | None = None) -> EvaluationConfig:
    """The model YAML's `evaluation:` section with the CLI's values (dataset, clips, max videos) on top."""
    cfg = load_model_config(ref.config_path).evaluation
    if cfg.dataset and not Path(cfg.dataset).exists() and not Path(cfg.dataset).is_absolute():
        beside = Path(ref.config_path).parent / cfg.dataset  # relative to the model YAML, as labels files are
        cfg = cfg.model_copy(update={"dataset": str(beside)}) if beside.exists() else cfg
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not given:
        return cfg
    return validate(EvaluationConfig, {**cfg.model_dump(), **given}, "--dataset/--clips-per-video/--max-videos")


def prepare_eval_set(ref: ModelRef, cfg: EvaluationConfig, cache_dir: Path, listing: Path | None = None) -> EvalSet:
    """Read the dataset, check the clips fit the model's input, decode every video once (cached);
    unreadable videos are listed in `listing`."""
    pre = load_model_config(ref.config_path).preprocess
    shape = tuple(ref.inputs[0].shape)
    clip = (3, pre.frames, pre.crop, pre.crop)
    if tuple(shape[-4:]) != clip:
        raise UserError(f"evaluation of {ref.name}: its preprocessing makes {'x'.join(map(str, clip))} clips, "
                        f"the model input is {'x'.join(map(str, shape))} (drop --input-shape, or fix preprocess:)")
    videos = load_dataset(cfg.dataset, ref.labels, cfg.max_videos)
    eset = build_eval_set(ref.name, cfg.dataset, ref.labels, videos, pre, cfg.clips_per_video,
                          Path(cache_dir) / "evaluation" / "clips")
    if listing is not None and eset.unreadable:
        write_text_atomic(listing, "".join(f"{path}\t{why}\n" for path, why in eset.unreadable))
        eset = dataclasses.replace(eset, unreadable_list=str(listing))
    return eset


def run_logits(artifact: Artifact, runtime_name: str, ref: ModelRef, eset: EvalSet, threads: int,
               runtime_options: dict[str, Any] | None = None) -> np.ndarray:
    """Every clip of every video through one runtime session: clips x classes (in the child process)."""
    name = ref.inputs[0].name
    with get_runtime(runtime_name, runtime_options).load(artifact, ref, threads) as session:
        out = [np.asarray(session.run({name: clip[None]})[ref.outputs[0].name]).reshape(-1) for clip in iter_clips(eset)]
    return np.stack(out)


def iter_clips(eset: EvalSet) -> Iterator[np.ndarray]:
    """Every clip (3 x T x H x W float32 in [0, 1]) in the order score_outputs expects; one video in memory at a time."""
    from edgebench.models.video import to_model_input

    for v in eset.videos:
        yield from to_model_input(np.load(v.clips_path))


def score_outputs(artifact: Artifact, runtime: str, eset: EvalSet, logits: np.ndarray, out_path: Path,
                  seconds: float = 0.0, runtime_version: str = "") -> AccuracyResult:
    """An AccuracyResult from per-clip logits (clips x classes, in eset order) from anywhere: a local runtime,
    an AI Hub inference job; saves the per-video results the drop against eager is computed from."""
    s = score_logits(logits, eset.video_of_clip, eset.targets, eset.labels)
    with atomic_path(Path(out_path)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, video_probs=s.video_probs, video_pred=s.video_pred, targets=eset.targets,
                     logits=np.asarray(logits, dtype=np.float32))
    return AccuracyResult(
        artifact.model, artifact.format, artifact.precision, runtime, PASSED, dataset=eset.dataset,
        videos=len(eset.videos), unreadable=len(eset.unreadable), clips=int(len(eset.video_of_clip)),
        top1=s.top1, top5=s.top5, clip_top1=s.clip_top1, clip_top5=s.clip_top5, confused=s.confused,
        predictions_path=str(out_path), seconds=seconds, runtime_version=runtime_version,
        reason=f"{len(eset.unreadable)} unreadable video(s) skipped: {eset.unreadable_list}" if eset.unreadable else "")


def evaluate_artifact(artifact: Artifact, runtime_name: str, ref: ModelRef, eset: EvalSet, threads: int,
                      timeout_s: float, log_path: Path, out_path: Path,
                      runtime_options: dict[str, Any] | None = None) -> AccuracyResult:
    """run_logits in a child process (a crash or hang becomes runtime_failed), then score in this one; the
    session has `runtime_options`, as the parity and latency rows of the same runtime do."""
    runtime = get_runtime(runtime_name, runtime_options)
    row = AccuracyResult(artifact.model, artifact.format, artifact.precision, runtime_name, SKIPPED,
                         dataset=eset.dataset, videos=len(eset.videos), unreadable=len(eset.unreadable),
                         runtime_version=runtime.version())
    skip = runtime.why_not(artifact)
    if skip:
        row.reason = skip
        return row
    start = time.perf_counter()
    done = run_child(run_logits, (artifact, runtime_name, ref, eset, threads, runtime_options), timeout_s, log_path)
    row.peak_mb = done.memory.peak_mb
    if done.failure:
        row.status = done.failure.status(RUNTIME_FAILED)
        row.reason = f"{done.failure.reason} (log: {done.failure.log_path})"
        return row
    scored = score_outputs(artifact, runtime_name, eset, done.value, out_path, time.perf_counter() - start,
                           row.runtime_version)
    scored.peak_mb = row.peak_mb
    return scored


def _is_eager(r: AccuracyResult) -> bool:
    """The baseline row every drop is measured against."""
    return (r.format, r.runtime) == (EAGER.format, EAGER.runtime)


def judge_drops(results: list[AccuracyResult], cfg: EvaluationConfig) -> list[AccuracyResult]:
    """Fill each artifact's top-1 drop against the eager row of its model, its interval and its verdict."""
    eager = {r.model: r for r in results if _is_eager(r) and r.status == PASSED}
    for r in results:
        base = eager.get(r.model)
        if r.status != PASSED or _is_eager(r):
            continue
        if base is None:
            r.reason = "no eager result to compare with"
            continue
        with np.load(base.predictions_path) as b, np.load(r.predictions_path) as a:
            base_ok, ok = b["video_pred"] == b["targets"], a["video_pred"] == a["targets"]
        r.top1_drop, r.top1_drop_low, r.top1_drop_high = stats.paired_drop(base_ok, ok, cfg.resamples, cfg.seed)
        r.bound = cfg.bounds.get(base_precision(r.precision))  # a repaired int8-mixed file meets int8's bound
        r.verdict = stats.verdict(r.top1_drop_low, r.top1_drop_high, r.bound)
        r.reason = drop_reason(r) or r.reason
        if r.verdict == stats.FAIL:
            r.status = ACCURACY_FAILED
    return results


def drop_reason(r: AccuracyResult) -> str:
    """One line: the drop, its interval and what it means against the bound ("" when within it)."""
    figure = (f"top-1 drop {r.top1_drop:+.1f} points (95 % CI {r.top1_drop_low:+.1f} to {r.top1_drop_high:+.1f}, "
              f"{r.videos} videos)")
    if r.bound is None:
        return f"{figure}; no bound configured for {r.precision} (evaluation.bounds)"
    if r.verdict == stats.FAIL:
        return f"{figure} is beyond the {r.precision} bound of {r.bound:g}"
    if r.verdict == stats.UNSURE:
        return f"{figure} straddles the {r.precision} bound of {r.bound:g}: not enough videos to tell"
    return ""

