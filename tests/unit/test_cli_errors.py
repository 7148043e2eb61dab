"""Bad input: one line on stderr naming what is wrong and where, exit code 2, no traceback."""

from __future__ import annotations

import sys

import pytest

from edgebench.cli import main
from edgebench.config import load_pipeline_config
from edgebench.errors import UserError


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["edgebench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    return exit_info.value.code, err


def assert_one_line_error(code: int, err: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("edgebench: error:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def write(tmp_path, name: str, text: str):
    path = tmp_path / name
    path.write_text(text)
    return path


GOOD_MODEL = ("name: tiny\nsource: torchvision:mc3_18\ninputs: [{name: video, shape: [1, 3, 4, 32, 32]}]\n"
              "outputs: [{name: logits, shape: [1, 400]}]\n")


def test_unknown_model(monkeypatch, capsys):
    code, err = run_cli(monkeypatch, capsys, "info", "--model", "resnet_mixd")
    assert_one_line_error(code, err, "unknown model 'resnet_mixd'", "resnet_mixed", "r3d_18")


def test_malformed_model_yaml(monkeypatch, capsys, tmp_path):
    path = write(tmp_path, "m.yaml", "name: [unclosed\n")
    code, err = run_cli(monkeypatch, capsys, "info", "--model", str(path))
    assert_one_line_error(code, err, str(path), "malformed YAML")


def test_unknown_config_key(monkeypatch, capsys, tmp_path):
    path = write(tmp_path, "m.yaml", GOOD_MODEL + "weigths: KINETICS400_V1\n")
    code, err = run_cli(monkeypatch, capsys, "info", "--model", str(path))
    assert_one_line_error(code, err, str(path), "field 'weigths'", "unknown field")


def test_mistyped_config_value(monkeypatch, capsys, tmp_path):
    path = write(tmp_path, "m.yaml", GOOD_MODEL.replace("[1, 3, 4, 32, 32]", "[1, 3, four, 32, 32]"))
    code, err = run_cli(monkeypatch, capsys, "info", "--model", str(path))
    assert_one_line_error(code, err, str(path), "field 'inputs.0.shape.2'")


def test_model_file_whose_own_import_fails(monkeypatch, capsys, tmp_path):
    write(tmp_path, "net.py", "from my_package.layers import Block\n\ndef net():\n    return Block()\n")
    path = write(tmp_path, "m.yaml", GOOD_MODEL.replace("torchvision:mc3_18", "net.py:net"))
    code, err = run_cli(monkeypatch, capsys, "info", "--model", str(path))
    assert_one_line_error(code, err, str(path), "net.py cannot be loaded", "my_package", "PYTHONPATH")


def test_missing_video(monkeypatch, capsys, tmp_path):
    code, err = run_cli(monkeypatch, capsys, "demo", str(tmp_path / "nope.mp4"))
    assert_one_line_error(code, err, "nope.mp4", "no such file")


def test_undecodable_video(monkeypatch, capsys, tmp_path):
    path = write(tmp_path, "junk.mp4", "this is not a video")
    code, err = run_cli(monkeypatch, capsys, "demo", str(path))
    assert_one_line_error(code, err, "junk.mp4", "cannot decode")


def test_weights_that_do_not_match(monkeypatch, capsys, tmp_path):
    import torch

    path = tmp_path / "w.pt"
    torch.save({"fc.weight": torch.zeros(3, 3)}, path)
    code, err = run_cli(monkeypatch, capsys, "info", "--weights", str(path))
    assert_one_line_error(code, err, "w.pt", "do not match", "missing keys", "wrong shapes fc.weight")


def test_pipeline_config_unknown_field(tmp_path):
    path = write(tmp_path, "p.yaml", "benchmark:\n  quick:\n    min_run: 3\n")
    with pytest.raises(UserError, match=r"p.yaml: field 'benchmark.quick.min_run': unknown field"):
        load_pipeline_config(path)


def test_pipeline_config_wrong_precision(tmp_path):
    path = write(tmp_path, "p.yaml", "formats:\n  onnx: [fp64]\n")
    with pytest.raises(UserError, match=r"field 'formats.onnx.0'"):
        load_pipeline_config(path)


def test_shipped_pipeline_config_is_valid():
    from edgebench.config import PipelineConfig

    cfg = load_pipeline_config()
    assert cfg.formats == PipelineConfig().formats  # the YAML says what the defaults say
