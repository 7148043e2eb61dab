"""Calibration from a labelled set: trees, manifests, folders and files; class-balanced seeded picks; clips of the
model's own sampler, the kind parity's video clips are; parity on video clips alone."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.config import CalibrationConfig, ParityConfig
from edgebench.errors import UserError
from edgebench.evaluation.dataset import Video
from edgebench.models.calibration import calibration_videos, make_calibration, pick_videos
from tests.evaluation_fixture import write_video
from tests.evaluation_model import BLINKS
from tests.sampling_fixture import disk_video, make_set, write_model_yaml


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Two videos per blinking class, folder per class."""
    return make_set(tmp_path_factory.mktemp("calib") / "train", per_class=2, seed=5)


@pytest.fixture(scope="module")
def refs(tmp_path_factory):
    """The blink net (random weights: clips do not depend on them) declared with each sampling protocol."""
    from edgebench.models.source import resolve_model

    folder = tmp_path_factory.mktemp("calib-yaml")
    return {s: resolve_model(str(write_model_yaml(folder, s))) for s in ("uniform", "consecutive")}


def test_trees_manifests_folders_and_files_are_all_calibration_sets(tree, tmp_path):
    videos = calibration_videos([str(tree)])
    assert [(v.label, v.target) for v in videos] == [(c.replace(" ", "_"), i) for i in range(3) for c in [BLINKS[i]] * 2]
    manifest = tmp_path / "set.csv"
    manifest.write_text(f"path,label,start_s,end_s\n{videos[0].path},fast,0.5,1.5\n{videos[4].path},steady,,\n")
    loose = tmp_path / "loose"
    write_video(loose / "a.mp4", disk_video("steady", np.random.default_rng(0)))
    mixed = calibration_videos([str(manifest), str(loose), videos[2].path])
    assert [(v.label, v.start_s, v.end_s) for v in mixed] == [("fast", 0.5, 1.5), ("steady", None, None),
                                                               ("", None, None), ("", None, None)]
    assert [v.target for v in mixed] == [1, 2, 0, 0]  # loose files form one class of their own
    (tmp_path / "empty" / "class").mkdir(parents=True)
    with pytest.raises(UserError, match=r"calibration.videos: .*empty holds no video \(neither video files nor"):
        calibration_videos([str(tmp_path / "empty")])


def test_picks_take_the_classes_in_turn_and_follow_the_seed():
    videos = [Video(f"{c}{i}.mp4", c, t) for t, (c, n) in enumerate([("a", 10), ("b", 3), ("c", 1)]) for i in range(n)]
    picks = pick_videos(videos, 9, seed=0)
    per_class = {c: sum(n for v, n in picks if v.label == c) for c in "abc"}
    assert per_class == {"a": 3, "b": 3, "c": 3} and sum(n for _, n in picks) == 9
    assert [n for v, n in picks if v.label == "c"] == [3]  # a class with one video gives that video three times
    assert pick_videos(videos, 9, seed=0) == picks and pick_videos(videos, 9, seed=1) != picks


def clips_of(path: str, ref, clips: int) -> np.ndarray:
    """Every clip `clips` evenly spaced windows of the model's sampler take from the video, float [0, 1]."""
    from edgebench.models.video import preprocess_of, read_clips

    return read_clips(path, preprocess_of(ref), clips)


def test_calibration_and_parity_clips_come_from_the_same_sampler(tree, refs, tmp_path):
    from edgebench.models.inputs import make_inputs

    cfg = CalibrationConfig(videos=[str(tree)], clips=6, seed=3)
    picks = pick_videos(calibration_videos(cfg.videos), cfg.clips, cfg.seed)
    assert len(picks) == 6 and {n for _, n in picks} == {1}  # one clip of each video

    uniform = refs["uniform"]  # one uniform clip spans the whole video: calibration, parity and demo take the same
    cal = make_calibration(uniform, cfg, tmp_path)
    assert cal.source == "video:6 videos of 3 classes from train" and cal.clips == 6
    for (video, _), clip in zip(picks, cal.load(uniform)):
        parity = make_inputs(uniform, ParityConfig(random_clips=0, video=video.path, video_clips=1))["video"]
        np.testing.assert_array_equal(clip["video"], parity[0])
        np.testing.assert_array_equal(clip["video"][0], clips_of(video.path, uniform, 1)[0])

    consecutive = refs["consecutive"]  # 8 consecutive frames of 16: each clip is one of the 9 possible windows
    windows = {video.path: clips_of(video.path, consecutive, 9) for video, _ in picks}
    calibrated = [c["video"][0] for c in make_calibration(consecutive, cfg, tmp_path).load(consecutive)]
    for (video, _), clip in zip(picks, calibrated):
        assert any(np.array_equal(clip, w) for w in windows[video.path]), video.path
        assert not np.array_equal(clip, clips_of(video.path, uniform, 1)[0])  # negative control: not the other kind
    parity = make_inputs(consecutive, ParityConfig(random_clips=0, video=picks[0][0].path, video_clips=2))["video"]
    assert all(any(np.array_equal(p[0], w) for w in windows[picks[0][0].path]) for p in parity)


def test_parity_judges_video_clips_alone_only_when_a_video_is_set(refs, tree, tmp_path):
    from edgebench.config import load_pipeline_config
    from edgebench.models.inputs import make_inputs

    path = tmp_path / "pipeline.yaml"
    path.write_text("parity: {random_clips: 0}\n")
    with pytest.raises(UserError, match=r"pipeline.yaml: field 'parity': Value error, random_clips: 0 needs parity.video"):
        load_pipeline_config(path)
    video = str(next((tree / "steady").iterdir()))
    path.write_text(f"parity: {{random_clips: 0, video: {video}, video_clips: 2}}\n")
    inputs = make_inputs(refs["uniform"], load_pipeline_config(path).parity)["video"]
    assert inputs.shape == (2, 1, 3, 8, 32, 32)
    np.testing.assert_array_equal(inputs[:, 0], clips_of(video, refs["uniform"], 2))


def test_the_calibration_option_replaces_calibration_videos_and_a_bad_path_is_one_line(monkeypatch, capsys):
    from edgebench.config import PipelineConfig
    from edgebench.pipeline import narrow_config
    from tests.unit.test_cli_errors import assert_one_line_error, run_cli

    cfg = narrow_config(PipelineConfig(calibration={"videos": ["old/"], "clips": 4}), calibration=["train/", "x.csv"])
    assert (cfg.calibration.videos, cfg.calibration.clips) == (["train/", "x.csv"], 4)
    assert narrow_config(cfg).calibration == cfg.calibration
    code, err = run_cli(monkeypatch, capsys, "export", "--formats", "onnx", "--calibration", "/nope/train")
    assert_one_line_error(code, err, "calibration.videos: no such file or folder /nope/train")
