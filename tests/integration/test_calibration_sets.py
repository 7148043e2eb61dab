"""Item 5 of issue 23 end to end: `edgebench parity --calibration <tree>` calibrates an ONNX int8 export on clips
picked from every class of a labelled tree, and judges it on the clips of one video alone (random_clips: 0)."""

from __future__ import annotations

import contextlib
import io

import numpy as np

from edgebench.cli import main
from tests.sampling_fixture import make_set, write_model_yaml


def test_int8_calibrated_on_a_labelled_tree_is_judged_on_video_clips_alone(tmp_path):
    tree = make_set(tmp_path / "train", per_class=2, seed=7)
    video = make_set(tmp_path / "held-out", per_class=1, seed=8) / "blinking_fast" / "00.mp4"
    model = write_model_yaml(tmp_path, "consecutive")
    config = tmp_path / "pipeline.yaml"
    config.write_text("formats: {onnx: [int8]}\nruntimes: [onnxruntime]\nthreads: 1\ncalibration: {clips: 6}\n"
                      f"parity: {{random_clips: 0, video: {video}, video_clips: 3}}\n")
    out = tmp_path / "out"
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        main(["parity", "--model", str(model), "--config", str(config), "--out", str(out), "--calibration", str(tree)])
    (run_dir,) = (out / "runs").iterdir()
    with np.load(run_dir / "inputs" / "blink_consecutive.inputs.npz") as inputs:
        assert inputs["video"].shape == (3, 1, 3, 8, 32, 32)  # the video's three clips, no random one
    (artifact,) = (out / "cache").glob("blink_consecutive/onnx-int8-*/artifact.json")
    assert '"calibration": "video:6 videos of 3 classes from train x6 minmax ' in artifact.read_text()
    row = next(line for line in printed.getvalue().splitlines() if "onnxruntime" in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]  # model, format, precision, runtime, status, ..., clips, reason
    assert cells[1:5] == ["onnx", "int8", "onnxruntime", "passed"] and cells[-2] == "3", row
