"""`edgebench parity --rejudge RUN --config stricter.yaml`: verdicts change from the kept outputs alone, and no
child process (no runtime, no converter) is started."""

from __future__ import annotations

import multiprocessing.process
import subprocess

import numpy as np
import pandas as pd
import pytest

from edgebench.cli import main
from edgebench.config import PipelineConfig
from edgebench.models.inputs import save_inputs
from edgebench.parity.outputs import load_outputs, outputs_key, save_outputs
from edgebench.parity.verdict import judged
from edgebench.records import PARITY_FAILED, PASSED, SKIPPED, Artifact, ParityResult, RunData
from edgebench.reports.history import HistoryStore
from edgebench.reports.writer import write_run_reports
from tests.synthetic_runs import model_ref

INPUTS = {"video": np.random.default_rng(0).random((2, 1, 3, 2, 4, 4), dtype=np.float32)}


@pytest.fixture
def run_dir(tmp_path):
    """A run with two kept outputs: onnx 3e-6 off the reference everywhere (passes fp32: 120 dB), tflite exact;
    and a skipped Core ML row, which has no outputs."""
    out = tmp_path / "out"
    reference = {"logits": np.random.default_rng(1).normal(size=(2, 1, 10)).astype(np.float32)}
    reference_path = out / "runs" / "r1" / "inputs" / "m.reference.npz"
    save_inputs(reference_path, reference)
    config = PipelineConfig()
    rows = []
    for fmt, runtime, offset in (("onnx", "onnxruntime", 3e-6), ("tflite", "litert", 0.0)):
        outputs = {"logits": reference["logits"] + np.float32(offset)}
        path = save_outputs(out / "runs" / "r1" / "outputs", outputs_key(fmt, runtime, {}, INPUTS), outputs, {})
        row = ParityResult("m", fmt, "fp32", runtime, SKIPPED, clips=2, outputs_path=str(path),
                           reference_path=str(reference_path))
        rows.append(judged(row, load_outputs(path)[0], reference, config.parity.tolerances["fp32"]))
    rows.append(ParityResult("m", "coreml", "fp32", "coreml", SKIPPED, reason="needs macOS"))
    artifacts = [Artifact("m", fmt, "fp32", PASSED, path=f"m.{fmt}") for fmt in ("onnx", "tflite", "coreml")]
    run = RunData("r1", "2026-12-04T00:00:00+00:00", "2026-12-04T00:10:00+00:00", str(out), 2, [model_ref("m")],
                  artifacts, rows, config={**config.model_dump(mode="json"), "quick": True})
    write_run_reports(run, out, publish_prefect=False)
    assert [r.status for r in rows] == [PASSED, PASSED, SKIPPED]
    return out / "runs" / "r1"


@pytest.fixture
def no_children(monkeypatch):
    """Any child process (multiprocessing or subprocess) fails the test."""
    started = []

    def refuse(*args, **kwargs):
        started.append(args)
        raise AssertionError("a child process was started")

    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    return started


def rejudged(run_dir, capsys, *args) -> pd.DataFrame:
    main(["parity", "--rejudge", str(run_dir), *args])
    printed = capsys.readouterr().out
    folder = next(p for p in run_dir.parent.iterdir() if p.name.startswith("r1-rejudged-") and p.name not in seen)
    seen.add(folder.name)
    assert "nothing run" in printed
    return pd.read_csv(folder / "results.csv", keep_default_na=False).set_index("format")


seen: set[str] = set()


def test_a_stricter_config_changes_verdicts_without_running_anything(run_dir, tmp_path, capsys, no_children):
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text("parity:\n  tolerances:\n    fp32: {max_abs_err: 1.0e-6, min_psnr_db: 80.0}\n")
    rows = rejudged(run_dir, capsys, "--config", str(stricter))
    reason = rows.loc["onnx", "reason"]  # 3e-6 added in float32: 3.0xe-06
    assert rows.loc["onnx", "status"] == PARITY_FAILED and "max_abs_err 3.0" in reason and "e-06 > 1e-06" in reason
    assert rows.loc["tflite", "status"] == PASSED  # exact outputs pass any tolerance
    assert rows.loc["coreml", "status"] == SKIPPED  # no outputs: nothing to judge again
    assert no_children == []
    original = pd.read_csv(run_dir / "results.csv", keep_default_na=False).set_index("format")
    assert original.loc["onnx", "status"] == PASSED  # the run itself is left as it was
    with HistoryStore(f"sqlite:///{run_dir.parent.parent / 'history.sqlite'}") as store:
        assert set(store.load()["run_id"]) == {"r1"}  # the re-judged copy is no night of the history


def test_the_runs_own_config_gives_the_same_verdicts(run_dir, capsys, no_children):
    """Negative control: judged again with the tolerances it ran with, nothing changes."""
    rows = rejudged(run_dir, capsys)
    assert rows.loc["onnx", "status"] == PASSED and rows.loc["tflite", "status"] == PASSED


def test_a_folder_that_is_not_a_run_is_one_line_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["parity", "--rejudge", str(tmp_path)])
    assert exit_info.value.code == 2 and "not a run folder (no run.json)" in capsys.readouterr().err


def test_the_spy_sees_a_child(no_children, tmp_path):
    """Negative control of the spy: a run_isolated child (how every runtime runs) is caught."""
    from edgebench.isolation import run_isolated
    from tests.child_jobs import sleeper

    with pytest.raises(AssertionError, match="a child process was started"):
        run_isolated(sleeper, (0, str(tmp_path / "pid")), 60, tmp_path / "child.log")
    with pytest.raises(AssertionError, match="a child process was started"):
        subprocess.run(["true"])
