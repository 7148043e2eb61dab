"""The AI Hub backend through a fake client shaped like qai-hub 0.56.0 (no network)."""

import json
import logging
import sys

import numpy as np
import pytest

from edgebench.benchmarks import aihub
from edgebench.benchmarks.aihub import Scrubber, bench_aihub, connect, find_token, upload_path
from edgebench.config import AIHubConfig
from edgebench.models.inputs import save_inputs
from edgebench.records import EXPORT_FAILED, PASSED, RUNTIME_FAILED, SKIPPED, Artifact, TensorSpec
from tests.unit import hub_fakes
from tests.unit.bench_helpers import TINY_REF, tiny_inputs
from tests.unit.hub_fakes import PROFILE, PROFILE_V10, FakeHub, InternalError, Status, UserError

TOKEN = "qaihubSECRETtoken0123456789abcdef"
DEVICES = ["aihub:Samsung Galaxy S24 (Family)", "Samsung Galaxy S25 (Family)"]
CFG = AIHubConfig(devices=DEVICES, retries=3, backoff_s=2.0)


def art(fmt, status=PASSED, path="model.tflite"):
    return Artifact(model="tiny", format=fmt, precision="fp32", status=status, path=path,
                    inputs=(TensorSpec("args_0", (1, 3, 2, 4, 4)),))


@pytest.fixture(autouse=True)
def no_real_credentials(monkeypatch, tmp_path):
    monkeypatch.delenv(aihub.TOKEN_ENV, raising=False)
    monkeypatch.setenv(aihub.CLIENT_INI_ENV, str(tmp_path / "no-such-client.ini"))


@pytest.fixture
def files(tmp_path):
    inputs, reference = tmp_path / "inputs.npz", tmp_path / "reference.npz"
    save_inputs(inputs, tiny_inputs(3))
    save_inputs(reference, {"logits": np.stack([np.full((1, 4), i, np.float32) for i in range(3)])})
    return inputs, reference


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


def run(hub, artifacts, files=(None, None), sleeps=None, **kw):
    return bench_aihub(artifacts, DEVICES, TINY_REF, *files, cfg=kw.pop("cfg", CFG), client=hub, flops=2e9,
                       sleep=(sleeps.append if sleeps is not None else lambda s: None), **kw)


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


def test_success_parses_the_profile(files, onnx_path):
    hub = FakeHub()
    rows = run(hub, [art("tflite"), art("onnx", path=onnx_path)], files)
    assert [r.status for r in rows] == [PASSED] * 4, [r.reason for r in rows]
    tfl = rows[0]
    assert tfl.device == "aihub:Samsung Galaxy S24 (Family)" and tfl.runtime == "litert"
    assert rows[2].runtime == "onnxruntime"
    times_ms = np.array(PROFILE["execution_summary"]["all_inference_times"]) / 1e3
    assert tfl.runs == len(times_ms)
    assert tfl.p50_ms == pytest.approx(np.median(times_ms))
    assert tfl.min_ms == pytest.approx(times_ms.min())
    assert tfl.outliers == 1  # the 210 ms iteration, counted, kept
    assert tfl.extra["estimated_inference_ms"] == pytest.approx(203.5)
    assert tfl.load_ms == pytest.approx(1500) and tfl.extra["warm_load_ms"] == pytest.approx(400)
    assert tfl.extra["inference_peak_memory_range_mb"] == pytest.approx([30.0, 50.0])
    assert tfl.peak_rss_mb == pytest.approx(50.0)
    assert tfl.extra["layers_per_compute_unit"] == {"NPU": 2, "CPU": 1, "GPU": 1}
    assert tfl.fps == pytest.approx(1e3 / tfl.p50_ms)
    assert tfl.gflops == pytest.approx(2 / (tfl.p50_ms / 1e3))
    assert set(tfl.extra["jobs"]) == {"profile", "inference"}
    assert tfl.extra["jobs"]["profile"].startswith(hub_fakes.WEB_URL + "/jobs/")
    assert set(rows[2].extra["jobs"]) == {"compile", "profile", "inference"}
    # one upload per artifact; a compile only for ONNX, per device, to the ONNX Runtime target
    assert sum(c[0] == "upload_model" for c in hub.calls) == 2
    compiles = [c for c in hub.calls if c[0] == "submit_compile_job"]
    assert [c[2] for c in compiles] == ["Samsung Galaxy S24 (Family)", "Samsung Galaxy S25 (Family)"]
    assert all(c[3] == "--target_runtime onnx" for c in compiles)
    # the inference job gets the clips under the artifact's own input name, one array per clip
    infer = [c for c in hub.calls if c[0] == "submit_inference_job" and c[3] is False]
    assert infer[0][4] == {"args_0": [(1, 3, 2, 4, 4)] * 3}


def test_device_outputs_go_to_compare_outputs(files, monkeypatch):
    seen = {}

    def fake_compare(reference, outputs):
        seen.update(reference=reference, outputs=outputs)
        return {"status": "passed", "max_abs_err": 0.0}

    monkeypatch.setattr(aihub, "compare_on_device", fake_compare)
    rows = run(FakeHub(), [art("tflite")], files)
    assert rows[0].extra["parity"] == {"status": "passed", "max_abs_err": 0.0}
    assert seen["outputs"]["logits"].shape == (3, 1, 4)  # "output_0" mapped onto "logits" by position
    np.testing.assert_array_equal(seen["outputs"]["logits"], seen["reference"]["logits"])


def test_device_outputs_through_the_real_parity_metrics(files):
    rows = run(FakeHub(), [art("tflite")], files)
    assert rows[0].extra["parity"]["logits"]["max_abs_err"] == 0.0
    off = {"Identity": [np.full((1, 4), i + 0.5, np.float32) for i in range(3)]}  # negative control
    rows = run(FakeHub(outputs=off), [art("tflite")], files)
    assert rows[0].extra["parity"]["logits"]["max_abs_err"] == pytest.approx(0.5)


def test_missing_parity_module_is_recorded_not_fatal(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "edgebench.parity.metrics", None)
    rows = run(FakeHub(), [art("tflite")], files)
    assert rows[0].status == PASSED
    assert rows[0].extra["parity"]["status"] == SKIPPED


def test_old_profile_format_uses_the_estimate():
    rows = run(FakeHub(profile=PROFILE_V10), [art("tflite")])
    r = rows[0]
    assert r.status == PASSED and r.p50_ms == pytest.approx(203.5) and r.runs == 0
    assert r.peak_rss_mb == pytest.approx(50.0)  # estimated_inference_peak_memory, bytes -> MiB
    assert "inference" not in r.extra["jobs"]  # no inputs given: no inference job


def test_no_token_gives_skipped_rows():
    assert find_token() is None
    client, reason = connect()
    assert client is None and aihub.TOKEN_ENV in reason
    rows = bench_aihub([art("tflite")], DEVICES, TINY_REF, cfg=CFG)
    assert [r.status for r in rows] == [SKIPPED, SKIPPED]
    assert all("no AI Hub API token" in r.reason for r in rows)


def test_no_client_gives_skipped_rows(monkeypatch):
    monkeypatch.setenv(aihub.TOKEN_ENV, TOKEN)
    monkeypatch.setitem(sys.modules, "qai_hub", None)
    rows = bench_aihub([art("tflite")], DEVICES, TINY_REF, cfg=CFG)
    assert [r.status for r in rows] == [SKIPPED, SKIPPED] and "not installed" in rows[0].reason


def test_token_from_the_client_config_file(monkeypatch, tmp_path):
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {TOKEN}\napi_url = https://example.invalid\nweb_url = https://example.invalid\n")
    monkeypatch.setenv(aihub.CLIENT_INI_ENV, str(ini))
    assert find_token() == TOKEN
    client, reason = connect()  # builds a real qai_hub.Client; no network until a call is made
    assert reason == "" and isinstance(client, aihub.RealHub)


def test_retries_with_backoff_then_success():
    hub = FakeHub(fail={"upload_model": [InternalError("502 bad gateway"), ConnectionError("reset")]})
    sleeps = []
    rows = run(hub, [art("tflite")], sleeps=sleeps)
    assert [r.status for r in rows] == [PASSED, PASSED]
    assert sleeps == [2.0, 4.0]


def test_retries_exhausted_then_runtime_failed():
    hub = FakeHub(fail={"submit_inference_job": [InternalError("Qualcomm AI Hub is unavailable right now.")] * 4})
    sleeps = []
    rows = run(hub, [art("tflite")], sleeps=sleeps)
    assert rows[0].status == RUNTIME_FAILED
    assert "profile submit: InternalError: Qualcomm AI Hub is unavailable" in rows[0].reason
    assert "after 4 attempts" in rows[0].reason
    assert sleeps == [2.0, 4.0, 8.0]
    assert rows[1].status == PASSED  # the next device still gets its profile


def test_user_errors_are_not_retried():
    hub = FakeHub(fail={"upload_model": [UserError("Unsupported model type")]})
    sleeps = []
    rows = run(hub, [art("tflite")], sleeps=sleeps)
    assert [r.status for r in rows] == [RUNTIME_FAILED] * 2 and sleeps == []
    assert rows[0].reason == "upload: UserError: Unsupported model type"


def test_failed_job_fails_only_its_device(onnx_path):
    failed = Status("FAILED", "Compilation failed: CONV_3D is not supported on the NPU")
    hub = FakeHub(job_status={("compile", "Samsung Galaxy S25 (Family)"): failed})
    rows = run(hub, [art("onnx", path=onnx_path)])
    assert rows[0].status == PASSED
    assert rows[1].status == RUNTIME_FAILED and "compile job failed: Compilation failed: CONV_3D" in rows[1].reason
    assert hub_fakes.WEB_URL in rows[1].reason


def test_other_formats_and_failed_exports_are_skipped():
    rows = run(FakeHub(), [art("coreml", path="m.mlpackage"), art("tflite", status=EXPORT_FAILED)])
    assert [r.status for r in rows] == [SKIPPED] * 4
    assert "not coreml" in rows[0].reason and "export_failed" in rows[2].reason


def test_token_never_reaches_logs_outputs_or_rows(monkeypatch, caplog, capfd, files, onnx_path):
    monkeypatch.setenv(aihub.TOKEN_ENV, TOKEN)
    leak = f"401 for https://workbench.aihub.qualcomm.com/api/v1/models/ headers={{'Authorization': 'token {TOKEN}'}}"
    hub = FakeHub(
        fail={"upload_model": [InternalError(leak)], "submit_compile_job": [UserError(f"bad token {TOKEN}")]},
        job_status={("profile", "Samsung Galaxy S25 (Family)"): Status("FAILED", f"device rejected {TOKEN}")},
    )
    with caplog.at_level(logging.DEBUG):
        rows = run(hub, [art("onnx", path=onnx_path), art("tflite")], files)
    assert {r.status for r in rows} == {RUNTIME_FAILED, PASSED}
    assert any("***" in r.reason for r in rows)
    blob = json.dumps([r.to_dict() for r in rows], default=str)
    out, err = capfd.readouterr()
    for text in (blob, caplog.text, out, err):
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
