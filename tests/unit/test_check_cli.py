"""`edgebench check` on bad input: the file's inputs/outputs are compared with the model's before any value;
a mismatch is one line naming both sides and exit code 2. Also the format detection and the YAML hook."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from edgebench.config import ExternalArtifactConfig, PipelineConfig, validate
from edgebench.errors import UserError
from edgebench.external import configured_external, detect_format, external_artifact
from edgebench.records import EXPORT_FAILED
from tests.conftest import SMALL_SHAPE

SHAPE_ARG = ",".join(map(str, SMALL_SHAPE))


def io_only_onnx(path: Path, input_name: str = "video", input_shape=SMALL_SHAPE, output_name: str = "logits") -> Path:
    """An ONNX file whose declared inputs and outputs are all a spec check reads (it is never run)."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", [input_name], [output_name])], "io",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(output_name, TensorProto.FLOAT, [1, 400])])
    onnx.save(helper.make_model(graph), str(path))
    return path


def run_check(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from edgebench.cli import main

    monkeypatch.setattr(sys, "argv", ["edgebench", "check", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("edgebench: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_input_named_differently_exits_2_naming_both(monkeypatch, capsys, tmp_path):
    path = io_only_onnx(tmp_path / "renamed.onnx", input_name="clip")
    code, err = run_check(monkeypatch, capsys, str(path), "--input-shape", SHAPE_ARG, "--out", str(tmp_path))
    line = one_error_line(err)
    assert code == 2
    assert "input 'clip' 1x3x4x32x32 float32 != resnet_mixed input 'video' 1x3x4x32x32 float32" in line
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("*.npz"))  # no value computed


def test_input_shaped_differently_exits_2_naming_both(monkeypatch, capsys, tmp_path):
    path = io_only_onnx(tmp_path / "eight_frames.onnx", input_shape=(1, 3, 8, 32, 32))
    code, err = run_check(monkeypatch, capsys, str(path), "--input-shape", SHAPE_ARG, "--out", str(tmp_path))
    assert code == 2
    assert "input 'video' 1x3x8x32x32 float32 != resnet_mixed input 'video' 1x3x4x32x32 float32" in one_error_line(err)


def test_output_named_differently_exits_2(monkeypatch, capsys, tmp_path):
    path = io_only_onnx(tmp_path / "out.onnx", output_name="scores")
    code, err = run_check(monkeypatch, capsys, str(path), "--input-shape", SHAPE_ARG, "--out", str(tmp_path))
    assert code == 2
    assert "output 'scores' 1x400 float32 != resnet_mixed output 'logits' 1x400 float32" in one_error_line(err)


def test_not_an_artifact_exits_2(monkeypatch, capsys, tmp_path):
    path = tmp_path / "notes.bin"
    path.write_bytes(b"no model in here")
    code, err = run_check(monkeypatch, capsys, str(path), "--input-shape", SHAPE_ARG, "--out", str(tmp_path))
    assert code == 2
    assert "notes.bin: not a file of any known format" in one_error_line(err)


def test_missing_file_exits_2(monkeypatch, capsys, tmp_path):
    code, err = run_check(monkeypatch, capsys, str(tmp_path / "nope.onnx"), "--input-shape", SHAPE_ARG)
    assert code == 2
    assert "nope.onnx: no such file or folder" in one_error_line(err)


def test_format_from_suffix_then_content(tmp_path):
    assert detect_format(io_only_onnx(tmp_path / "m.onnx")) == "onnx"
    assert detect_format(io_only_onnx(tmp_path / "m.model")) == "onnx"  # no known suffix: the content decides
    fake = tmp_path / "m.bin"
    fake.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(32))  # the flatbuffer identifier of a .tflite file
    assert detect_format(fake) == "tflite"
    (tmp_path / "m.weird").mkdir()
    with pytest.raises(UserError, match="not a file of any known format"):
        detect_format(tmp_path / "m.weird")


def test_matching_file_becomes_an_artifact(small_ref, tmp_path):
    a = external_artifact(io_only_onnx(tmp_path / "m.onnx"), small_ref)
    assert (a.format, a.precision, a.ok, a.model) == ("onnx", "fp32", True, "resnet_mixed")
    assert a.sha256 and a.op_census == {"Identity": 1}


def test_yaml_entry_with_a_mismatch_is_a_failed_row_not_a_crash(small_ref, tmp_path):
    path = io_only_onnx(tmp_path / "hub.onnx", input_name="clip")
    cfg = validate(PipelineConfig, {"external_artifacts": [{"path": str(path), "model": "resnet_mixed"}]}, "test.yaml")
    assert cfg.external_artifacts == [ExternalArtifactConfig(path=str(path), model="resnet_mixed")]
    a = configured_external(small_ref, cfg.external_artifacts[0])
    assert a.status == EXPORT_FAILED and a.model == "resnet_mixed@hub.onnx"
    assert "input 'clip'" in a.reason and "'video'" in a.reason


def test_yaml_entry_fields_are_validated():
    with pytest.raises(UserError, match="external_artifacts.0.model"):
        validate(PipelineConfig, {"external_artifacts": [{"path": "x.onnx"}]}, "test.yaml")


def test_pipeline_adds_the_configured_files_of_its_model_only(small_ref, tmp_path):
    from edgebench import pipeline

    good = io_only_onnx(tmp_path / "good.onnx")
    entries = [{"path": str(good), "model": "resnet_mixed", "name": "hub"}, {"path": str(good), "model": "r3d_18"}]
    settings = pipeline.new_run(PipelineConfig(external_artifacts=entries), tmp_path)
    found = pipeline.external_artifacts(small_ref, settings)
    assert [(a.model, a.format, a.ok) for a in found] == [("resnet_mixed@hub", "onnx", True)]


def test_a_float_tensor_may_be_8_bit_in_the_file_only_where_the_format_quantizes_its_io():
    """A TFLite int8 file whose signature took the first quantize has an int8 input (its sessions quantize at the
    tensor's scale): it is checked; the same int8 input in ONNX, or an int16 one in TFLite, is a mismatch."""
    from edgebench.converters.registry import get_converter
    from edgebench.external import _differs
    from edgebench.records import TensorSpec

    want = TensorSpec("video", SMALL_SHAPE, "float32")
    int8 = TensorSpec("video", SMALL_SHAPE, "int8")
    assert not _differs(int8, want, SMALL_SHAPE, get_converter("tflite"))
    assert _differs(int8, want, SMALL_SHAPE, get_converter("onnx"))
    assert _differs(TensorSpec("video", SMALL_SHAPE, "int16"), want, SMALL_SHAPE, get_converter("tflite"))
