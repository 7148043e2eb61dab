"""Evaluation pieces without child processes: datasets, clips, scoring, the paired drop, rows and drift."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.config import HistoryConfig, PreprocessConfig
from edgebench.errors import UserError
from edgebench.evaluation import clips as clips_mod
from edgebench.evaluation.dataset import Video, balanced_subset, label_key, load_dataset
from edgebench.evaluation.score import score_logits
from edgebench.evaluation.stats import FAIL, PASS, UNSURE, ci_text, paired_drop, verdict
from edgebench.records import ACCURACY_FAILED, PASSED, AccuracyResult, RunData
from tests.evaluation_fixture import bars_video, write_video
from tests.evaluation_model import DIRECTIONS

LABELS = ("air drumming", "Moving Left", "juggling balls")
PRE = PreprocessConfig(frames=8, resize=(32, 32), crop=32)


def touch(path, data: bytes = b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- datasets


def test_labels_match_case_underscore_and_space_insensitively(tmp_path):
    touch(tmp_path / "Air_Drumming" / "a.mp4")
    touch(tmp_path / "moving_left" / "b.avi")
    touch(tmp_path / "moving_left" / "notes.txt")  # not a video: ignored
    videos = load_dataset(tmp_path, LABELS)
    assert [(v.label, v.target) for v in videos] == [("air drumming", 0), ("Moving Left", 1)]
    assert label_key("  Juggling__balls ") == label_key("juggling balls")


def test_unknown_labels_are_one_error_listing_them(tmp_path):
    for name in ("air_drumming", "surfing", "Zumba"):
        touch(tmp_path / name / "a.mp4")
    with pytest.raises(UserError, match=r"2 label\(s\) the model does not know: Zumba, surfing"):
        load_dataset(tmp_path, LABELS)


@pytest.mark.parametrize("make, message", [
    (lambda root: root.mkdir(), "no videos found"),
    (lambda root: None, "no such file or folder"),
])
def test_empty_or_missing_dataset_is_an_error(tmp_path, make, message):
    root = tmp_path / "set"
    make(root)
    with pytest.raises(UserError, match=message):
        load_dataset(root, LABELS)


def test_csv_manifest_paths_windows_and_missing_column(tmp_path):
    touch(tmp_path / "clips" / "a.mp4")
    good = tmp_path / "val.csv"
    good.write_text("path,label,start_s,end_s\nclips/a.mp4,Air_drumming,1.5,3\n/abs/b.mp4,juggling balls,,\n")
    a, b = load_dataset(good, LABELS)
    assert (a.path, a.target, a.start_s, a.end_s) == (str(tmp_path / "clips" / "a.mp4"), 0, 1.5, 3.0)
    assert (b.path, b.target, b.start_s) == ("/abs/b.mp4", 2, None)
    bad = tmp_path / "bad.csv"
    bad.write_text("file,label\na.mp4,surfing\n")
    with pytest.raises(UserError, match=r"bad.csv: missing column path \(header: file, label"):
        load_dataset(bad, LABELS)
    with pytest.raises(UserError, match="no labels list"):
        load_dataset(good, ())


def test_balanced_subset_takes_every_class_in_turn():
    videos = [Video(f"{t}-{i}", "x", t) for t in range(3) for i in range(5)]
    chosen = balanced_subset(videos, 7)
    assert [sum(v.target == t for v in chosen) for t in range(3)] == [3, 2, 2]
    assert balanced_subset(videos, 100) == sorted(videos, key=lambda v: (v.target, v.path))


# ---------------------------------------------------------------- clips


def test_cached_uint8_clips_are_exactly_the_models_preprocessing(tmp_path):
    from edgebench.models.video import decode_video, preprocess, sample_clips, to_model_input

    path = tmp_path / "v.mp4"
    write_video(path, bars_video(DIRECTIONS[0], np.random.default_rng(0)))
    video = decode_video(path)
    u8 = sample_clips(video, PRE, 3)
    assert u8.dtype == np.uint8 and u8.shape == (3, 3, 8, 32, 32)
    for i, s in enumerate([0, 12, 24]):  # consecutive frames, starts evenly spaced over 32 frames
        np.testing.assert_array_equal(to_model_input(u8[i]), preprocess(video.frames[s:s + 8], PRE))


def test_cached_clips_are_keyed_by_the_sampling_protocol(tmp_path):
    path = tmp_path / "set" / "moving_right" / "a.mp4"
    write_video(path, bars_video(DIRECTIONS[0], np.random.default_rng(2)))
    videos = load_dataset(tmp_path / "set", DIRECTIONS)
    protocols = [PRE, PRE.model_copy(update={"sampling": "uniform"}), PRE.model_copy(update={"fps": 4.0})]
    sets = [clips_mod.build_eval_set("m", "set", DIRECTIONS, videos, pre, 2, tmp_path / "cache") for pre in protocols]
    paths = [s.videos[0].clips_path for s in sets]
    assert len(set(paths)) == 3  # one cache entry per protocol, none served for another
    arrays = [np.load(p) for p in paths]
    assert not np.array_equal(arrays[0], arrays[1]) and not np.array_equal(arrays[0], arrays[2])


def test_each_video_is_decoded_once_and_unreadable_ones_are_counted(tmp_path, monkeypatch):
    good = tmp_path / "set" / "moving_right" / "a.mp4"
    write_video(good, bars_video(DIRECTIONS[0], np.random.default_rng(1)))
    broken = touch(tmp_path / "set" / "moving_left" / "b.mp4", b"not a video at all")
    videos = load_dataset(tmp_path / "set", DIRECTIONS)
    readable, unreadable = [v for v in videos if v.path == str(good)], [v for v in videos if v.path == str(broken)]
    first = clips_mod.build_eval_set("m", "set", DIRECTIONS, videos, PRE, 5, tmp_path / "cache")
    assert [v.path for v in first.videos] == [str(good)] and first.videos[0].clips == 5  # overlapping clips: as asked
    assert first.unreadable[0][0] == str(broken) and "cannot decode" in first.unreadable[0][1]
    with pytest.raises(UserError, match="none of its 1 videos could be read"):
        clips_mod.build_eval_set("m", "set", DIRECTIONS, unreadable, PRE, 5, tmp_path / "cache")
    monkeypatch.setattr(clips_mod, "decode", lambda v: pytest.fail(f"decoded {v.path} again"))
    again = clips_mod.build_eval_set("m", "set", DIRECTIONS, readable, PRE, 5, tmp_path / "cache")
    assert again.videos == first.videos


# ---------------------------------------------------------------- scoring and statistics


def test_video_level_scores_average_softmax_over_clips():
    labels = ("a", "b", "c")
    # video 0 (a): one confident right clip outweighs two weakly wrong ones; video 1 (b): predicted c
    logits = np.array([[9, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 3], [0, 1, 2]], dtype=np.float32)
    s = score_logits(logits, np.array([0, 0, 0, 1, 1]), np.array([0, 1]), labels)
    assert list(s.video_pred) == [0, 2] and s.top1 == 50.0
    assert s.clip_top1 == pytest.approx(20.0)  # only clip 0 is right on its own
    assert s.top5 == 100.0 and s.confused == [("b", "c", 1)]


def test_identical_results_drop_nothing_and_pass_a_zero_bound():
    ok = np.array([True] * 30 + [False] * 10)
    assert paired_drop(ok, ok) == (0.0, 0.0, 0.0)
    assert verdict(0.0, 0.0, 0.0) == PASS


def test_a_real_drop_fails_and_a_small_sample_is_not_enough():
    rng = np.random.default_rng(0)
    eager = rng.random(200) < 0.9
    broken = eager & (rng.random(200) < 0.5)  # half of eager's right answers lost
    drop, low, high = paired_drop(eager, broken)
    assert 35 < drop < 55 and low > 30 and verdict(low, high, 1.0) == FAIL
    few_e, few = np.array([True, True, True, False]), np.array([True, True, False, False])
    d, lo, hi = paired_drop(few_e, few)
    assert d == 25.0 and lo <= 0.0 < 1.0 < hi and verdict(lo, hi, 1.0) == UNSURE
    assert verdict(lo, hi, None) == "" and ci_text(lo, hi).startswith("[")


def test_bootstrap_interval_matches_the_normal_approximation_on_many_videos():
    rng = np.random.default_rng(3)
    eager = rng.random(4000) < 0.8
    other = np.where(rng.random(4000) < 0.05, ~eager, eager)
    drop, low, high = paired_drop(eager, other, resamples=20000)
    d = eager.astype(float) - other.astype(float)
    half = 1.96 * d.std() / np.sqrt(len(d)) * 100
    assert low == pytest.approx(drop - half, abs=0.15) and high == pytest.approx(drop + half, abs=0.15)


# ---------------------------------------------------------------- rows and history


def _result(**kw) -> AccuracyResult:
    base = dict(model="m", format="onnx", precision="fp32", runtime="onnxruntime", status=PASSED, top1=95.0, top5=99.0)
    return AccuracyResult(**{**base, **kw})


def test_rows_carry_accuracy_and_a_failed_verdict_fails_the_row():
    from edgebench.reports.rows import flatten

    run = RunData("r1", "2026-12-01T00:00:00+00:00", "", "/tmp", 2, accuracy=[
        _result(format="pytorch", runtime="torch", top1=97.5),
        _result(status=ACCURACY_FAILED, top1=40.0, top1_drop=57.5, top1_drop_low=45.0, top1_drop_high=70.0,
                verdict="failed", reason="top-1 drop beyond the bound")])
    df = flatten(run).set_index("format")
    assert df.loc["pytorch", "top1"] == 97.5 and df.loc["pytorch", "status"] == PASSED
    assert df.loc["onnx", "status"] == ACCURACY_FAILED and df.loc["onnx", "top1_drop_ci"] == "[+45.00, +70.00]"
    assert df.loc["onnx", "accuracy"] == "failed" and "accuracy: top-1 drop" in df.loc["onnx", "reason"]


def test_accuracy_drift_is_flagged_like_a_latency_regression():
    from edgebench.reports.regressions import ACCURACY_DRIFT, evaluate
    from edgebench.reports.rows import frame

    key = dict(model="m", format="onnx", precision="int8", runtime="onnxruntime", device="local", status=PASSED)
    past = frame([{**key, "run_id": f"n{i}", "started_at": f"2026-11-0{i + 1}T00:00:00+00:00", "top1": 90.0}
                  for i in range(3)])
    def findings(top1):
        tonight = frame([{**key, "run_id": "t", "started_at": "2026-11-09T00:00:00+00:00", "top1": top1}])
        return [f for f in evaluate(tonight, past, HistoryConfig())[1] if f.kind == ACCURACY_DRIFT]
    (drift,) = findings(85.0)
    assert drift.severity == "error" and "top-1 85.0 % vs baseline 90.0 %" in drift.message
    assert findings(89.5) == []  # within accuracy_drift_points


def test_score_outputs_and_judge_drops_flag_only_the_broken_outputs(tmp_path):
    """The path device outputs take (per-clip logits -> AccuracyResult -> drop and verdict), without a runtime."""
    from edgebench.config import EvaluationConfig
    from edgebench.evaluation.evaluate import judge_drops, score_outputs
    from edgebench.records import Artifact

    videos = tuple(clips_mod.VideoClips(f"v{i}.mp4", i % 4, "", 2) for i in range(40))
    eset = clips_mod.EvalSet("m", "set", DIRECTIONS, videos, (("bad.mp4", "cannot decode"),), 2, "list.txt")
    right = np.eye(4, dtype=np.float32)[eset.targets[eset.video_of_clip]] * 5
    wrong = right.copy()
    wrong[:40] = np.roll(wrong[:40], 1, axis=1)  # both clips of the first 20 videos now vote for another class

    def result(fmt, runtime, logits):
        art = Artifact("m", fmt, "fp32", PASSED)
        return score_outputs(art, runtime, eset, logits, tmp_path / f"{fmt}-{runtime}.npz")

    eager, same, broken = result("pytorch", "torch", right), result("onnx", "aihub:S24", right), result("tflite", "x", wrong)
    assert eager.top1 == 100.0 and eager.unreadable == 1 and "1 unreadable video(s) skipped: list.txt" in eager.reason
    judge_drops([eager, same, broken], EvaluationConfig())
    assert (same.status, same.verdict, same.top1_drop) == (PASSED, PASS, 0.0)
    assert (broken.status, broken.verdict, broken.top1_drop) == (ACCURACY_FAILED, FAIL, 50.0)
    assert broken.top1_drop_low > 0 and "beyond the fp32 bound of 0" in broken.reason
