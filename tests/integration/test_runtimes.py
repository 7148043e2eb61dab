"""Every runtime on real small artifacts; parity checks with negative controls (a changed weight, a NaN,
a wrong shape, an altered ONNX initializer, a corrupt file)."""

from __future__ import annotations

import copy
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from edgebench.config import ParityConfig, Tolerance
from edgebench.errors import UserError
from edgebench.parity.check import check_parity, check_parity_isolated, reference_outputs
from edgebench.parity.table import parity_table
from edgebench.parity.verdict import tolerance_for
from edgebench.records import PARITY_FAILED, PASSED, RUNTIME_FAILED, SKIPPED
from edgebench.runtimes.registry import get_runtime, runtime_names, runtimes_for
from edgebench.runtimes.torch_eager import eager_artifact
from tests.integration.artifact_helpers import make_artifact, scratch_dir
from edgebench.models.source import build_module

FP32 = tolerance_for(ParityConfig(), "fp32")
FP16 = tolerance_for(ParityConfig(), "fp16")


@pytest.fixture(scope="module")
def inputs(small_ref):
    rng = np.random.default_rng(0)
    return {"video": rng.random((2, *small_ref.inputs[0].shape), dtype=np.float32)}


@pytest.fixture(scope="module")
def reference(small_ref, inputs):
    # On the thread count the checks use: oneDNN may pick another conv algorithm for 1 and 2 threads.
    return reference_outputs(small_ref, inputs, threads=1)


def _check(artifact, runtime, small_ref, inputs, reference, tol=FP32, **options):
    return check_parity(artifact, runtime, small_ref, inputs, reference, tol, threads=1, runtime_options=options or None)


# ---------------------------------------------------------------- registry


def test_registry_names_and_formats():
    assert runtime_names() == ["torch", "torchscript", "onnxruntime", "coreml", "coreml-mil", "litert", "executorch"]
    assert [r.name for r in runtimes_for("coreml")] == ["coreml", "coreml-mil"]
    assert [r.name for r in runtimes_for("tflite")] == ["litert"]
    assert runtimes_for("nonsense") == []


def test_unknown_runtime_lists_the_known_ones():
    with pytest.raises(UserError, match="unknown runtime 'tvm'; known runtimes: torch, torchscript"):
        get_runtime("tvm")


def test_runtime_options_make_a_new_instance_and_bad_ones_are_user_errors():
    assert get_runtime("litert", {"xnnpack": False}).xnnpack is False
    assert get_runtime("litert").xnnpack is True
    with pytest.raises(UserError, match="unknown option"):
        get_runtime("litert", {"gpu": True})
    with pytest.raises(UserError, match="compute_units 'GPU'"):
        get_runtime("coreml", {"compute_units": "GPU"})


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML predicts on macOS")
def test_coreml_is_unavailable_off_macos():
    assert get_runtime("coreml").unavailable_reason() == "Core ML runtime needs macOS"


def test_tolerance_for_unknown_precision_is_a_user_error():
    with pytest.raises(UserError, match="no entry for precision 'int8'"):
        tolerance_for(ParityConfig(tolerances={"fp32": ParityConfig().tolerances["fp32"]}), "int8")


# ---------------------------------------------------------------- every runtime passes on good artifacts


def test_eager_baseline_matches_itself(small_ref, inputs, reference):
    art = eager_artifact(small_ref)
    assert (art.format, art.precision, art.status) == ("pytorch", "fp32", PASSED)
    r = _check(art, "torch", small_ref, inputs, reference)
    assert r.status == PASSED and r.max_abs_err == 0.0 and r.top1_agree == 1.0
    assert r.runtime_options["threads"] == 1


@pytest.mark.parametrize("fmt,runtime", [("torchscript", "torchscript"), ("onnx", "onnxruntime"),
                                         ("tflite", "litert"), ("coreml", "coreml-mil")])
def test_fp32_artifacts_pass(small_ref, inputs, reference, fmt, runtime):
    r = _check(make_artifact(small_ref, fmt), runtime, small_ref, inputs, reference)
    assert r.status == PASSED, r.reason
    assert r.max_abs_err < 1e-4 and r.cosine > 0.99999 and r.psnr_db > 60 and r.top1_agree == 1.0
    assert r.clips == 2 and r.runtime_version


def test_coreml_fp16_passes_on_coreml_mil(small_ref, inputs, reference):
    r = _check(make_artifact(small_ref, "coreml", "fp16"), "coreml-mil", small_ref, inputs, reference, FP16)
    assert r.status == PASSED, r.reason
    assert 0 < r.max_abs_err < 1e-2 and r.cosine > 0.999
    assert r.runtime_options["fp16_rounding"] is True and r.runtime_options["op_census"]["cast"] == 2


def test_onnxruntime_records_its_options(small_ref, inputs, reference):
    r = _check(make_artifact(small_ref, "onnx"), "onnxruntime", small_ref, inputs, reference, graph_optimization="basic")
    o = r.runtime_options
    assert r.status == PASSED
    assert o["providers"] == ["CPUExecutionProvider"] and "CPUExecutionProvider" in o["available_providers"]
    assert o["graph_optimization_level"] == "ORT_ENABLE_BASIC" and o["intra_op_num_threads"] == 1


def test_litert_xnnpack_on_and_off(small_ref, inputs, reference):
    art = make_artifact(small_ref, "tflite")
    on = _check(art, "litert", small_ref, inputs, reference)
    off = _check(art, "litert", small_ref, inputs, reference, xnnpack=False)
    assert on.status == off.status == PASSED
    assert on.runtime_options["op_resolver"] == "AUTO" and on.runtime_options["delegate_partitions"] > 0
    assert off.runtime_options["op_resolver"] == "BUILTIN_WITHOUT_DEFAULT_DELEGATES"
    assert off.runtime_options["delegate_partitions"] == 0


def test_coreml_row_is_skipped_off_macos(small_ref, inputs, reference):
    if sys.platform == "darwin":
        pytest.skip("Core ML runs here")
    r = _check(make_artifact(small_ref, "coreml"), "coreml", small_ref, inputs, reference)
    assert (r.status, r.reason) == (SKIPPED, "Core ML runtime needs macOS")


def test_wrong_format_is_skipped(small_ref, inputs, reference):
    r = _check(make_artifact(small_ref, "torchscript"), "onnxruntime", small_ref, inputs, reference)
    assert r.status == SKIPPED and "does not run format torchscript" in r.reason


# ---------------------------------------------------------------- negative controls


def _changed(small_ref, edit):
    module = copy.deepcopy(build_module(small_ref))
    with torch.no_grad():
        edit(module)
    return module


def test_one_changed_weight_fails_parity(small_ref, inputs, reference):
    def edit(m):
        m.model.fc.weight[3, 7] += 0.5

    for fmt, runtime in [("torchscript", "torchscript"), ("coreml", "coreml-mil")]:
        art = make_artifact(small_ref, fmt, module=_changed(small_ref, edit), variant="fc-weight")
        r = _check(art, runtime, small_ref, inputs, reference)
        assert r.status == PARITY_FAILED, (fmt, r)
        assert r.reason.startswith("max_abs_err ") and "> 0.001 on 'logits'" in r.reason
        assert r.max_abs_index[-1] == 3  # the worst element is the logit of the changed row
    # fp16's looser bounds still catch it: PSNR, not top-1, is what notices one weight
    art = make_artifact(small_ref, "coreml", "fp16", module=_changed(small_ref, edit), variant="fc-weight")
    r = _check(art, "coreml-mil", small_ref, inputs, reference, FP16)
    assert r.status == PARITY_FAILED and "psnr_db" in r.reason and r.top1_agree == 1.0, r


def test_altered_onnx_initializer_fails_parity(small_ref, inputs, reference):
    import onnx
    from onnx import numpy_helper

    model = onnx.load(make_artifact(small_ref, "onnx").path)
    weights = {t.name: t for t in model.graph.initializer}
    conv = next(n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in weights)
    tensor = weights[conv.input[1]]
    altered = numpy_helper.to_array(tensor).copy()
    altered.flat[0] += 1.0
    tensor.CopyFrom(numpy_helper.from_array(altered, tensor.name))
    path = scratch_dir() / "altered.onnx"
    onnx.save(model, str(path))
    art = replace(make_artifact(small_ref, "onnx"), path=str(path))
    r = _check(art, "onnxruntime", small_ref, inputs, reference)
    assert r.status == PARITY_FAILED and "max_abs_err" in r.reason


def test_wrong_output_shape_fails_parity(small_ref, inputs, reference):
    class Wider(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            y = self.inner(x)
            return torch.cat([y, y[:, :1]], dim=1)

    art = make_artifact(small_ref, "torchscript", module=Wider(build_module(small_ref)), variant="wider")
    r = _check(art, "torchscript", small_ref, inputs, reference)
    assert r.status == PARITY_FAILED
    assert r.reason == "output 'logits' shape (1, 401) != reference (1, 400)"
    assert r.max_abs_err is None


def test_nan_output_fails_parity(small_ref, inputs, reference):
    def edit(m):
        m.model.fc.bias[5] = float("nan")

    art = make_artifact(small_ref, "torchscript", module=_changed(small_ref, edit), variant="nan")
    r = _check(art, "torchscript", small_ref, inputs, reference)
    assert r.status == PARITY_FAILED and r.reason == "output 'logits' has 2 NaN and 0 Inf values"


def test_corrupt_files_fail_at_load_while_other_runtimes_pass(small_ref, inputs, reference, tmp_path):
    garbage = b"\x00garbage, not a model\xff" * 64
    rows = []
    for fmt, runtime in [("onnx", "onnxruntime"), ("tflite", "litert"), ("torchscript", "torchscript"),
                         ("coreml", "coreml-mil")]:
        good = make_artifact(small_ref, fmt)
        if fmt == "coreml":
            bad = replace(good, path=str(scratch_dir() / "missing.mlpackage"))  # a package folder that is not there
        else:
            path = scratch_dir() / f"corrupt-{fmt}{Path(good.path).suffix}"
            path.write_bytes(garbage)
            bad = replace(good, path=str(path))
        if fmt in ("onnx", "tflite"):  # native loaders: in a child, where a crash cannot take the test down
            rows.append(check_parity_isolated(bad, runtime, small_ref, inputs, reference, FP32, threads=1,
                                              timeout_s=120, log_path=tmp_path / f"{fmt}.log"))
        else:
            rows.append(_check(bad, runtime, small_ref, inputs, reference))
        rows.append(_check(good, runtime, small_ref, inputs, reference))
    bad_rows, good_rows = rows[0::2], rows[1::2]
    for r in bad_rows:
        assert r.status == RUNTIME_FAILED and (r.reason.startswith("load failed: ") or "killed by" in r.reason), r
    assert [r.status for r in good_rows] == [PASSED] * 4
    table = parity_table(rows)
    assert table.row_count == 8 and table.columns[-1].header == "reason"


def test_hanging_runtime_times_out_as_runtime_failed(small_ref, inputs, reference, tmp_path):
    art = make_artifact(small_ref, "torchscript")
    r = check_parity_isolated(art, "torchscript", small_ref, inputs, reference, FP32, threads=1,
                              timeout_s=0.5, log_path=tmp_path / "hang.log")
    assert r.status == RUNTIME_FAILED and r.reason.startswith("timeout after 0.5 s")


def test_unavailable_runtime_is_skipped_without_a_child(small_ref, inputs, reference, tmp_path):
    if sys.platform == "darwin":
        pytest.skip("Core ML runs here")
    r = check_parity_isolated(make_artifact(small_ref, "coreml"), "coreml", small_ref, inputs, reference, FP32,
                              threads=1, timeout_s=60, log_path=tmp_path / "coreml.log")
    assert (r.status, r.reason) == (SKIPPED, "Core ML runtime needs macOS")


def test_tight_tolerance_names_metric_value_and_bound(small_ref, inputs, reference):
    tight = Tolerance(max_abs_err=1e-12, min_cosine=1.0, min_psnr_db=200.0)
    r = _check(make_artifact(small_ref, "coreml", "fp16"), "coreml-mil", small_ref, inputs, reference, tight)
    assert r.status == PARITY_FAILED
    parts = r.reason.split("; ")
    assert parts[0].startswith("max_abs_err ") and " > 1e-12 on 'logits' at (" in parts[0]
    assert parts[1].startswith("cosine 0.9999") and parts[1].endswith("< 1 on 'logits'")
    assert parts[2].startswith("psnr_db ") and parts[2].endswith("< 200 on 'logits'")
