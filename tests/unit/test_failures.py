"""The failure classifier: each class from the records a real failure leaves, and None where nothing failed."""

from __future__ import annotations

import pytest

from edgebench.records import AccuracyResult, Artifact, LatencyResult, ParityResult
from edgebench.reports.failures import classify

VERSIONS = {"coreml": "coremltools", "tflite": "litert-torch", "onnx": "onnx", "executorch": "executorch",
            "torchscript": "torch"}


def art(fmt="coreml", status="passed", reason="", precision="fp32"):
    return Artifact("m", fmt, precision, status, reason, versions={"torch": "2.14.1", VERSIONS[fmt]: "1"})


def parity(status="passed", reason="", runtime="onnxruntime", fmt="onnx", **figures):
    return ParityResult("m", fmt, "int8", runtime, status, reason, **figures)


def bench(status="passed", reason="", runtime="litert", fmt="tflite"):
    return LatencyResult("m", fmt, "fp32", runtime, "local", status, reason)


@pytest.mark.parametrize("fmt, reason, op, toolchain", [
    ("coreml", "RuntimeError: PyTorch convert function for op 'tensor_split' not implemented.", "tensor_split",
     "coremltools"),
    ("tflite", "RuntimeError: loc(\"mvit.py\":304): error: failed to legalize operation 'tfl.add' that was explicitly "
     "marked illegal", "tfl.add", "litert-torch"),
    ("onnx", "torch.onnx.errors.UnsupportedOperatorError: Exporting the operator 'aten::_upsample_bicubic2d_aa' to "
     "ONNX opset version 18 is not supported.", "aten::_upsample_bicubic2d_aa", "onnx"),
    ("executorch", "RuntimeError: Missing out variants: {'aten::roll'}", "aten::roll", "executorch"),
])
def test_an_unsupported_op_names_the_op_and_the_toolchain(fmt, reason, op, toolchain):
    f = classify(art(fmt, "export_failed", reason))
    assert (f.kind, f.op, f.toolchain, f.step) == ("unsupported_op", op, toolchain, "export")
    assert f.detail == f"{op} in {toolchain}"


def test_a_kernel_the_runtime_lacks_is_an_unsupported_op_of_the_runtime():
    reason = ("load failed: NOT_IMPLEMENTED : Could not find an implementation for ConvInteger(10) node with name "
              "'/conv/Conv_quant'")
    f = classify(art("onnx", precision="int8"), parity("runtime_failed", reason))
    assert (f.kind, f.op, f.toolchain, f.step) == ("unsupported_op", "ConvInteger(10)", "onnxruntime", "parity")


def test_convolutions_left_off_the_delegate_are_partial_delegation():
    reason = ("ValueError: 4 3D convolutions left to the portable kernels (31 % of the conv/matmul FLOPs delegated), "
              "which take 3-D/4-D input only (XNNPACK skips Conv3d): export the 2D-lowered form")
    f = classify(art("executorch", "export_failed", reason))
    assert f.kind == "partial_delegation" and f.detail.startswith(
        "4 3D convolutions off the XNNPACK delegate, 31 % of the conv/matmul FLOPs delegated")


def test_a_file_not_in_its_precision_is_partial_delegation():
    reason = "ArtifactError: mislabelled file: int8: 1 of 5 conv/matmul ops run int8 (float32 4, int8 1)"
    f = classify(art("tflite", "export_failed", reason, precision="int8"))
    assert f.kind == "partial_delegation" and f.detail == "4 of 5 conv/matmul ops stay out of int8 (float32 4, int8 1)"


def test_parity_and_accuracy_verdicts_are_numerics():
    f = classify(art("onnx", precision="int8"), parity("parity_failed", "cosine 0.58 < 0.998", cosine=0.5812,
                                                        psnr_db=9.3, first_divergent_layer="model.layer3.0.conv2.0"))
    assert f.kind == "numerics" and f.step == "parity"
    assert f.detail == "parity on onnxruntime: cosine 0.5812, PSNR 9.3 dB; diverges at model.layer3.0.conv2.0"
    acc = AccuracyResult("m", "onnx", "int8", "onnxruntime", "accuracy_failed", top1_drop=3.25, bound=1.0)
    f = classify(art("onnx", precision="int8"), ar=acc)
    assert (f.kind, f.detail) == ("numerics", "top-1 drop +3.2 points over the 1 bound on onnxruntime")


def test_timeouts_crashes_and_memory():
    assert classify(art("coreml", "export_failed", "timeout after 900 s")).detail == "export timeout after 900 s"
    crash = classify(art(), lr=bench("runtime_failed", "killed by SIGSEGV (during load)"))
    assert (crash.kind, crash.detail, crash.step) == ("toolchain_crash", "litert killed by SIGSEGV", "benchmark")
    oom = classify(art("onnx", "out_of_memory", "out of memory: past the 18,000 MB cgroup v1 memory limit per child; "
                       "resident peak 18,100 MB; killed by SIGKILL"))
    assert oom.kind == "out_of_memory" and oom.detail.startswith("past the 18,000 MB")


def test_words_it_does_not_know_are_a_toolchain_crash_with_the_words():
    f = classify(art("tflite", "export_failed", "IndexError: Dimension out of range (expected to be in range of "
                     "[-4, 3], but got 4)"))
    assert (f.kind, f.toolchain) == ("toolchain_crash", "litert-torch")
    assert f.detail.startswith("litert-torch: IndexError: Dimension out of range")


def test_memory_decides_over_a_later_step_and_export_over_everything():
    oom_bench = bench("out_of_memory", "out of memory: past the 1 MB address-space limit per child")
    assert classify(art("tflite"), parity("parity_failed", fmt="tflite", runtime="litert"), oom_bench).kind == \
        "out_of_memory"
    f = classify(art("tflite", "export_failed", "timeout after 9 s"), None, oom_bench)
    assert (f.kind, f.step) == ("timeout", "export")


@pytest.mark.parametrize("parts", [
    (art(), parity(), bench()),  # every part passed
    (art("coreml"), ParityResult("m", "coreml", "fp32", "coreml", "skipped", "Core ML predicts on macOS only")),
    (art("coreml", "skipped", "coreml int8: needs macOS to calibrate"),),
    (None,),
])
def test_nothing_failed_is_no_class(parts):
    """Negative controls: passed and skipped rows get no failure class."""
    assert classify(*parts) is None
