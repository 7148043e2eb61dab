"""`--calibration` with a folder-per-class tree: an ONNX int8 export of a small trained-shape net calibrates on
clips picked from every class, and its row says so."""

from __future__ import annotations

import contextlib
import io
import json

from edgebench.cli import main
from tests.sampling_fixture import make_set, write_model_yaml


def test_an_int8_export_calibrates_on_a_labelled_tree(tmp_path):
    tree = make_set(tmp_path / "train", per_class=2, seed=7)
    model = write_model_yaml(tmp_path, "uniform")
    config = tmp_path / "pipeline.yaml"
    config.write_text("formats: {onnx: [int8]}\nthreads: 1\ncalibration: {clips: 6}\n")
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        main(["export", "--model", str(model), "--config", str(config), "--out", str(tmp_path / "out"),
              "--calibration", str(tree)])
    (record,) = (tmp_path / "out" / "cache").glob("blink_uniform/onnx-int8-*/artifact.json")
    artifact = json.loads(record.read_text())
    assert artifact["status"] == "passed", printed.getvalue()
    assert artifact["calibration"].startswith("video:6 videos of 3 classes from train x6 minmax ")
