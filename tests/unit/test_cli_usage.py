"""Bad command lines and bad configs: exit 2, one error line, no traceback, nothing written, no work started.

Most cases call `edgebench.cli.main(argv)` in this process (typer's CliRunner would bypass main(),
where usage errors become one line); a few run the real `edgebench` executable.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.cli import main
from edgebench.errors import UserError, reason_of

SHAPE = "1,3,4,32,32"
EDGEBENCH = Path(sys.executable).with_name("edgebench")
MODEL_10 = ("name: tiny10\nsource: torchvision:mc3_18\ninputs: [{name: video, shape: [1, 3, 4, 32, 32]}]\n"
            "outputs: [{name: logits, shape: [1, 10]}]\n")  # mc3_18 returns 400 classes


@pytest.fixture
def no_flow(monkeypatch):
    """Starting the flow fails the test: checks come first. The temporary server's start (refused here too)
    may begin only once the cheap checks passed, during the models' forward passes, and never hides their error."""
    from edgebench import interrupts

    def refuse(*args, **kwargs):
        raise AssertionError("the flow started before the input was checked")

    monkeypatch.setattr(interrupts, "run_flow", refuse)
    monkeypatch.setattr(interrupts, "start_ephemeral_server", refuse)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def assert_usage_failure(capsys, argv: list[str], *fragments: str, out: Path | None = None) -> str:
    """main(argv) exits 2 with one `edgebench: error:` line (plus at most the usage line and our warnings)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert exit_info.value.code == 2, err
    assert "Traceback" not in err and "Traceback" not in captured.out, err
    assert "\x1b[" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("edgebench: error:")]
    assert len(errors) == 1, err
    others = [line for line in lines if line not in errors]
    assert all(line.startswith(("Usage: ", "warning: ")) for line in others), err
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    if out is not None:
        assert not out.exists(), f"{out} was written: {sorted(p.name for p in out.rglob('*'))}"
    return errors[0]


# ---------------------------------------------------------------- usage errors (typer / click)

USAGE_CASES = {
    "unknown command": (["nosuchcmd"], "No such command 'nosuchcmd'"),
    "unknown global option": (["--nosuch", "models"], "No such option: --nosuch"),
    "unknown option": (["run", "--bogus"], "No such option: --bogus"),
    "out of range": (["demo", "clip.mp4", "--top", "0"], "'--top'", "greater than or equal to 1"),
    "wrong type": (["demo", "clip.mp4", "--top", "abc"], "'--top'", "valid integer"),
    "missing argument": (["demo"], "Missing argument"),
    "missing option value": (["export", "--model"], "'--model' requires an argument"),
    "flag given a value": (["run", "--quick=maybe"], "--quick"),
    "evaluate out of range": (["evaluate", "--clips-per-video", "0"], "'--clips-per-video'"),
}


@pytest.mark.parametrize("case", list(USAGE_CASES))
def test_usage_errors(case, capsys):
    argv, *fragments = USAGE_CASES[case]
    line = assert_usage_failure(capsys, argv, *fragments)
    assert "--help" in line  # where to look next, on the same line


def test_usage_line_comes_first(capsys):
    assert_usage_failure(capsys, ["demo", "clip.mp4", "--top", "abc"])
    # (re-run: the captured text was consumed above)
    with pytest.raises(SystemExit):
        main(["demo", "clip.mp4", "--top", "abc"])
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("Usage: edgebench demo") and len(err) == 2


def test_no_arguments_prints_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 0
    assert "Commands" in capsys.readouterr().out


# ---------------------------------------------------------------- bad values, checked before any work


def test_run_unknown_model_before_any_server(capsys, tmp_path, no_flow):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--model", "nosuch", "--out", str(out)], "unknown model 'nosuch'",
                         "resnet_mixed", out=out)


def test_run_wrong_rank_input_shape(capsys, tmp_path, no_flow):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--input-shape", "1,3,32,32", "--out", str(out)],
                         "--input-shape 1,3,32,32", "4 dimensions", "has 5", out=out)


@pytest.mark.parametrize("shape", ["0,3,4,32,32", "1,3,4,-2,32"])
def test_run_nonpositive_input_shape(shape, capsys, tmp_path, no_flow):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--input-shape", shape, "--out", str(out)], "at least 1", out=out)


def test_export_input_shape_not_integers(capsys, tmp_path):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["export", "--input-shape", "1,3,x", "--out", str(out)], "expected integers", out=out)


def test_input_shape_too_small_for_the_model(capsys, tmp_path, no_flow):
    out = tmp_path / "out"  # the right rank, but 4 colour channels for a stem that takes 3
    assert_usage_failure(capsys, ["run", "--input-shape", "1,4,4,32,32", "--out", str(out)],
                         "--input-shape 1,4,4,32,32", "cannot run on it", out=out)


def test_export_unknown_format(capsys, tmp_path):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["export", "--formats", "tensorrt", "--out", str(out)], "--formats", "tensorrt",
                         out=out)


def test_parity_unknown_runtime(capsys, tmp_path):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["parity", "--runtimes", "tensorrt", "--out", str(out)],
                         "unknown runtime 'tensorrt'", out=out)


def test_bench_unknown_device_kind(capsys, tmp_path):
    out = tmp_path / "out"
    assert_usage_failure(capsys, ["bench", "--devices", "nosuch:phone", "--out", str(out)], "nosuch", out=out)


def test_info_unknown_model(capsys):
    assert_usage_failure(capsys, ["info", "--model", "nosuch"], "unknown model 'nosuch'")


def test_info_missing_weights_file(capsys, tmp_path):
    assert_usage_failure(capsys, ["info", "--weights", str(tmp_path / "none.pt")], "none.pt")


def test_demo_missing_video(capsys, tmp_path):
    assert_usage_failure(capsys, ["demo", str(tmp_path / "none.mp4")], "none.mp4", "no such file")


def test_report_unknown_run(capsys, tmp_path):
    assert_usage_failure(capsys, ["report", "nosuchrun", "--out", str(tmp_path / "out")], "nosuchrun")


# ---------------------------------------------------------------- bad configs


def test_missing_pipeline_config(capsys, tmp_path, no_flow):
    out = tmp_path / "out"
    missing = tmp_path / "nope.yaml"
    assert_usage_failure(capsys, ["run", "--config", str(missing), "--out", str(out)], str(missing), out=out)


def test_pipeline_config_unknown_runtime(capsys, tmp_path, no_flow):
    cfg, out = write(tmp_path, "p.yaml", "runtimes: [torch, tensorrt]\n"), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--config", cfg, "--out", str(out)], cfg, "field 'runtimes.1'",
                         "unknown runtime 'tensorrt'", out=out)


def test_pipeline_config_unknown_format(capsys, tmp_path, no_flow):
    cfg, out = write(tmp_path, "p.yaml", "formats: {tensorrt: [fp32]}\n"), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--config", cfg, "--out", str(out)], cfg, "field 'formats.tensorrt'",
                         "unknown format", out=out)


def test_pipeline_config_precision_without_tolerance(capsys, tmp_path, no_flow):
    text = "formats: {onnx: [fp32, fp16]}\nparity: {tolerances: {fp32: {max_abs_err: 0.001}}}\n"
    cfg, out = write(tmp_path, "p.yaml", text), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--config", cfg, "--out", str(out)], cfg, "field 'parity.tolerances'",
                         "fp16", out=out)


def test_pipeline_config_malformed(capsys, tmp_path, no_flow):
    cfg, out = write(tmp_path, "p.yaml", "formats: [unclosed\n"), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--config", cfg, "--out", str(out)], cfg, "malformed YAML", out=out)


def test_pipeline_config_unknown_field(capsys, tmp_path, no_flow):
    cfg, out = write(tmp_path, "p.yaml", "threds: 2\n"), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--config", cfg, "--out", str(out)], cfg, "field 'threds'", "unknown field",
                         out=out)


def test_pipeline_config_out_of_range(capsys, tmp_path, no_flow):
    cfg, out = write(tmp_path, "p.yaml", "benchmark: {quick: {min_runs: 0}}\n"), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--quick", "--config", cfg, "--out", str(out)], cfg,
                         "field 'benchmark.quick.min_runs'", out=out)


def test_model_yaml_declares_other_outputs_info(capsys, tmp_path):
    model = write(tmp_path, "tiny10.yaml", MODEL_10)
    assert_usage_failure(capsys, ["info", "--model", model], model, "field 'outputs.0.shape'", "[1, 10]",
                         "returns [1, 400]")


def test_model_yaml_declares_other_outputs_run(capsys, tmp_path, no_flow):
    model, out = write(tmp_path, "tiny10.yaml", MODEL_10), tmp_path / "out"
    assert_usage_failure(capsys, ["run", "--model", model, "--out", str(out)], "field 'outputs.0.shape'", out=out)


def test_model_yaml_output_check_follows_the_override_shape(capsys, tmp_path):
    """The big declared input is replaced by the small override: the check runs the small one."""
    big = MODEL_10.replace("[1, 3, 4, 32, 32]", "[1, 3, 16, 112, 112]")
    model, out = write(tmp_path, "tiny10.yaml", big), tmp_path / "out"
    assert_usage_failure(capsys, ["export", "--model", model, "--input-shape", SHAPE, "--out", str(out)],
                         "field 'outputs.0.shape'", out=out)


def test_model_yaml_without_factory(capsys, tmp_path):
    model = write(tmp_path, "m.yaml", MODEL_10.replace("torchvision:mc3_18", "mc3_18"))
    assert_usage_failure(capsys, ["info", "--model", model], model, "field 'source'")


def test_declared_outputs_that_match_pass(tmp_path):
    """The negative control of the output check: the real shape passes."""
    from edgebench.preflight import check_models

    model = write(tmp_path, "tiny.yaml", MODEL_10.replace("[1, 10]", "[1, 400]"))
    (ref,) = check_models([model])
    assert ref.outputs[0].shape == (1, 400)


def test_prepare_step_checks_declared_outputs(tmp_path):
    """A flow started some other way (a deployment) still stops at its first step, before any file."""
    from edgebench import pipeline
    from edgebench.config import PipelineConfig

    model, out = write(tmp_path, "tiny10.yaml", MODEL_10), tmp_path / "out"
    with pytest.raises(UserError, match=r"field 'outputs.0.shape': declares \[1, 10\]"):
        pipeline.prepare_model(model, pipeline.new_run(PipelineConfig(), out))
    assert not out.exists()


# ---------------------------------------------------------------- reasons carry no terminal escapes


def test_reason_of_strips_ansi_and_keeps_one_line():
    e = RuntimeError("\x1b[31mshape mismatch\x1b[0m: got \x1b[1m[1, 3]\x1b[0m\nsecond line")
    assert reason_of(e) == "RuntimeError: shape mismatch: got [1, 3]"
    assert reason_of(ValueError("")) == "ValueError"


def _raise_coloured():
    raise RuntimeError("\x1b[1;31mexport failed\x1b[0m on \x1b[4mconv1\x1b[0m")


def test_isolated_failure_reason_has_no_escapes(tmp_path):
    from edgebench.isolation import IsolatedFailure, run_isolated

    failure = run_isolated(_raise_coloured, (), 120, tmp_path / "child.log")
    assert isinstance(failure, IsolatedFailure)
    assert failure.reason == "RuntimeError: export failed on conv1"


def test_user_error_lines_lose_escapes(capsys, monkeypatch):
    import edgebench.cli as cli

    def coloured(*args, **kwargs):
        raise UserError("\x1b[31mbad\x1b[0m thing\nover two lines")

    monkeypatch.setattr(cli, "_checked_model", coloured)
    line = assert_usage_failure(capsys, ["info"])
    assert line == "edgebench: error: bad thing over two lines"


# ---------------------------------------------------------------- the real executable


@pytest.mark.parametrize("argv", [["nosuchcmd"], ["demo", "clip.mp4", "--top", "0"]])
def test_real_process_usage_errors(argv):
    res = subprocess.run([str(EDGEBENCH), *argv], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "Traceback" not in res.stderr
    lines = res.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("Usage: edgebench") and lines[1].startswith("edgebench: error:")


def test_real_process_run_unknown_model(tmp_path):
    out = tmp_path / "out"
    res = subprocess.run([str(EDGEBENCH), "run", "--model", "nosuch", "--out", str(out)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2, res.stderr
    assert res.stderr.splitlines() == [f"edgebench: error: unknown model 'nosuch'; known models: {known()}"]
    assert res.stdout == "" and not out.exists()


def known() -> str:
    from edgebench.models.registry import known_models

    return ", ".join(known_models())


# ---------------------------------------------------------------- the Python API


def test_api_checks_before_any_work(tmp_path):
    import edgebench

    out = tmp_path / "out"
    with pytest.raises(edgebench.UserError, match="unknown model 'nosuch'"):
        edgebench.run(models="nosuch", out=out)
    with pytest.raises(edgebench.UserError, match="4 dimensions"):
        edgebench.run(input_shape=(1, 3, 32, 32), out=out)
    assert not out.exists()


def test_api_check_and_evaluate_refuse_bad_input(tmp_path):
    import edgebench

    junk, out = tmp_path / "junk.bin", tmp_path / "out"
    junk.write_bytes(b"not a model")
    with pytest.raises(edgebench.UserError, match="not a file of any known format"):
        edgebench.check(junk, input_shape=(1, 3, 4, 32, 32), out=out)
    with pytest.raises(edgebench.UserError, match="no dataset"):
        edgebench.evaluate("resnet_mixed", out=out)
    assert not (out / "runs").exists() or not any((out / "runs").glob("*/results.csv"))


def test_api_reexports_the_records():
    import edgebench
    from edgebench import records

    assert edgebench.Artifact is records.Artifact and edgebench.ParityResult is records.ParityResult
    with pytest.raises(AttributeError):
        edgebench.nosuch  # noqa: B018
