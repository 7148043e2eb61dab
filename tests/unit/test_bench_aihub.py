"""The AI Hub backend (edgebench/devices/aihub.py) through a fake client shaped like qai-hub 0.56.0 (no network)."""

import json
import logging

import numpy as np
import pytest

from edgebench.config import PipelineConfig
from edgebench.devices import hub_client, registry
from edgebench.devices.aihub import AIHubBackend, AIHubConfig, upload_path
from edgebench.devices.hub_client import Scrubber, connect, find_token
from edgebench.models.inputs import save_inputs
from edgebench.pipeline import ModelResults, PreparedModel, RunSettings, finish_run
from edgebench.records import PARITY_FAILED, PASSED, RUNTIME_FAILED, SKIPPED, Artifact, TensorSpec
from edgebench.reports.writer import read_results_csv
from tests.unit import hub_fakes
from tests.unit.bench_helpers import TINY_REF, tiny_inputs
from tests.unit.hub_fakes import PROFILE, PROFILE_CPU, PROFILE_QNN, PROFILE_V10, FakeHub, InternalError, Status, UserError

TOKEN = "qaihubSECRETtoken0123456789abcdef"
S24, S25 = "Samsung Galaxy S24 (Family)", "Samsung Galaxy S25 (Family)"


def art(fmt, precision="fp32", path="model.tflite"):
    return Artifact(model="tiny", format=fmt, precision=precision, status=PASSED, path=path, sha256=f"sha-{fmt}-{path}",
                    inputs=(TensorSpec("args_0", (1, 3, 2, 4, 4)),))


@pytest.fixture(autouse=True)
def no_real_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv(hub_client.TOKEN_ENV, raising=False)
    monkeypatch.setenv(hub_client.CLIENT_INI_ENV, str(tmp_path / "no-such-client.ini"))


@pytest.fixture
def pm(tmp_path):
    inputs, reference = tmp_path / "inputs.npz", tmp_path / "reference.npz"
    save_inputs(inputs, tiny_inputs(3))
    save_inputs(reference, {"logits": np.stack([np.full((1, 4), i, np.float32) for i in range(3)])})
    return PreparedModel(TINY_REF, str(inputs), str(reference), int(2e9))


def settings(tmp_path, **aihub_cfg):
    cfg = {"devices": [S24, S25], "targets": ["qnn_dlc"], "retries": 3, "backoff_s": 2.0, **aihub_cfg}
    config = PipelineConfig(devices=[], aihub=AIHubConfig(**cfg))
    return RunSettings("r1", "2026-12-01T00:00:00+00:00", str(tmp_path), str(tmp_path / "cache"), 1, True, True, config)


@pytest.fixture
def hub(monkeypatch):
    """Install a fresh backend whose client is the given fake; returns (install, sleeps)."""
    sleeps = []

    def install(fake):
        backend = AIHubBackend()
        backend.connect, backend.sleep = (lambda: (fake, "")), sleeps.append
        monkeypatch.setitem(registry.backends(), "aihub", backend)
        return backend

    return install, sleeps


def run(backend, artifacts, pm, st):
    """Plan on every configured hub device, run every job: [Measured]."""
    jobs = [j for d in registry.configured_devices(st.config) for j in backend.plan(d, artifacts, pm, st.config)]
    return [registry.run_job(j, pm, st) for j in jobs]


@pytest.fixture
def onnx_path(tmp_path):
    """A self-contained ONNX file: uploaded as it is."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return str(path)


def test_profile_shape_matches_the_real_client():
    """The fake's PROFILE is what qai-hub 0.56.0 itself makes of an equivalent server response."""
    from qai_hub import public_api_pb2 as pb
    from qai_hub.client import _profile_pb_to_python_dict

    s = PROFILE["execution_summary"]

    def mem(stage):
        inc, peak = s[f"{stage}_memory_increase_range"], s[f"{stage}_memory_peak_range"]
        return pb.ProfileDetail.MemoryUsage(increase=pb.Range(lower=inc[0], upper=inc[1]),
                                            peak=pb.Range(lower=peak[0], upper=peak[1]))

    units = {"CPU": pb.COMPUTE_UNIT_CPU, "GPU": pb.COMPUTE_UNIT_GPU, "NPU": pb.COMPUTE_UNIT_NPU}
    detail = pb.ProfileDetail(
        major_version=1, minor_version=2,
        execution_time=s["estimated_inference_time"], after_execution_peak_memory=s["estimated_inference_peak_memory"],
        cold_load_time=s["first_load_time"], after_cold_load_peak_memory=s["first_load_peak_memory"],
        warm_load_time=s["warm_load_time"], after_warm_load_peak_memory=s["warm_load_peak_memory"],
        cold_load_memory=mem("first_load"), warm_load_memory=mem("warm_load"), execution_memory=mem("inference"),
        all_cold_load_times=s["all_first_load_times"], all_warm_load_times=s["all_warm_load_times"],
        all_execution_times=s["all_inference_times"],
        layer_details=[pb.LayerDetail(name=d["name"], layer_type_name=d["type"], compute_unit=units[d["compute_unit"]],
                                      execution_time=d["execution_time"]) for d in PROFILE["execution_detail"]],
    )
    assert _profile_pb_to_python_dict(detail) == PROFILE


def test_qnn_target_gives_a_results_csv_row_with_latency_memory_units_and_parity(hub, pm, tmp_path, onnx_path):
    install, _ = hub
    fake = FakeHub(profile=PROFILE_QNN)
    st = settings(tmp_path, devices=[S25])
    out = run(install(fake), [art("onnx", path=onnx_path)], pm, st)
    assert len(out) == 1
    lat, par = out[0].latency, out[0].parity
    assert lat.status == PASSED and lat.reason == "", lat.reason
    assert (lat.format, lat.runtime, lat.device) == ("onnx", "qnn_dlc", f"aihub:{S25}")
    compiles = [c for c in fake.calls if c[0] == "submit_compile_job"]
    assert compiles == [("submit_compile_job", "m0001", S25, "--target_runtime qnn_dlc", None)]
    times_ms = np.array(PROFILE["execution_summary"]["all_inference_times"]) / 1e3
    assert lat.runs == len(times_ms) and lat.p50_ms == pytest.approx(np.median(times_ms))
    assert lat.outliers == 1  # the 210 ms iteration, counted, kept
    assert lat.extra["estimated_inference_ms"] == pytest.approx(203.5)
    assert lat.gflops == pytest.approx(2 / (lat.p50_ms / 1e3))
    assert set(lat.extra["jobs"]) == {"compile", "profile", "inference"}
    # the inference job gets the clips under the artifact's own input name, one array per clip
    infer = [c for c in fake.calls if c[0] == "submit_inference_job" and c[3] is False]
    assert infer[0][4] == {"args_0": [(1, 3, 2, 4, 4)] * 3}
    assert par.status == PASSED and par.device == lat.device and par.max_abs_err == 0.0 and par.clips == 3
    paths = finish_run(st, [ModelResults(TINY_REF, [art("onnx", path=onnx_path)], [par], [lat])])
    row = read_results_csv(paths.results_csv).iloc[0]
    assert row["status"] == PASSED and row["parity"] == "passed" and row["p50_ms"] == pytest.approx(lat.p50_ms)
    assert (row["mem_peak_low_mb"], row["mem_peak_high_mb"]) == (pytest.approx(30.0), pytest.approx(50.0))
    assert (row["layers_npu"], row["layers_gpu"], row["layers_cpu"]) == (4, 0, 0)
    assert row["job_url"].startswith(hub_fakes.WEB_URL + "/jobs/")
    assert json.loads(row["runtime_options"]) == {"target": "qnn_dlc", "compile_options": "--target_runtime qnn_dlc"}


def test_cpu_fallback_is_said_in_the_row(hub, pm, tmp_path, onnx_path):
    install, _ = hub
    for profile, said in [(PROFILE, "1 of 4 layers fell back to the CPU"),
                          (PROFILE_CPU, "the whole model fell back to the CPU"), (PROFILE_QNN, "")]:
        out = run(install(FakeHub(profile=profile)), [art("onnx", path=onnx_path)], pm, settings(tmp_path, devices=[S24]))
        assert out[0].latency.status == PASSED and out[0].latency.reason == said


def test_failing_compile_job_is_runtime_failed_with_the_hubs_reason(hub, pm, tmp_path, onnx_path):
    install, _ = hub
    failed = Status("FAILED", "Compilation failed: Conv3d is not supported on the HTP")
    out = run(install(FakeHub(job_status={("compile", S25): failed})), [art("onnx", path=onnx_path)], pm, settings(tmp_path))
    assert out[0].latency.status == PASSED
    assert out[1].latency.status == RUNTIME_FAILED and out[1].parity is None
    assert "compile job failed: Compilation failed: Conv3d is not supported" in out[1].latency.reason
    assert hub_fakes.WEB_URL in out[1].latency.reason


def test_targets_per_device_and_our_tflite_as_is(hub, pm, tmp_path, onnx_path):
    install, _ = hub
    fake = FakeHub()
    st = settings(tmp_path, targets=["qnn_dlc", "qnn_context_binary", "onnx", "tflite"], device_targets={S24: ["tflite"]})
    out = run(install(fake), [art("onnx", path=onnx_path), art("tflite")], pm, st)
    keys = [(m.latency.device[6:], m.latency.format, m.latency.runtime) for m in out]
    assert keys == [(S24, "onnx", "tflite"), (S24, "tflite", "tflite"),
                    (S25, "onnx", "qnn_dlc"), (S25, "onnx", "qnn_context_binary"), (S25, "onnx", "onnx"),
                    (S25, "onnx", "tflite"), (S25, "tflite", "tflite")]
    assert all(m.latency.status == PASSED for m in out)
    assert sum(c[0] == "upload_model" for c in fake.calls) == 2  # once per artifact, whatever the targets and devices
    assert "compile" not in out[1].latency.extra["jobs"]  # our own file, no compile job
    assert out[1].latency.reason == "1 of 4 layers fell back to the CPU"  # PROFILE runs its CONV_3D there


def test_quantize_jobs_feed_the_targets(hub, pm, tmp_path, onnx_path):
    install, _ = hub
    fake = FakeHub(profile=PROFILE_QNN)
    st = settings(tmp_path, precisions=["fp32", "w8a16", "int8"], targets=["qnn_dlc", "tflite"], inference_job=False)
    out = run(install(fake), [art("onnx", path=onnx_path)], pm, st)
    assert [(m.latency.precision, m.latency.runtime) for m in out[:6]] == [
        ("fp32", "qnn_dlc"), ("fp32", "tflite"), ("w8a16", "qnn_dlc"), ("w8a16", "tflite"), ("int8", "qnn_dlc"), ("int8", "tflite")]
    assert all(m.latency.status == PASSED for m in out), [m.latency.reason for m in out]
    quantize = [c for c in fake.calls if c[0] == "submit_quantize_job"]
    # once per precision for both devices and targets, the clips under the artifact's input name,
    # the calibration set of the local exports (calibration: in the config; here 8 seeded random clips)
    assert quantize == [("submit_quantize_job", "m0001", "int8", "int16", {"args_0": [(1, 3, 2, 4, 4)] * 8}),
                        ("submit_quantize_job", "m0001", "int8", "int8", {"args_0": [(1, 3, 2, 4, 4)] * 8})]
    assert out[2].latency.extra["calibration"].startswith("random x8 minmax")
    compiled_from = {c[1] for c in fake.calls if c[0] == "submit_compile_job"}
    assert compiled_from == {"m0001"} | {"m" + m.latency.extra["jobs"]["quantize"].split("/")[-2] + "t"
                                         for m in out if m.latency.precision != "fp32"}
    assert out[2].latency.runtime_options["quantize"] == "weights int8, activations int16"


def test_quantize_refusals_say_why(hub, pm, tmp_path):
    install, _ = hub
    st = settings(tmp_path, devices=[S24], source="torchscript", precisions=["w8a16", "fp16"])
    out = run(install(FakeHub()), [art("torchscript", path="m.pt")], pm, st)
    assert [m.latency.status for m in out] == [SKIPPED, SKIPPED]
    assert "take ONNX" in out[0].latency.reason and "not fp16" in out[1].latency.reason


def test_torchscript_source_compiles_with_input_specs(hub, pm, tmp_path):
    install, _ = hub
    fake = FakeHub()
    out = run(install(fake), [art("torchscript", path="m.pt")], pm, settings(tmp_path, devices=[S24], source="torchscript"))
    assert out[0].latency.status == PASSED
    assert [c[4] for c in fake.calls if c[0] == "submit_compile_job"] == [{"video": ((1, 3, 2, 4, 4), "float32")}]


def test_device_outputs_are_judged_by_the_parity_verdict(hub, pm, tmp_path):
    install, _ = hub
    off = {"Identity": [np.full((1, 4), i + 0.5, np.float32) for i in range(3)]}  # negative control
    out = run(install(FakeHub(outputs=off)), [art("tflite")], pm, settings(tmp_path, devices=[S24]))
    par = out[0].parity
    assert par.status == PARITY_FAILED and par.max_abs_err == pytest.approx(0.5) and "max_abs_err" in par.reason
    assert out[0].latency.status == PASSED
    wrong_shape = {"y": [np.zeros((1, 5), np.float32)] * 3}
    out = run(install(FakeHub(outputs=wrong_shape)), [art("tflite")], pm, settings(tmp_path, devices=[S24]))
    assert out[0].parity.status == PARITY_FAILED and "shape" in out[0].parity.reason


def test_old_profile_format_uses_the_estimate(hub, pm, tmp_path):
    install, _ = hub
    r = run(install(FakeHub(profile=PROFILE_V10)), [art("tflite")], pm, settings(tmp_path, devices=[S24]))[0].latency
    assert r.status == PASSED and r.p50_ms == pytest.approx(203.5) and r.runs == 0
    assert r.peak_rss_mb == pytest.approx(50.0)  # estimated_inference_peak_memory, bytes -> MiB


def test_no_token_is_said_at_planning(pm, tmp_path):
    assert find_token() is None
    client, reason = connect()
    assert client is None and hub_client.TOKEN_ENV in reason
    st = settings(tmp_path)
    jobs = registry.plan_jobs([art("tflite")], pm, st.config)
    assert [j.device for j in jobs] == [f"aihub:{S24}", f"aihub:{S25}"]
    rows = [registry.run_job(j, pm, st).latency for j in jobs]
    assert [r.status for r in rows] == [SKIPPED, SKIPPED] and all("no AI Hub API token" in r.reason for r in rows)


def test_nothing_to_compile_is_said(hub, pm, tmp_path):
    install, _ = hub
    out = run(install(FakeHub()), [art("coreml", path="m.mlpackage")], pm, settings(tmp_path, devices=[S24]))
    assert out[0].latency.status == SKIPPED and "no onnx artifact to compile" in out[0].latency.reason


def test_token_from_the_client_config_file(monkeypatch, tmp_path):
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {TOKEN}\napi_url = https://example.invalid\nweb_url = https://example.invalid\n")
    monkeypatch.setenv(hub_client.CLIENT_INI_ENV, str(ini))
    assert find_token() == TOKEN
    client, reason = connect()  # builds a real qai_hub.Client; no network until a call is made
    assert reason == "" and isinstance(client, hub_client.RealHub)


def test_retries_with_backoff_then_success(hub, pm, tmp_path):
    install, sleeps = hub
    fake = FakeHub(fail={"upload_model": [InternalError("502 bad gateway"), ConnectionError("reset")]})
    out = run(install(fake), [art("tflite")], pm, settings(tmp_path))
    assert [m.latency.status for m in out] == [PASSED, PASSED]
    assert sleeps == [2.0, 4.0]


def test_retries_exhausted_then_runtime_failed(hub, pm, tmp_path):
    install, sleeps = hub
    fake = FakeHub(fail={"submit_inference_job": [InternalError("Qualcomm AI Hub is unavailable right now.")] * 4})
    out = run(install(fake), [art("tflite")], pm, settings(tmp_path))
    assert out[0].latency.status == RUNTIME_FAILED
    assert "profile submit: InternalError: Qualcomm AI Hub is unavailable" in out[0].latency.reason
    assert "after 4 attempts" in out[0].latency.reason and sleeps == [2.0, 4.0, 8.0]
    assert out[1].latency.status == PASSED  # the next device still gets its profile


def test_user_errors_are_not_retried(hub, pm, tmp_path):
    install, sleeps = hub
    out = run(install(FakeHub(fail={"upload_model": [UserError("Unsupported model type")]})), [art("tflite")], pm,
              settings(tmp_path, devices=[S24]))
    assert out[0].latency.status == RUNTIME_FAILED and sleeps == []
    assert out[0].latency.reason == "upload: UserError: Unsupported model type"


def test_token_never_reaches_logs_outputs_or_rows(hub, monkeypatch, caplog, capfd, pm, tmp_path, onnx_path):
    install, _ = hub
    monkeypatch.setenv(hub_client.TOKEN_ENV, TOKEN)
    leak = f"401 for https://workbench.aihub.qualcomm.com/api/v1/models/ headers={{'Authorization': 'token {TOKEN}'}}"
    fake = FakeHub(
        fail={"upload_model": [InternalError(leak)], "submit_compile_job": [UserError(f"bad token {TOKEN}")]},
        job_status={("inference", S25): Status("FAILED", f"device rejected {TOKEN}")},
    )
    with caplog.at_level(logging.DEBUG):
        out = run(install(fake), [art("onnx", path=onnx_path), art("tflite")], pm, settings(tmp_path))
    assert {m.latency.status for m in out} == {RUNTIME_FAILED, PASSED}
    assert any("***" in m.latency.reason for m in out) and any(m.parity and "***" in m.parity.reason for m in out)
    blob = json.dumps([[m.latency.to_dict(), m.parity and m.parity.to_dict()] for m in out], default=str)
    o, e = capfd.readouterr()
    for text in (blob, caplog.text, o, e):
        assert TOKEN not in text
    assert "retry 1/3" in caplog.text  # the log was written, scrubbed


def test_scrubber_negative_control():
    s = Scrubber(TOKEN)
    assert s(f"x {TOKEN} y") == "x *** y"
    assert s("nothing secret here") == "nothing secret here"
    assert Scrubber(None)("Authorization: token abc123") == "Authorization: token ***"


def test_onnx_with_external_data_is_staged_as_a_folder(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((32, 32), np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [w])
    src = tmp_path / "src"
    src.mkdir()
    onnx.save(helper.make_model(graph), str(src / "model.onnx"), save_as_external_data=True, location="model.onnx.data",
              size_threshold=0)
    staged = upload_path(art("onnx", path=str(src / "model.onnx")), tmp_path / "stage")
    assert staged.is_dir() and staged.name == "model.onnx"
    assert sorted(p.name for p in staged.iterdir()) == ["model.data", "model.onnx"]
    back = onnx.load(str(staged / "model.onnx"))
    np.testing.assert_array_equal(numpy_helper.to_array(back.graph.initializer[0]), np.ones((32, 32)))
    # negative control: a self-contained ONNX file is uploaded as it is
    onnx.save(helper.make_model(graph), str(src / "plain.onnx"))
    assert upload_path(art("onnx", path=str(src / "plain.onnx")), tmp_path / "stage2") == src / "plain.onnx"


def test_the_compile_source_cannot_also_be_profiled_as_it_is():
    from edgebench.config import validate
    from edgebench.errors import UserError as ConfigError

    with pytest.raises(ConfigError, match="aihub.as_is.*compile source"):
        validate(PipelineConfig, {"aihub": {"source": "onnx", "as_is": ["onnx"]}}, "p.yaml")
    assert validate(PipelineConfig, {"aihub": {"source": "torchscript", "as_is": ["onnx"]}}, "p.yaml").aihub.as_is == ["onnx"]
