"""Reduced precision on the small spec: refusals, calibration sets, ONNX int8/w8a16 and Core ML w8 artifacts
judged on real clips, and the negative controls (each injected quantization bug fails)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from edgebench.config import CalibrationConfig, ParityConfig, PipelineConfig, Precision
from edgebench.converters.export import export_artifact, mislabelled, refusal
from edgebench.converters.onnx import OnnxConverter, quantize
from edgebench.converters.registry import converters
from edgebench.errors import UserError
from edgebench.models.calibration import calibration_videos, make_calibration, pick_videos, video_clips
from edgebench.records import SKIPPED, Artifact, RunData
from tests import CONVS_3D, CONVS_LOWERED, quant_bugs
from edgebench.models.source import build_module

TIMEOUT_S = 600
TOLERANCES = PipelineConfig().parity.tolerances
IMPOSSIBLE = [(fmt, p) for fmt, c in converters().items() for p in get_args(Precision) if p not in c.precisions]


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qcache")


@pytest.fixture(scope="module")
def calib_cfg(bikes) -> CalibrationConfig:
    return CalibrationConfig(videos=[str(bikes.parent)], clips=4)


@pytest.fixture(scope="module")
def clips(small_ref, bikes):
    """Real parity clips at the small shape: 4 windows of carphone and bikes through the model's sampler."""
    from edgebench.models.video import preprocess_of

    picks = pick_videos(calibration_videos([str(bikes.parent)]), 4, seed=99)
    return {small_ref.inputs[0].name: video_clips(picks, preprocess_of(small_ref), seed=99)}


@pytest.fixture(scope="module")
def reference(small_ref, clips):
    from edgebench.parity.check import reference_outputs

    return reference_outputs(small_ref, clips, threads=1)


def _judge(session, clips, reference, precision):
    from edgebench.parity.check import run_clips
    from edgebench.parity.verdict import judge

    return judge(run_clips(session, clips), reference, precision, TOLERANCES[precision])


# ---------------------------------------------------------------- planning: refusals are skipped rows


@pytest.mark.parametrize("fmt, precision", IMPOSSIBLE)
def test_impossible_precision_is_a_skipped_row_with_a_reason(fmt, precision, small_ref, tmp_path):
    a = export_artifact(small_ref, fmt, precision, {}, tmp_path, TIMEOUT_S)
    assert a.status == SKIPPED and a.reason.startswith(f"{fmt} {precision}: ") and len(a.reason) > len(fmt) + 12
    assert "\n" not in a.reason and not a.path and not list(tmp_path.iterdir())  # no child, no file

    from edgebench.reports.rows import flatten

    run = RunData("r", "t0", "t1", "/o", 2, [small_ref], [a], config={"formats": {fmt: [precision]}})
    row = flatten(run).iloc[0]
    assert row["status"] == SKIPPED and row["reason"] == f"export: {a.reason}"


def test_plan_keeps_impossible_precisions_for_the_export_to_refuse():
    from edgebench.converters.export import plan_artifacts

    plan = plan_artifacts(PipelineConfig(formats={"tflite": ["fp32", "int8"], "coreml": ["int8"]}))
    assert [(f, p) for f, p, _ in plan] == [("tflite", "fp32"), ("tflite", "int8"), ("coreml", "int8")]


def test_calibration_method_the_toolchain_lacks_is_refused():
    class MinMaxOnly(OnnxConverter):
        calibration_methods = frozenset({"minmax"})

    why = refusal(MinMaxOnly(), "int8", {}, CalibrationConfig(method="entropy"))
    assert why == "onnx int8: calibration method entropy is not offered (offered: minmax)"
    assert refusal(MinMaxOnly(), "fp32", {}, CalibrationConfig(method="entropy")) is None


def test_mislabelled_census():
    assert mislabelled("int8", {"int8": 21}) is None and mislabelled("fp32", {}) is None
    assert mislabelled("int8", {"int8": 20, "float32": 1}) == "int8: 20 of 21 conv/matmul ops run int8 (float32 1, int8 20)"
    assert mislabelled("w8", {}) == "w8: no compute dtype census read back"


# ---------------------------------------------------------------- calibration sets


def test_calibration_from_videos_is_cached_seeded_and_never_the_parity_clips(small_ref, bikes, tmp_path):
    from edgebench.models.inputs import make_inputs
    from edgebench.models.source import resolve_model

    cfg = CalibrationConfig(videos=[str(bikes)], clips=3, seed=0)
    first = make_calibration(small_ref, cfg, tmp_path)
    assert first.source == "video:bikes.mp4" and first.label.startswith("video:bikes.mp4 x3 minmax ")
    assert make_calibration(small_ref, cfg, tmp_path) == first  # the saved set is reused
    loaded = first.load(small_ref)
    assert len(loaded) == 3 and loaded[0]["video"].shape == small_ref.inputs[0].shape
    assert 0.0 <= loaded[0]["video"].min() and loaded[0]["video"].max() <= 1.0
    assert make_calibration(small_ref, cfg.model_copy(update={"seed": 1}), tmp_path).sha256 != first.sha256

    full = resolve_model("resnet_mixed")  # parity reads real clips at the model's own shape
    parity = make_inputs(full, ParityConfig(video=str(bikes), video_clips=2, random_clips=2, seed=0))["video"]
    calib = np.stack([c["video"] for c in make_calibration(full, CalibrationConfig(videos=[str(bikes)], clips=4),
                                                           tmp_path).load(full)])
    assert len(parity) == 4
    assert not any(np.array_equal(c, p) for c in calib for p in parity)


def test_calibration_without_videos_is_random_and_not_parity_random(small_ref, tmp_path):
    from edgebench.models.inputs import random_clips

    cal = make_calibration(small_ref, CalibrationConfig(clips=2), tmp_path)
    assert cal.source == "random" and cal.label.startswith("random x2 minmax")
    parity = random_clips(small_ref, 2, 0)
    assert not any(np.array_equal(c["video"], p) for c in cal.load(small_ref) for p in parity)


def test_calibration_bad_paths_are_user_errors(small_ref, tmp_path):
    with pytest.raises(UserError, match="calibration.videos: no such file or folder /nope.mp4"):
        make_calibration(small_ref, CalibrationConfig(videos=["/nope.mp4"]), tmp_path)
    with pytest.raises(UserError, match="holds no video"):
        make_calibration(small_ref, CalibrationConfig(videos=[str(tmp_path)]), tmp_path)


# ---------------------------------------------------------------- ONNX int8 / w8a16


@pytest.fixture(scope="module")
def onnx_q(small_ref, cache, calib_cfg) -> dict[str, Artifact]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # each export runs in its own child
        futures = {p: pool.submit(export_artifact, small_ref, "onnx", p, {}, cache, TIMEOUT_S, calibration=calib_cfg)
                   for p in ("fp32", "int8", "w8a16")}
    done = {p: f.result() for p, f in futures.items()}
    for precision, a in done.items():
        assert a.ok, f"{precision}: {a.reason}\n{Path(a.log_path).read_text()[-3000:]}"
    return done


def test_onnx_quantized_artifacts_say_what_runs_quantized(onnx_q):
    assert onnx_q["fp32"].compute_dtypes == {"float32": CONVS_LOWERED + 1} and onnx_q["fp32"].calibration == ""
    assert onnx_q["int8"].compute_dtypes == {"int8": CONVS_LOWERED + 1}
    assert onnx_q["w8a16"].compute_dtypes == {"w8a16": CONVS_LOWERED + 1}
    assert onnx_q["int8"].calibration.startswith("video:bikes.mp4,carphone_pristine.mp4 x4 minmax ")
    assert onnx_q["int8"].options["calibration_method"] == "minmax"
    assert onnx_q["int8"].size_bytes < onnx_q["fp32"].size_bytes / 3
    assert onnx_q["int8"].op_census["QuantizeLinear"] > 0 and onnx_q["int8"].op_census["DequantizeLinear"] > 21


def test_calibration_set_is_in_the_cache_key(small_ref, cache, calib_cfg, onnx_q):
    again = export_artifact(small_ref, "onnx", "int8", {}, cache, TIMEOUT_S, calibration=calib_cfg)
    assert again.cached and again.cache_key == onnx_q["int8"].cache_key
    from edgebench.converters.export import cache_key

    conv = converters()["onnx"]
    opts = {**conv.merge_options({}), "calibration_method": "minmax"}
    other = make_calibration(small_ref, calib_cfg.model_copy(update={"seed": 5}), cache)
    assert cache_key(small_ref, "onnx", "int8", opts, conv, other) != onnx_q["int8"].cache_key


@pytest.mark.parametrize("precision", ["int8", "w8a16"])
def test_onnx_quantized_parity_passes_and_injected_bugs_fail(precision, onnx_q, small_ref, clips, reference, tmp_path):
    from edgebench.runtimes.registry import get_runtime

    ort = get_runtime("onnxruntime")
    a = onnx_q[precision]
    with ort.load(a, small_ref, 1) as s:
        good = _judge(s, clips, reference, precision)
    assert good.status == "passed", good.reason
    for name, inject in (("scale", quant_bugs.onnx_wrong_scale), ("stem", quant_bugs.onnx_stem_channels_reversed)):
        bad = tmp_path / f"{name}.onnx"
        inject(Path(a.path), bad)
        with ort.load(replace(a, path=str(bad)), small_ref, 1) as s:
            v = _judge(s, clips, reference, precision)
        assert v.status == "parity_failed", f"{name} passed: {v.metrics}"


def test_onnx_garbage_calibration_fails_and_a_float_layer_is_mislabelled(onnx_q, small_ref, cache, calib_cfg, clips,
                                                                         reference, tmp_path):
    from edgebench.runtimes.registry import get_runtime

    fp32 = Path(onnx_q["fp32"].path)
    opts = {**OnnxConverter().merge_options({}), "calibration_method": "minmax"}
    calib = make_calibration(small_ref, calib_cfg, cache).load(small_ref)
    bad = tmp_path / "garbage.onnx"
    quantize(fp32, bad, quant_bugs.garbage(calib), "int8", opts)
    with get_runtime("onnxruntime").load(replace(onnx_q["int8"], path=str(bad)), small_ref, 1) as s:
        v = _judge(s, clips, reference, "int8")
    assert v.status == "parity_failed", v.metrics

    partial = tmp_path / "partial.onnx"
    quantize(fp32, partial, calib, "int8", opts, exclude=(quant_bugs.conv_names(fp32)[8],))
    dtypes = OnnxConverter().compute_dtypes(partial)
    assert dtypes == {"int8": CONVS_LOWERED, "float32": 1}
    assert mislabelled("int8", dtypes) == (f"int8: {CONVS_LOWERED} of {CONVS_LOWERED + 1} conv/matmul ops run int8 "
                                           f"(float32 1, int8 {CONVS_LOWERED})")


def test_onnx_int8_runs_its_convs_without_layout_round_trips(onnx_q, small_ref, cache, calib_cfg, tmp_path):
    """The static-batch int8 file: ONNX Runtime keeps every QLinearConv in NHWC (the input's and the tail's
    Transposes only, Q/DQ only at the float ends). Negative control: the dynamic-batch form of main before
    issue 27 (quantized from the fp32 artifact) costs a Transpose pair around the convs."""
    import onnx

    from edgebench.runtimes.onnxruntime import optimized_census

    stored = {n.op_type for n in onnx.load(onnx_q["int8"].path).graph.node}
    assert not stored & {"Gather", "Pad"}, stored  # frames move by Slice/Concat on the folded tensor
    ran = optimized_census(onnx_q["int8"].path)
    assert ran["QLinearConv"] == CONVS_LOWERED and ran.get("Transpose", 0) <= 3, ran
    assert ran.get("QuantizeLinear", 0) <= 2 and ran.get("DequantizeLinear", 0) <= 2, ran

    dynamic = tmp_path / "dynamic.int8.onnx"
    opts = {**OnnxConverter().merge_options({}), "calibration_method": "minmax"}
    quantize(Path(onnx_q["fp32"].path), dynamic, make_calibration(small_ref, calib_cfg, cache).load(small_ref), "int8", opts)
    assert optimized_census(dynamic).get("Transpose", 0) >= CONVS_LOWERED - 4


def test_onnx_int8_weights_pick_the_hosts_mlas_kernel_bit_for_bit(onnx_q, small_ref, cache, calib_cfg, clips):
    """`conv_kernel: auto` stores the weights for this host's faster MLAS kernel (qgemm, on AMX, where the CPU has
    AMX-INT8). The other weight form, quantized from the same file and clips, runs every conv on the other kernel
    (negative control: the 9-channel stacked stem can only run qgemm) and gives the same outputs, bit for bit."""
    from edgebench.converters.onnx_conv_kernel import conv_kernels, host_conv_kernel
    from edgebench.parity.check import run_clips
    from edgebench.runtimes.registry import get_runtime

    host = onnx_q["int8"].options["conv_kernel"]
    assert host == host_conv_kernel()
    other = {"qgemm": "convsym", "convsym": "qgemm"}[host]
    files = {host: Path(onnx_q["int8"].path), other: Path(cache) / f"int8-{other}.onnx"}
    opts = {**OnnxConverter().merge_options({"conv_kernel": other}), "calibration_method": "minmax"}
    quantize(Path(onnx_q["fp32"].path), files[other], make_calibration(small_ref, calib_cfg, cache).load(small_ref),
             "int8", opts)
    assert conv_kernels(files["qgemm"]) == {"qgemm": CONVS_LOWERED}
    assert conv_kernels(files["convsym"]) == {"convsym": CONVS_LOWERED - 1, "qgemm": 1}
    outputs = []
    for path in files.values():
        with get_runtime("onnxruntime").load(replace(onnx_q["int8"], path=str(path)), small_ref, 1) as session:
            outputs.append(run_clips(session, clips))
    np.testing.assert_array_equal(outputs[0]["logits"], outputs[1]["logits"])


# ---------------------------------------------------------------- Core ML w8 on coreml-mil


@pytest.fixture(scope="module")
def coreml_w8(small_ref, cache) -> Artifact:
    a = export_artifact(small_ref, "coreml", "w8", {}, cache, TIMEOUT_S)
    assert a.ok, f"{a.reason}\n{Path(a.log_path).read_text()[-3000:]}"
    return a


def test_coreml_w8_holds_int8_weights_and_passes_on_coreml_mil(coreml_w8, small_ref, clips, reference):
    from edgebench.runtimes.registry import get_runtime

    assert coreml_w8.compute_dtypes == {"w8": CONVS_3D + 1} and coreml_w8.calibration == ""
    assert coreml_w8.op_census["constexpr_affine_dequantize"] == 21
    for kind in (None, "scale", "stem"):
        with get_runtime("coreml-mil").load(coreml_w8, small_ref, 1) as s:
            if kind:
                quant_bugs.mil_weight_bug(s, kind)
            v = _judge(s, clips, reference, "w8")
        assert v.status == ("passed" if kind is None else "parity_failed"), (kind, v.reason, v.metrics)


def test_coreml_mil_dequantizes_as_coremltools_does():
    """Both constexpr ops against coremltools' own value_inference, on per-channel and per-block data."""
    import torch
    import coremltools as ct
    from coremltools.converters.mil.mil import Builder as mb

    from edgebench.runtimes.coreml_mil import OPS, _Op

    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (4, 6, 3), dtype=np.int8)
    scale, zp = rng.random(4, dtype=np.float32) + 0.1, rng.integers(-3, 3, 4, dtype=np.int8)
    bscale, boff = rng.random((2, 3, 1), dtype=np.float32) + 0.1, rng.integers(-3, 3, (2, 3, 1), dtype=np.int8)
    ops = {}

    @mb.program(input_specs=[], opset_version=ct.target.iOS16)
    def per_channel():
        ops["affine"] = mb.constexpr_affine_dequantize(quantized_data=q, zero_point=zp, scale=scale, axis=0).op
        return mb.identity(x=ops["affine"].outputs[0])

    @mb.program(input_specs=[], opset_version=ct.target.iOS18)
    def per_block():
        ops["block"] = mb.constexpr_blockwise_shift_scale(data=q, scale=bscale, offset=boff).op
        return mb.identity(x=ops["block"].outputs[0])

    for op in ops.values():
        env = {v.name: v.val for v in op.inputs.values()}
        ours = OPS[op.op_type](_Op(op, env))
        assert isinstance(ours, torch.Tensor)
        np.testing.assert_allclose(ours.numpy(), op.materialized_val_inference(), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- TFLite int8 (PT2E on the 2D-lowered form)


@pytest.mark.slow  # litert-torch's conversion takes about half a minute even at the small shape
def test_tflite_int8_is_all_int8_passes_parity_and_injected_bugs_fail(small_ref, cache, calib_cfg, clips, reference,
                                                                       tmp_path):
    """PT2E int8 of the 2D-lowered form on real clips: every conv int8, float logits read back, parity passing
    (it failed at 12 dB until the padding frames stopped setting the concatenations' scale: converters/tflite.py);
    a wrong filter scale and a garbage calibration fail."""
    from edgebench.converters.tflite import TFLiteConverter
    from edgebench.runtimes.registry import get_runtime

    a = export_artifact(small_ref, "tflite", "int8", {}, cache, TIMEOUT_S, calibration=calib_cfg)
    assert a.ok, f"{a.reason}\n{Path(a.log_path).read_text()[-3000:]}"
    assert a.compute_dtypes == {"int8": CONVS_LOWERED + 1} and a.calibration.startswith("video:")
    assert a.op_census["CONV_2D"] == CONVS_LOWERED and "CONV_3D" not in a.op_census
    litert = get_runtime("litert")
    with litert.load(a, small_ref, 1) as s:
        good = _judge(s, clips, reference, "int8")
        assert s.run({"video": clips["video"][0]})["logits"].dtype == np.float32  # int8 output, dequantized
    assert good.status == "passed", (good.reason, good.metrics)

    scaled = tmp_path / "scale.tflite"
    quant_bugs.tflite_wrong_scale(Path(a.path), scaled)
    garbage = tmp_path / "garbage.tflite"
    calib = make_calibration(small_ref, calib_cfg, cache).load(small_ref)
    TFLiteConverter().export(build_module(small_ref, lowered=True), small_ref, "int8", {"strict_export": False}, garbage,
                             calibration=quant_bugs.garbage(calib))
    for bad in (scaled, garbage):
        with litert.load(replace(a, path=str(bad)), small_ref, 1) as s:
            v = _judge(s, clips, reference, "int8")
        assert v.status == "parity_failed", f"{bad.name} passed: {v.metrics}"


# ---------------------------------------------------------------- rows and the report's precision table


def test_rows_carry_speedup_vs_fp32_and_calibration_and_the_precision_table_shows_them():
    from edgebench.records import LatencyResult, ParityResult
    from edgebench.reports.precision import precision_table
    from edgebench.reports.rows import flatten

    arts = [Artifact("m", "onnx", "fp32", "passed", size_bytes=47 * 2**20),
            Artifact("m", "onnx", "int8", "passed", size_bytes=12 * 2**20, calibration="random x8 minmax 1234abcd"),
            Artifact("m", "tflite", "fp32", "passed")]
    lat = [LatencyResult("m", "pytorch", "fp32", "torch", "local", "passed", p50_ms=400.0),
           LatencyResult("m", "onnx", "fp32", "onnxruntime", "local", "passed", p50_ms=480.0),
           LatencyResult("m", "onnx", "int8", "onnxruntime", "local", "passed", p50_ms=160.0),
           LatencyResult("m", "tflite", "fp32", "litert", "local", "passed", p50_ms=700.0)]
    par = [ParityResult("m", "onnx", "int8", "onnxruntime", "passed", cosine=0.9996, psnr_db=41.6, top5_agree=1.0)]
    df = flatten(RunData("r", "t0", "t1", "/o", 2, [], arts, par, lat, config={"formats": {"onnx": [], "tflite": []}}))
    int8 = df[(df["format"] == "onnx") & (df["precision"] == "int8")].iloc[0]
    assert int8["speedup_vs_fp32"] == pytest.approx(3.0) and int8["speedup_vs_eager"] == pytest.approx(2.5)
    assert int8["calibration"] == "random x8 minmax 1234abcd"
    assert df[df["precision"] == "fp32"]["speedup_vs_fp32"].isna().all()
    table = precision_table(df)
    assert [(r["format"], r["precision"]) for r in table] == [("onnx", "fp32"), ("onnx", "int8")]  # tflite: one precision
    assert table[1]["speedup_vs_fp32"] == "3.00x" and table[1]["size_mb"] == "12.0" and table[1]["psnr_db"] == "41.6"


def test_video_calibration_judged_on_random_clips_is_warned(caplog, bikes):
    """int8 bounds assume calibration and parity clips of one kind (docs/parity.md): a config that mixes them
    gets a warning at the start of a run; the default (random calibration, random parity) gets none, nor does
    video calibration judged on video alone (random_clips: 0)."""
    import logging

    from edgebench.preflight import check_config

    videos = CalibrationConfig(videos=[str(bikes)])
    with caplog.at_level(logging.WARNING, logger="edgebench.preflight"):
        check_config(PipelineConfig())
        assert caplog.records == []
        check_config(PipelineConfig(calibration=videos))
        assert "calibrate on video clips but parity also judges 3 random clips" in caplog.text
        assert "parity.random_clips: 0" in caplog.text
        caplog.clear()
        check_config(PipelineConfig(formats={"onnx": ["fp32"]}, calibration=videos))
        assert caplog.records == []  # nothing calibrated, nothing to warn about
        check_config(PipelineConfig(calibration=videos, parity={"random_clips": 0, "video": str(bikes)}))
        assert caplog.records == []  # one kind of clip on both sides
    with pytest.raises(UserError, match=r"pipeline.yaml: calibration.videos: no such file or folder clips/"):
        check_config(PipelineConfig(calibration=CalibrationConfig(videos=["clips/"])))
