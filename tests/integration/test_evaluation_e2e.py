"""`edgebench evaluate` on real video files and a trained tiny 3D CNN: every format, the drop, a damaged artifact.

The two tests on the trained model export every fp32 format and score it on every runtime (about
2 minutes on two quiet cores, 6 on a busy host): marked slow. The bad-dataset tests need only the
model YAML and some weights: seconds.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from edgebench.cli import main
from edgebench.records import ACCURACY_FAILED, Artifact, AccuracyResult
from tests.evaluation_fixture import EvalFixture, build_fixture, write_model_yaml


@pytest.fixture(scope="module")
def fixture(tmp_path_factory) -> EvalFixture:
    """The videos, model YAML and weights; one unreadable file among the videos (a counted skip)."""
    fx = build_fixture(tmp_path_factory.mktemp("evaluation"))
    (fx.dataset / "moving_up" / "zz_broken.mp4").write_bytes(b"\x00\x01 truncated upload")
    return fx


@pytest.fixture(scope="module")
def evaluated(fixture, tmp_path_factory) -> tuple[Path, str]:
    """One `edgebench evaluate` over every configured format and runtime: (run folder, what it printed)."""
    out = tmp_path_factory.mktemp("evaluation-out")
    argv = ["edgebench", "evaluate", "--model", str(fixture.model_yaml), "--weights", str(fixture.weights),
            "--dataset", str(fixture.dataset), "--out", str(out), "--config", str(fixture.pipeline_yaml)]
    printed = io.StringIO()
    old, sys.argv = sys.argv, argv
    try:
        with contextlib.redirect_stdout(printed):
            main()
    finally:
        sys.argv = old
    (run_dir,) = (out / "runs").iterdir()
    return run_dir, printed.getvalue()


def rows_of(run_dir: Path) -> dict[tuple[str, str, str], dict]:
    with open(run_dir / "results.csv") as f:
        return {(r["format"], r["precision"], r["runtime"]): r for r in csv.DictReader(f)}


def accuracy_records(run_dir: Path) -> list[AccuracyResult]:
    records = json.loads((run_dir / "run.json").read_text())["records"]["accuracy"]
    return [AccuracyResult(**{**r, "confused": [tuple(c) for c in r["confused"]]}) for r in records]


@pytest.mark.slow
def test_every_fp32_artifact_matches_eager_exactly(fixture, evaluated):
    run_dir, printed = evaluated
    assert fixture.train_accuracy >= 0.9
    rows = rows_of(run_dir)
    eager = rows[("pytorch", "fp32", "torch")]
    assert float(eager["top1"]) >= 90.0, eager
    assert "Accuracy on" in printed and "40 videos, 1 unreadable" in printed
    results = {(r.format, r.precision, r.runtime): r for r in accuracy_records(run_dir)}
    with np.load(results[("pytorch", "fp32", "torch")].predictions_path) as e:
        eager_pred, eager_probs = e["video_pred"], e["video_probs"]
    scored = [k for k, r in results.items() if r.status == "passed" and k[0] != "pytorch"]
    assert {k[0] for k in scored} >= {"torchscript", "onnx", "tflite", "coreml"}, results  # coreml via coreml-mil
    for key in scored:
        r, row = results[key], rows[key]
        assert r.videos == 40 and r.unreadable == 1 and r.clips == 120
        with np.load(r.predictions_path) as p:
            if key[1] == "fp32":
                np.testing.assert_array_equal(p["video_pred"], eager_pred)
                np.testing.assert_allclose(p["video_probs"], eager_probs, atol=1e-4)
        if key[1] == "fp32":
            assert (float(row["top1_drop"]), row["top1_drop_ci"], row["accuracy"]) == (0.0, "[+0.00, +0.00]", "passed")
            assert row["top1"] == eager["top1"]
        assert row["status"] == "passed"
    report = (run_dir / "report.html").read_text()
    assert "Accuracy on" in report and "most confused" in report
    assert "zz_broken.mp4" in (run_dir / "evaluation" / "tiny_motion" / "unreadable.txt").read_text()


def damage_onnx(src: Path, dst: Path) -> None:
    """The first Conv's kernel reversed in time: a converter bug that swaps the direction of motion."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(src))
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    init = next(i for i in model.graph.initializer if i.name == first.input[1])
    init.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(numpy_helper.to_array(init)[:, :, ::-1]), init.name))
    onnx.save(model, str(dst))


@pytest.mark.slow
def test_a_damaged_artifact_shows_a_significant_drop_and_fails(fixture, evaluated, tmp_path):
    """Negative control: the same scoring and verdict that pass the fp32 artifacts fail a broken one."""
    from edgebench.config import EvaluationConfig
    from edgebench.evaluation.evaluate import evaluate_artifact, judge_drops, prepare_eval_set
    from edgebench.models.source import resolve_model

    run_dir, _ = evaluated
    records = json.loads((run_dir / "run.json").read_text())["records"]
    good = Artifact.from_dict(next(a for a in records["artifacts"] if a["format"] == "onnx"))
    damage_onnx(Path(good.path), tmp_path / "damaged.onnx")
    bad = dataclasses.replace(good, path=str(tmp_path / "damaged.onnx"), cache_key="damaged")
    ref = resolve_model(str(fixture.model_yaml), str(fixture.weights))
    cfg = EvaluationConfig(dataset=str(fixture.dataset), clips_per_video=3)
    eset = prepare_eval_set(ref, cfg, run_dir.parent.parent / "cache")  # the run's cached clips: nothing decoded
    eager = next(r for r in accuracy_records(run_dir) if r.format == "pytorch")
    result = evaluate_artifact(bad, "onnxruntime", ref, eset, 1, 300, tmp_path / "damaged.log", tmp_path / "damaged.npz")
    judged = judge_drops([eager, result], cfg)[1]
    assert judged.status == ACCURACY_FAILED and judged.verdict == "failed", judged
    assert judged.top1_drop >= 30 and judged.top1_drop_low > cfg.bounds["fp32"], judged
    assert "beyond the fp32 bound" in judged.reason and judged.confused


@pytest.mark.slow
def test_edgebench_run_with_a_dataset_reports_the_same_accuracy(fixture, evaluated, tmp_path):
    """`edgebench run` (the Prefect flow) with `evaluation.dataset` in the model YAML: the figures of `evaluate`."""
    import subprocess

    import yaml

    spec = yaml.safe_load(fixture.model_yaml.read_text())
    spec["evaluation"]["dataset"] = str(fixture.dataset)
    model_yaml = tmp_path / "tiny_motion.yaml"
    model_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    done = subprocess.run([Path(sys.executable).with_name("edgebench"), "run", "--model", str(model_yaml),
                           "--weights", str(fixture.weights), "--config", str(fixture.pipeline_yaml),
                           "--formats", "onnx", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = rows_of(out / "latest")
    evaluated_rows = rows_of(evaluated[0])
    for key in (("pytorch", "fp32", "torch"), ("onnx", "fp32", "onnxruntime")):
        assert rows[key]["top1"] == evaluated_rows[key]["top1"] and float(rows[key]["top1"]) >= 90.0, rows[key]
    assert rows[("onnx", "fp32", "onnxruntime")]["top1_drop_ci"] == "[+0.00, +0.00]"
    assert float(rows[("onnx", "fp32", "onnxruntime")]["p50_ms"]) > 0  # the same rows carry latency
    assert "Accuracy on" in (out / "latest" / "report.html").read_text()


@pytest.fixture(scope="module")
def untrained(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny model's YAML and its (untrained) weights: enough to reach the dataset checks."""
    import torch

    from tests.evaluation_model import tiny_video_net

    folder = tmp_path_factory.mktemp("untrained")
    torch.save(tiny_video_net().state_dict(), folder / "w.pt")
    return write_model_yaml(folder), folder / "w.pt"


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["edgebench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("make, fragment", [
    (lambda d: d.mkdir(), "no videos found"),
    (lambda d: (d / "moving_sideways").mkdir(parents=True) or (d / "moving_sideways" / "a.mp4").write_bytes(b"x"),
     "label(s) the model does not know: moving_sideways"),
    (lambda d: d.mkdir() or (d / "val.csv").write_text("video,label\na.mp4,moving up\n"), "missing column path"),
    (None, "no dataset for"),
])
def test_bad_datasets_are_one_line_errors(untrained, tmp_path, monkeypatch, capsys, make, fragment):
    root = tmp_path / "set"
    model_yaml, weights = untrained
    args = ["evaluate", "--model", str(model_yaml), "--weights", str(weights), "--out", str(tmp_path)]
    if make is not None:
        make(root)
        csvs = list(root.glob("*.csv"))
        args += ["--dataset", str(csvs[0] if csvs else root)]
    code, err = run_cli(monkeypatch, capsys, *args)
    lines = [line for line in err.splitlines() if line.startswith("edgebench: error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert fragment in lines[0], lines[0]
