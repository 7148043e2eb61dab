"""`edgebench repair` on real toolchains: the outlier fixture repaired in ONNX, TFLite and ExecuTorch (the two layers
around the outlier kept float, named as localization names them, within the trial budget); garbage calibration
beyond repair (repair_failed, exit 1); on resnet_mixed a passing int8 file left alone and an injected x2 scale
repaired by keeping its layer float."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from edgebench.records import PARITY_FAILED, PASSED, REPAIR_FAILED
from edgebench.reports.writer import read_results_csv
from tests.conftest import SMALL_SHAPE
from tests.outlier_fixture import FORMATS, OUTLIER_LAYERS, OutlierFixture, build_outlier_fixture

INJECTED = "model.layer3.0.conv1.0"  # a per-frame conv of resnet_mixed: one Conv node in the lowered ONNX graph


@pytest.fixture(scope="module")
def fx(tmp_path_factory) -> OutlierFixture:
    return build_outlier_fixture(tmp_path_factory.mktemp("outlier"))


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """One --out (one artifact cache) for the fixture's runs: the fp32 exports are made once."""
    return tmp_path_factory.mktemp("repair-out")


def repair(monkeypatch, capsys, *args: str) -> tuple[int, str, Path]:
    """`edgebench repair ARGS`: exit code, what it printed, and the run folder."""
    from edgebench.cli import main

    monkeypatch.setattr(sys, "argv", ["edgebench", "repair", *args])
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    printed = capsys.readouterr().out
    results = next(line.split("results: ", 1)[1] for line in printed.splitlines() if line.startswith("results: "))
    return code, printed, Path(results.strip()).parent


def test_outlier_channel_repaired_in_onnx_tflite_and_executorch(fx, out, monkeypatch, capsys):
    code, printed, run = repair(monkeypatch, capsys, "--model", str(fx.model_yaml), "--weights", str(fx.weights),
                                "--config", str(fx.pipeline_yaml), "--no-bench", "--out", str(out))
    assert code == 0, printed
    rows = read_results_csv(run / "results.csv")
    record = json.loads((run / "run.json").read_text())["records"]
    budget = 2 * math.log2(6) + 4  # six conv/linear layers
    for fmt in FORMATS:
        of = rows[rows["format"] == fmt].set_index("precision")
        assert of.loc["int8", "status"] == PARITY_FAILED and of.loc["int8", "psnr_db"] < 33, fmt
        mixed = of.loc["int8-mixed"]
        assert mixed["status"] == PASSED and mixed["psnr_db"] >= 33 and mixed["cosine"] >= 0.998, (fmt, mixed)
        assert sorted(mixed["float_layers"].split(";")) == sorted(OUTLIER_LAYERS), fmt  # at most 2, these 2
        rep = next(r for r in record["repairs"] if r["format"] == fmt)
        assert rep["status"] == "repaired" and rep["judge"] == "parity" and rep["candidates"] == 6
        assert rep["trials"] <= budget and rep["max_trials"] == 10
        trials = json.loads(Path(rep["trials_path"]).read_text())["trials"]
        assert len(trials) == rep["trials"] and all({"layers", "verdict", "seconds"} <= set(t) for t in trials)
        assert trials[-1]["passed"] or any(t["passed"] and sorted(t["layers"]) == sorted(OUTLIER_LAYERS) for t in trials)
    localized = json.loads((run / "localization" / "outlier_net-onnx-int8.json").read_text())["layers"]
    assert set(OUTLIER_LAYERS) <= {row["name"] for row in localized}  # named as localization names layers
    assert "model.block2.0; model.block3.0" in printed


def test_garbage_calibration_is_beyond_repair(fx, out, monkeypatch, capsys, tmp_path):
    """Negative control: calibrated on a black video, every layer's activations are clipped; no few layers in float
    help. The row says repair_failed with the trials, the command exits 1, and no int8-mixed file is written."""
    from tests.evaluation_fixture import write_video

    black = tmp_path / "black.mp4"
    write_video(black, np.zeros((16, 40, 40, 3), np.uint8))
    config = tmp_path / "pipeline.yaml"
    config.write_text(yaml.safe_dump({**yaml.safe_load(fx.pipeline_yaml.read_text()), "formats": {"onnx": ["fp32", "int8"]},
                                      "calibration": {"videos": [str(black)]}}))
    code, printed, run = repair(monkeypatch, capsys, "--model", str(fx.model_yaml), "--weights", str(fx.weights),
                                "--config", str(config), "--no-bench", "--out", str(out))
    assert code == 1, printed
    row = read_results_csv(run / "results.csv").set_index("precision").loc["int8-mixed"]
    assert row["status"] == REPAIR_FAILED and row["failure"] == "numerics"
    assert row["reason"].startswith("export: repair_failed: ") and "tried " in row["reason"], row["reason"]
    rep = json.loads((run / "run.json").read_text())["records"]["repairs"][0]
    trials = json.loads(Path(rep["trials_path"]).read_text())["trials"]
    assert rep["status"] == REPAIR_FAILED and len(trials) == rep["trials"] <= rep["max_trials"]
    assert not any(t["passed"] for t in trials) and np.isnan(row["size_mb"])  # the row names no file


def test_resnet_mixed_passing_int8_left_alone_and_injected_scale_repaired(tmp_path):
    """Random weights, small input, the quick budget: the plain int8 file passes, so the repair step leaves it alone
    and says so; the same export with one conv's weight scales x2 fails, and keeping exactly that conv in float
    repairs it (the failing file's localization names it: one trial)."""
    from edgebench import pipeline
    from edgebench.config import PipelineConfig
    from edgebench.converters.export import export_artifact
    from tests.quant_bugs import WrongScaleOnnx

    settings = pipeline.new_run(PipelineConfig(formats={"onnx": ["fp32", "int8"]}, threads=2,
                                               runtimes=["torch", "onnxruntime"]), tmp_path, quick=True)
    pm = pipeline.prepare_model("resnet_mixed", settings, input_shape=SMALL_SHAPE)
    cache = Path(settings.cache_dir)
    for converter in (None, WrongScaleOnnx(INJECTED)):
        base = export_artifact(pm.ref, "onnx", "int8", {}, cache, 600, converter=converter,
                               calibration=settings.config.calibration)
        parity = [pipeline.parity_one(pm, base, "onnxruntime", settings)]
        outcome = pipeline.repair_one(pm, base, settings, parity, [], converter=converter)
        if converter is None:
            assert parity[0].status == PASSED and outcome.artifact is None
            assert (outcome.result.status, outcome.result.reason) == (
                "not_needed", "onnx int8 passes its parity bound: nothing to repair")
    assert parity[0].status == PARITY_FAILED and parity[0].first_divergent_layer == INJECTED, parity[0]
    assert outcome.result.status == "repaired" and outcome.result.float_layers == (INJECTED,), outcome.result
    assert outcome.artifact.precision == "int8-mixed" and outcome.artifact.float_layers == (INJECTED,)
    assert outcome.result.trials == 1 and outcome.result.candidates == 21
    fixed = pipeline.parity_one(pm, outcome.artifact, "onnxruntime", settings)
    assert fixed.status == PASSED and fixed.psnr_db > parity[0].psnr_db + 6
