"""Real clips: decoding, frame sampling and preprocessing against torchvision's own transform."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.video import MC3_18_Weights

from edgebench.config import PreprocessConfig
from edgebench.errors import UserError
from edgebench.models.video import decode_video, preprocess, read_clips

PRE = PreprocessConfig(sampling="uniform")


def test_preprocess_matches_torchvision_transform(bikes):
    video = decode_video(bikes)
    assert video.frames.shape == (250, 272, 640, 3) and video.fps == 25.0
    clip = video.frames[np.linspace(0, 249, 16).round().astype(int)]
    ours = torch.from_numpy(preprocess(clip, PRE))  # C, T, H, W in [0, 1]
    mean = torch.tensor(PRE.mean).reshape(3, 1, 1, 1)
    std = torch.tensor(PRE.std).reshape(3, 1, 1, 1)
    theirs = MC3_18_Weights.KINETICS400_V1.transforms()(torch.from_numpy(clip).permute(0, 3, 1, 2))
    assert theirs.shape == ours.shape == (3, 16, 112, 112)
    torch.testing.assert_close((ours - mean) / std, theirs, atol=1e-6, rtol=0)


def test_one_resize_number_is_the_shorter_side_as_in_torchvisions_newer_video_weights(bikes):
    from torchvision.models.video import MViT_V2_S_Weights

    frames = decode_video(bikes).frames[:4]
    pre = PreprocessConfig(frames=4, resize=256, crop=224, mean=(0.45, 0.45, 0.45), std=(0.225, 0.225, 0.225))
    ours = torch.from_numpy(preprocess(frames, pre))
    theirs = MViT_V2_S_Weights.KINETICS400_V1.transforms()(torch.from_numpy(frames).permute(0, 3, 1, 2))
    mean, std = torch.tensor(pre.mean).reshape(3, 1, 1, 1), torch.tensor(pre.std).reshape(3, 1, 1, 1)
    assert theirs.shape == ours.shape == (3, 4, 224, 224)
    torch.testing.assert_close((ours - mean) / std, theirs, atol=1e-6, rtol=0)
    squeezed = torch.from_numpy(preprocess(frames, pre.model_copy(update={"resize": (256, 256)})))
    assert not torch.allclose((squeezed - mean) / std, theirs, atol=1e-3)  # negative control: a square resize


def test_preprocess_comparison_can_fail(bikes):
    """Negative control: a crop one pixel off is not torchvision's transform."""
    frames = decode_video(bikes).frames[:16]
    shifted = preprocess(frames[:, :, 1:], PRE)
    theirs = MC3_18_Weights.KINETICS400_V1.transforms()(torch.from_numpy(frames).permute(0, 3, 1, 2))
    mean = np.array(PRE.mean).reshape(3, 1, 1, 1)
    std = np.array(PRE.std).reshape(3, 1, 1, 1)
    assert not np.allclose((shifted - mean) / std, theirs.numpy(), atol=1e-3)


def test_read_clips_layout_and_range(bikes):
    clips = read_clips(bikes, PRE, clips=2)
    assert clips.shape == (2, 3, 16, 112, 112) and clips.dtype == np.float32
    assert 0.0 <= clips.min() and clips.max() <= 1.0
    assert not np.allclose(clips[0], clips[1])


def test_missing_video(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        read_clips(tmp_path / "none.mp4", PRE)


def test_undecodable_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 4096)
    with pytest.raises(UserError, match=f"video {bad}: cannot decode"):
        read_clips(bad, PRE)


def test_short_clip_is_looped_and_said(tmp_path, bikes, caplog):
    import av

    short = tmp_path / "short.mp4"
    with av.open(str(bikes)) as src, av.open(str(short), "w") as dst:
        stream = dst.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 176, 144, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i == 5:
                break
            for packet in stream.encode(frame.reformat(width=176, height=144, format="yuv420p")):
                dst.mux(packet)
        for packet in stream.encode():
            dst.mux(packet)
    clips = read_clips(short, PRE)
    assert clips.shape == (1, 3, 16, 112, 112)
    assert "fewer than 16" in caplog.text and "repeating frames" in caplog.text
    consecutive = read_clips(short, PRE.model_copy(update={"sampling": "consecutive"}))
    assert consecutive.shape == (1, 3, 16, 112, 112) and "looping" in caplog.text
    np.testing.assert_array_equal(consecutive[0, :, 5], consecutive[0, :, 0])  # the 5 frames, looped
