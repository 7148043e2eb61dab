"""Video-level accuracy as torchvision reports it: softmax averaged over a video's clips, then top-k."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Scores:
    """Accuracy figures (percent) and the per-video results the paired drop is computed from."""

    top1: float
    top5: float
    clip_top1: float
    clip_top5: float
    video_probs: np.ndarray  # videos x classes, mean softmax over the video's clips
    video_pred: np.ndarray  # videos, argmax of video_probs
    correct: np.ndarray  # videos, bool: top-1 right
    confused: list[tuple[str, str, int]]  # (true label, predicted label, videos), most frequent first


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64) - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def topk_hit(scores: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Whether each row's target is among its k highest scores (ties broken by index, as torch.topk does)."""
    k = min(k, scores.shape[-1])
    top = np.argsort(-scores, axis=-1, kind="stable")[:, :k]
    return (top == targets[:, None]).any(axis=1)


def score_logits(logits: np.ndarray, video_of_clip: np.ndarray, targets: np.ndarray, labels: tuple[str, ...],
                 confused: int = 5) -> Scores:
    """Score per-clip logits (clips x classes, any runtime or device) against one target per video."""
    logits = np.asarray(logits).reshape(len(video_of_clip), -1)
    videos = len(targets)
    probs = softmax(logits)
    sums = np.zeros((videos, probs.shape[1]))
    np.add.at(sums, video_of_clip, probs)
    video_probs = sums / np.bincount(video_of_clip, minlength=videos)[:, None]
    pred = np.argmax(video_probs, axis=1)
    clip_targets = targets[video_of_clip]
    pct = lambda hits: float(np.mean(hits) * 100.0)  # noqa: E731
    return Scores(
        top1=pct(pred == targets), top5=pct(topk_hit(video_probs, targets, 5)),
        clip_top1=pct(np.argmax(probs, axis=1) == clip_targets), clip_top5=pct(topk_hit(probs, clip_targets, 5)),
        video_probs=video_probs, video_pred=pred, correct=pred == targets,
        confused=most_confused(targets, pred, labels, confused),
    )


def most_confused(targets: np.ndarray, pred: np.ndarray, labels: tuple[str, ...], count: int) -> list[tuple[str, str, int]]:
    """The (true, predicted) pairs of wrong videos, most frequent first."""
    wrong = targets != pred
    pairs, counts = np.unique(np.stack([targets[wrong], pred[wrong]], axis=1), axis=0, return_counts=True)
    order = sorted(range(len(counts)), key=lambda i: (-counts[i], tuple(pairs[i])))[:count]
    name = lambda i: labels[i] if i < len(labels) else str(i)  # noqa: E731
    return [(name(int(pairs[i][0])), name(int(pairs[i][1])), int(counts[i])) for i in order]
