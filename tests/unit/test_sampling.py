"""The one temporal sampler: torchvision's clip protocol, uniform segments, random clips of the same kind, the
`preprocess.sampling` / `preprocess.fps` fields and their default."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.config import PreprocessConfig
from edgebench.errors import UserError
from edgebench.models.sampling import clip_indices, resampled

TORCHVISION = PreprocessConfig(sampling="consecutive", fps=15, frames=16)  # the Kinetics weights' recipe


def torchvision_clips(total: int, rate: float, clips: int) -> np.ndarray:
    """The frame indices torchvision's video reference evaluates: VideoClips at frame_rate 15, clip_len 16,
    step 1, then UniformClipSampler's `clips` per video."""
    import torch
    from torchvision.datasets.video_utils import VideoClips

    windows, _ = VideoClips.compute_clips_for_video(torch.arange(total), 16, 1, rate, 15)
    return windows[torch.linspace(0, len(windows) - 1, clips).floor().long()].numpy()


@pytest.mark.parametrize("total, rate", [(250, 25.0), (300, 30.0), (97, 29.97), (40, 8.0), (33, 30.0), (121, 12.5)])
@pytest.mark.parametrize("clips", [1, 5])
def test_consecutive_at_15_fps_is_torchvisions_protocol(total, rate, clips):
    np.testing.assert_array_equal(clip_indices(total, rate, TORCHVISION, clips), torchvision_clips(total, rate, clips))


def test_the_files_own_rate_is_not_torchvisions_protocol():
    """Negative control: the comparison above fails for clips taken at the file's 25 fps (what evaluate did)."""
    native = TORCHVISION.model_copy(update={"fps": None})
    assert not np.array_equal(clip_indices(250, 25.0, native, 5), torchvision_clips(250, 25.0, 5))
    assert list(resampled(250, 25.0, None)) == list(range(250))


def test_uniform_spreads_frames_over_the_video_and_k_clips_over_k_segments():
    uniform = PreprocessConfig(sampling="uniform", frames=8)
    (whole,) = clip_indices(16, 8.0, uniform, 1)
    assert list(whole) == [0, 2, 4, 6, 9, 11, 13, 15]  # first and last frame, evenly between
    first, second = clip_indices(250, 25.0, uniform.model_copy(update={"frames": 16}), 2)
    assert (first[0], first[-1], second[0], second[-1]) == (0, 124, 125, 249)
    consecutive = clip_indices(16, 8.0, uniform.model_copy(update={"sampling": "consecutive"}), 1)
    assert list(consecutive[0]) == list(range(8))  # the same 8 frames taken the other way: not the same clip


def test_random_clips_are_clips_of_the_same_kind():
    """Calibration's random places give clips the evenly spaced grid could give: a window of the resampled video
    (consecutive), or `frames` indices evenly over a window of total / K frames (uniform)."""
    rng = np.random.default_rng(0)
    kept = resampled(250, 25.0, 15)
    every = {tuple(kept[s:s + 16]) for s in range(len(kept) - 15)}
    drawn = clip_indices(250, 25.0, TORCHVISION, 20, rng)
    assert {tuple(row) for row in drawn} <= every and len({tuple(row) for row in drawn}) > 10
    native = clip_indices(250, 25.0, TORCHVISION.model_copy(update={"fps": None}), 20, rng)
    assert not {tuple(row) for row in native} & every  # negative control: another protocol's clips are not in it

    uniform = PreprocessConfig(sampling="uniform", frames=8)
    for row in clip_indices(100, 25.0, uniform, 4, rng):  # windows of 25 frames at random starts
        steps = np.diff(row)
        assert row[-1] - row[0] in (24, 25) and steps.min() >= 3 and steps.max() <= 4


def test_a_video_shorter_than_a_clip_is_looped_or_repeated():
    assert list(clip_indices(5, 25.0, PreprocessConfig(frames=8), 2)[1]) == [0, 1, 2, 3, 4, 0, 1, 2]
    assert list(clip_indices(5, 25.0, PreprocessConfig(sampling="uniform", frames=8), 1)[0]) == [0, 1, 1, 2, 2, 3, 3, 4]


def test_fps_applies_to_consecutive_only_and_the_yaml_error_names_the_field(tmp_path):
    from edgebench.models.registry import load_model_config

    path = tmp_path / "m.yaml"
    path.write_text("name: m\nsource: torchvision:mc3_18\ninputs: [{name: video, shape: [1, 3, 16, 112, 112]}]\n"
                    "outputs: [{name: logits, shape: [1, 400]}]\npreprocess: {sampling: uniform, fps: 15}\n")
    with pytest.raises(UserError, match=r"m.yaml: field 'preprocess': Value error, fps applies to sampling: consecutive"):
        load_model_config(str(path))
    path.write_text(path.read_text().replace("uniform", "every other frame"))
    with pytest.raises(UserError, match=r"field 'preprocess.sampling': Input should be 'uniform' or 'consecutive'"):
        load_model_config(str(path))


def torchvision_recipe(source: str, weights: str) -> tuple:
    """What a torchvision video weights' docs and transforms say: (sampling, fps, frames, resize, crop, mean, std)."""
    import re

    import torchvision.models as tm

    member = tm.get_model_weights(source.removeprefix("torchvision:"))[weights]
    docs = dict(re.findall(r"(frame_rate|clip_len)=([\d.]+\d)", member.meta["_docs"]))  # MViT: frame_rate=7.5
    t = member.transforms()
    resize = t.resize_size[0] if len(t.resize_size) == 1 else tuple(t.resize_size)
    return ("consecutive", float(docs["frame_rate"]), int(docs["clip_len"]), resize, t.crop_size[0],
            tuple(t.mean), tuple(t.std))


def test_shipped_models_declare_their_weights_recipe_and_a_yaml_without_it_gets_the_default():
    """Every shipped YAML says how its weights were trained (torchvision's references/video_classification:
    consecutive frames at the docs' frame_rate, clip_len of them) and preprocesses as their transforms do."""
    import torchvision.models as tm

    from edgebench.models.registry import known_models, load_model_config

    for name in known_models():
        cfg = load_model_config(name)
        pre = cfg.preprocess
        assert pre.sampling_declared, name
        if cfg.source.startswith("torchvision:") and cfg.weights:
            declared = (pre.sampling, pre.fps, pre.frames, pre.resize, pre.crop, pre.mean, pre.std)
            assert declared == torchvision_recipe(cfg.source, cfg.weights), name
            assert cfg.inputs[0].shape[2:] == [pre.frames, pre.crop, pre.crop], name
            docs = tm.get_model_weights(cfg.source.removeprefix("torchvision:"))[cfg.weights].meta["_docs"]
            assert f"clips_per_video={cfg.evaluation.clips_per_video}`" in docs, name  # the protocol's clips too
    mc3 = torchvision_recipe("torchvision:mc3_18", "KINETICS400_V1")
    assert ("consecutive", None, *mc3[2:]) != mc3  # negative control: the file's own rate is not the recipe
    assert not PreprocessConfig(frames=8).sampling_declared and PreprocessConfig().sampling == "consecutive"


def test_info_says_which_sampling_and_notes_the_default(tmp_path, capsys):
    from edgebench.cli import main
    from tests.evaluation_fixture import write_model_yaml

    undeclared = write_model_yaml(tmp_path)
    main(["info", "--model", str(undeclared)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sampling"))
    assert line.startswith("sampling     consecutive at the file's frame rate, 8 frames (the default: ")
    declared = tmp_path / "declared.yaml"
    declared.write_text(undeclared.read_text().replace("  frames: 8\n", "  frames: 8\n  sampling: uniform\n"))
    main(["info", "--model", str(declared)])
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("sampling"))
    assert line == "sampling     uniform, 8 frames"
