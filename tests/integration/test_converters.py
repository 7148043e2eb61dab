"""Real converters on the small spec (1x3x4x32x32): each artifact loads in its own library, the cache works."""

from __future__ import annotations

import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from edgebench.config import PipelineConfig, validate
from edgebench.converters.export import (cached_artifact, export_artifact, export_table, files_sha256,
                                         plan_artifacts)
from edgebench.converters.registry import converters, get_converter
from edgebench.errors import UserError
from edgebench.pipeline import narrow_config
from edgebench.records import Artifact
from tests.fault_converters import Tiny
from tests import CONVS_3D, CONVS_LOWERED
from edgebench.models.source import build_module

TIMEOUT_S = 600


@pytest.fixture(scope="module")
def cache(small_cache) -> Path:
    return small_cache


@pytest.fixture(scope="module")
def exported(small_exports) -> dict[str, Artifact]:
    """The four real converters' fp32 artifacts (tests/integration/conftest.py, shared with other modules)."""
    return small_exports


def _eager(small_ref) -> np.ndarray:
    import torch

    from edgebench.models.source import example_input

    with torch.no_grad():
        return build_module(small_ref)(example_input(small_ref)).numpy()


# ---------------------------------------------------------------- each artifact in its own library


def test_torchscript_loads_and_matches(exported, small_ref):
    import torch

    from edgebench.models.source import example_input

    a = exported["torchscript"]
    assert Path(a.path).name == "model.pt"
    module = torch.jit.load(a.path)
    with torch.no_grad():
        out = module(example_input(small_ref)).numpy()
    np.testing.assert_allclose(out, _eager(small_ref), atol=1e-4)
    assert [t.name for t in a.inputs] == ["video"] and [t.name for t in a.outputs] == ["logits"]  # from the ref
    assert a.op_census["aten::_convolution"] == CONVS_3D and "prim::Constant" not in a.op_census


def test_onnx_loads_in_onnxruntime_with_names(exported, small_ref):
    import onnx
    import onnxruntime as ort

    from edgebench.models.source import example_input

    a = exported["onnx"]
    model = onnx.load(a.path)
    assert model.opset_import[0].version == 18
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)  # weights inside
    assert set(os.listdir(Path(a.path).parent)) == {"model.onnx", "artifact.json", "export.log"}  # self-contained
    session = ort.InferenceSession(a.path, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["video"]
    assert [o.name for o in session.get_outputs()] == ["logits"]
    x = example_input(small_ref).numpy()
    (out,) = session.run(None, {"video": x})
    np.testing.assert_allclose(out, _eager(small_ref), atol=1e-4)
    (out2,) = session.run(None, {"video": np.concatenate([x, x])})  # dynamic batch
    assert out2.shape == (2, 400)
    assert a.inputs[0].shape == (-1, 3, 4, 32, 32)
    assert a.op_census["Conv"] == CONVS_LOWERED


def test_coreml_package_has_names_labels_and_no_batch_norm(exported, small_ref):
    import coremltools as ct

    from edgebench.converters.coreml import labels_of

    a = exported["coreml"]
    assert Path(a.path).is_dir() and a.path.endswith("model.mlpackage")
    spec = ct.models.MLModel(a.path, skip_model_load=True).get_spec()
    assert spec.WhichOneof("Type") == "mlProgram"
    assert [i.name for i in spec.description.input] == ["video"]
    assert [o.name for o in spec.description.output] == ["logits"]
    assert labels_of(Path(a.path)) == small_ref.labels and len(small_ref.labels) == 400
    assert "batch_norm" not in a.op_census and a.op_census["conv"] == CONVS_3D
    assert a.size_bytes == sum(p.stat().st_size for p in Path(a.path).rglob("*") if p.is_file())


def test_tflite_loads_in_litert_with_signature_names(exported, small_ref):
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.models.source import example_input

    a = exported["tflite"]
    interpreter = Interpreter(model_path=a.path)
    assert interpreter.get_signature_list() == {"serving_default": {"inputs": ["video"], "outputs": ["logits"]}}
    out = interpreter.get_signature_runner()(video=example_input(small_ref).numpy())["logits"]
    np.testing.assert_allclose(out, _eager(small_ref), atol=1e-4)
    assert a.op_census["CONV_2D"] == CONVS_LOWERED and "CONV_3D" not in a.op_census  # the 2D-lowered form (models/lowering.py)
    assert "BATCH_NORM" not in json.dumps(a.op_census)


def test_records_describe_the_files(exported, cache):
    for fmt, a in exported.items():
        converter = get_converter(fmt)
        folder = Path(a.path).parent
        assert folder.parent == cache / "resnet_mixed" and folder.name.startswith(f"{fmt}-fp32-")
        assert folder.name.endswith(a.cache_key[:12])
        assert a.sha256 == files_sha256(converter.files(Path(a.path)), folder)
        assert a.size_bytes > 1_000_000 and a.export_s > 0 and not a.cached
        assert a.versions[converter.library] not in ("", "not installed")
        assert Path(a.log_path).name == "export.log" and "export took" in Path(a.log_path).read_text()
        assert Artifact.load(folder / "artifact.json") == a
        assert not [p for p in folder.iterdir() if p.name.startswith(".tmp-")]


# ---------------------------------------------------------------- the cache


def test_second_call_is_a_fast_cache_hit(exported, small_ref, cache):
    start = time.perf_counter()
    again = export_artifact(small_ref, "onnx", "fp32", {}, cache, TIMEOUT_S)
    assert time.perf_counter() - start < 1.0
    assert again.cached and again.sha256 == exported["onnx"].sha256 and again.path == exported["onnx"].path


def test_tiny_converter_hits_then_misses_on_another_option(small_ref, tmp_path, fault_formats):
    first = export_artifact(small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, converter=Tiny())
    assert first.ok and not first.cached
    assert export_artifact(small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, converter=Tiny()).cached
    with ThreadPoolExecutor(max_workers=2) as pool:  # another option, and use_cache=False: two children at once
        other = pool.submit(export_artifact, small_ref, "fault", "fp32", {"flavour": "spicy"}, tmp_path, TIMEOUT_S,
                            converter=Tiny())
        fresh = pool.submit(export_artifact, small_ref, "fault", "fp32", {}, tmp_path, TIMEOUT_S, use_cache=False,
                            converter=Tiny())
    other, fresh = other.result(), fresh.result()
    assert other.ok and not other.cached and other.cache_key != first.cache_key
    assert Path(other.path).read_bytes() == b"tiny spicy" and Path(first.path).read_bytes() == b"tiny plain"
    assert fresh.ok and not fresh.cached and fresh.path == first.path and fresh.sha256 == first.sha256


def test_half_written_or_failed_folders_are_never_hits(exported, tmp_path):
    src = Path(exported["torchscript"].path).parent
    key = exported["torchscript"].cache_key
    converter = get_converter("torchscript")

    def copy(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(src, dst)
        record = json.loads((dst / "artifact.json").read_text())
        record["path"] = str(dst / "model.pt")
        (dst / "artifact.json").write_text(json.dumps(record))
        return dst

    assert cached_artifact(copy("intact"), key, converter).cached  # the copy itself is a hit

    truncated = copy("truncated")
    data = (truncated / "model.pt").read_bytes()
    (truncated / "model.pt").write_bytes(data[: len(data) // 2])
    assert cached_artifact(truncated, key, converter) is None

    no_record = copy("no_record")  # the child finished writing, the parent died before the record
    (no_record / "artifact.json").unlink()
    (no_record / ".tmp-123-abc").mkdir()
    (no_record / ".tmp-123-abc" / "model.pt").write_bytes(b"half")
    assert cached_artifact(no_record, key, converter) is None

    missing = copy("missing")
    (missing / "model.pt").unlink()
    assert cached_artifact(missing, key, converter) is None

    failed = copy("failed")
    record = json.loads((failed / "artifact.json").read_text())
    (failed / "artifact.json").write_text(json.dumps({**record, "status": "export_failed"}))
    assert cached_artifact(failed, key, converter) is None

    assert cached_artifact(copy("other_key"), "0" * 64, converter) is None


def test_folder_hash_covers_names_and_bytes(tmp_path):
    pkg = tmp_path / "model.mlpackage"
    (pkg / "Data").mkdir(parents=True)
    (pkg / "Manifest.json").write_text("{}")
    (pkg / "Data" / "weight.bin").write_bytes(b"\x00" * 10)
    files = get_converter("coreml").files(pkg)
    first = files_sha256(files, tmp_path)
    assert first == files_sha256(list(reversed(files)), tmp_path)
    (pkg / "Data" / "weight.bin").rename(pkg / "Data" / "weights.bin")
    assert files_sha256(get_converter("coreml").files(pkg), tmp_path) != first


# ---------------------------------------------------------------- checks and user errors


def test_onnx_checker_rejects_an_invalid_graph(tmp_path):
    """Negative control for check_onnx: a graph that reuses an output name (as optimize=False exports do)."""
    import onnx
    from onnx import TensorProto, helper

    from edgebench.converters.onnx import check_onnx

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    nodes = [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["y"])]
    bad = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(bad, tmp_path / "bad.onnx")
    with pytest.raises(onnx.checker.ValidationError, match="single static assignment"):
        check_onnx(tmp_path / "bad.onnx")
    good = helper.make_model(helper.make_graph(nodes[:1], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 18)])
    onnx.save(good, tmp_path / "good.onnx")
    check_onnx(tmp_path / "good.onnx")
    assert not list(tmp_path.glob("*.inferred"))


def test_bad_requests_are_user_errors(small_ref, tmp_path):
    with pytest.raises(UserError, match="unknown format 'gguf'; known formats: torchscript, onnx, coreml, tflite"):
        get_converter("gguf")
    with pytest.raises(UserError, match="onnx: unknown converter option.*opsett.*known: conv_kernel, dynamic_batch, opset"):
        export_artifact(small_ref, "onnx", "fp32", {"opsett": 17}, tmp_path, TIMEOUT_S)
    with pytest.raises(UserError, match="frontend must be one of trace, export"):
        export_artifact(small_ref, "coreml", "fp32", {"frontend": "onnx"}, tmp_path, TIMEOUT_S)
    assert not list(tmp_path.iterdir())  # nothing was started


def test_plan_artifacts_in_config_order_with_merged_options():
    from edgebench.converters.onnx_conv_kernel import host_conv_kernel

    cfg = PipelineConfig(converter_options={"onnx": {"opset": 17}})
    plan = plan_artifacts(cfg)
    assert [(f, p) for f, p, _ in plan] == [("torchscript", "fp32"), ("onnx", "fp32"), ("onnx", "int8"),
                                            ("coreml", "fp32"), ("coreml", "fp16"), ("coreml", "w8"), ("tflite", "fp32"),
                                            ("tflite", "int8"), ("executorch", "fp32"), ("executorch", "int8")]
    assert dict((f, o) for f, p, o in plan)["onnx"] == {"opset": 17, "dynamic_batch": True, "optimize": True,
                                                        "per_channel": True, "reduce_range": False,
                                                        "static_batch_quantized": True,
                                                        "conv_kernel": host_conv_kernel()}
    narrowed = narrow_config(cfg, ["coreml", "onnx"])
    assert [(f, p) for f, p, _ in plan_artifacts(narrowed)] == [("coreml", "fp32"), ("coreml", "fp16"), ("coreml", "w8"),
                                                                ("onnx", "fp32"), ("onnx", "int8")]


@pytest.mark.parametrize("make, message", [
    (lambda: narrow_config(PipelineConfig(), ["onnx", "gguf"]), "unknown or unconfigured format gguf"),
    (lambda: validate(PipelineConfig, {"formats": {"gguf": ["fp32"]}}, "p.yaml"), "field 'formats.gguf': unknown format 'gguf'"),
    (lambda: validate(PipelineConfig, {"converter_options": {"gguf": {}}}, "p.yaml"),
     "field 'converter_options.gguf': unknown format 'gguf'"),
    (lambda: plan_artifacts(PipelineConfig(converter_options={"torchscript": {"lite": True, "fuse": 1}})),
     "unknown converter option"),
])
def test_bad_plans_are_user_errors(make, message):
    with pytest.raises(UserError, match=message):
        make()


def test_export_table_shows_status_size_and_reason(exported):
    from rich.console import Console

    failed = Artifact(model="m", format="coreml", precision="fp16", status="export_failed", reason="killed by SIGSEGV",
                      export_s=3.0)
    console = Console(width=200, record=True)
    console.print(export_table([exported["onnx"], failed, Artifact.from_dict({**exported["tflite"].to_dict(),
                                                                              "cached": True})]))
    text = console.export_text()
    for word in ("format", "precision", "status", "size MB", "seconds", "ops", "cached", "reason",
                 "onnx", "passed", "export_failed", "killed by SIGSEGV", "yes", f"{exported['onnx'].size_bytes / 1e6:.1f}"):
        assert word in text


def test_registry_lists_every_converter():
    assert list(converters()) == ["torchscript", "onnx", "coreml", "tflite", "executorch"]
    assert converters()["coreml"].precisions == {"fp32", "fp16", "w8"}
    assert converters()["tflite"].precisions == {"fp32", "int8"}
    assert get_converter("torchscript").filename({"lite": True}) == "model.ptl"
