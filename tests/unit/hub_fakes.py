"""A fake Qualcomm AI Hub client shaped like qai-hub 0.56.0's real objects (no network).

Shapes, from qai_hub/client.py of qai-hub 0.56.0:
- `download_profile()` returns `_profile_pb_to_python_dict(...)`: {"execution_summary": {...},
  "execution_detail": [{"name", "type", "compute_unit": "NPU"|"GPU"|"CPU", "execution_time"?,
  "execution_cycles"?}, ...]}. Summary times are microseconds, memory bytes; profile format 1.1 adds
  "<stage>_memory_{increase,peak}_range" (lower, upper) tuples, 1.2 adds "all_<stage>_times" lists.
  test_bench_aihub checks PROFILE against the real converter fed an equivalent protobuf.
- `job.wait(timeout)` returns a JobStatus: .success/.failure/.finished, .code ("SUCCESS",
  "FAILED", ...), .message (the failure reason). `job.url` is "<web_url>/jobs/<job id>/".
- `CompileJob.get_target_model()` and `QuantizeJob.get_target_model()` return a Model, or None when
  the job failed (client.py, CompileJob / QuantizeJob.get_target_model).
- `InferenceJob.download_output_data()` returns DatasetEntries: {output name: [array per sample]}, or
  None when the job failed (client.py, InferenceJob.download_output_data -> Dataset.download).
- `Client.submit_quantize_job(model, calibration_data, weights_dtype, activations_dtype, name, options)`
  takes an ONNX model and DatasetEntries; dtypes are `QuantizeDtype` members (INT8, INT16, INT4);
  RealHub passes their names, so the fake records "int8" / "int16" (client.py, submit_quantize_job).
- `Client.submit_compile_job(model, device, name, input_specs, options, ...)`: `input_specs` is
  {name: (shape, dtype)}, required for TorchScript (client.py, submit_compile_job's docstring).
- Errors: qai_hub.UserError (bad input, 4xx, bad token), InternalError (5xx, connection problems).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

WEB_URL = "https://workbench.aihub.qualcomm.com"

PROFILE = {
    "execution_summary": {
        "estimated_inference_time": 203500,
        "estimated_inference_peak_memory": 52428800,
        "first_load_time": 1500000,
        "first_load_peak_memory": 60000000,
        "warm_load_time": 400000,
        "warm_load_peak_memory": 55000000,
        "compile_time": 0,
        "compile_peak_memory": 0,
        "compile_memory_increase_range": None,
        "compile_memory_peak_range": None,
        "first_load_memory_increase_range": (1000000, 2000000),
        "first_load_memory_peak_range": (50000000, 60000000),
        "warm_load_memory_increase_range": (0, 1000000),
        "warm_load_memory_peak_range": (40000000, 45000000),
        "inference_memory_increase_range": (0, 2097152),
        "inference_memory_peak_range": (31457280, 52428800),
        "all_compile_times": [],
        "all_first_load_times": [1500000],
        "all_warm_load_times": [400000],
        "all_inference_times": [203000, 203500, 204000, 203200, 203900, 210000, 202900, 203600],
    },
    "execution_detail": [
        {"name": "conv3d_0", "type": "CONV_3D", "compute_unit": "CPU", "execution_time": 9000},
        {"name": "mul_0", "type": "MUL", "compute_unit": "GPU", "execution_time": 300},
        {"name": "conv2d_1", "type": "CONV_2D", "compute_unit": "NPU", "execution_time": 1200},
        {"name": "conv2d_2", "type": "CONV_2D", "compute_unit": "NPU", "execution_time": 1100},
    ],
}
# Profile format 1.0: no ranges, no per-iteration times.
PROFILE_V10 = {
    "execution_summary": {k: v for k, v in PROFILE["execution_summary"].items()
                          if not k.endswith("_range") and not k.startswith("all_")},
    "execution_detail": PROFILE["execution_detail"],
}


class UserError(Exception):
    """Stands for qai_hub.UserError (same class name, which is what the backend looks at)."""


class InternalError(Exception):
    """Stands for qai_hub.InternalError: retried."""


@dataclass
class Status:
    code: str = "SUCCESS"
    message: str | None = None

    @property
    def success(self) -> bool:
        return self.code == "SUCCESS"

    @property
    def failure(self) -> bool:
        return self.code == "FAILED"

    @property
    def finished(self) -> bool:
        return self.code in ("SUCCESS", "FAILED")


@dataclass
class Model:
    model_id: str
    name: str


@dataclass
class Job:
    job_id: str
    kind: str
    model: Model
    device: object
    status: Status = field(default_factory=Status)
    profile: dict | None = None
    outputs: dict | None = None
    hub_version: str = "aihub-2026.11"

    @property
    def url(self) -> str:
        return f"{WEB_URL}/jobs/{self.job_id}/"

    def wait(self, timeout: int | None = None) -> Status:
        return self.status

    def get_target_model(self) -> Model | None:
        return Model(f"m{self.job_id}t", self.model.name + "-compiled") if self.status.success else None

    def download_profile(self) -> dict:
        return self.profile if self.status.success else {}

    def download_output_data(self):
        return self.outputs if self.status.success else None


@dataclass(frozen=True)
class Device:
    name: str = ""
    os: str = ""


class FakeHub:
    """Records every call; `fail` maps a method name to a list of exceptions raised before it succeeds
    (or to a Status for jobs of that kind); `profile` is what profile jobs return."""

    def __init__(self, profile=PROFILE, fail=None, job_status=None, outputs=None):
        self.profile, self.fail, self.job_status = profile, dict(fail or {}), dict(job_status or {})
        self.outputs = outputs
        self.calls: list[tuple] = []
        self._n = 0

    def _maybe_fail(self, what):
        errors = self.fail.get(what)
        if errors:
            raise errors.pop(0)

    def _job(self, kind, model, device, **kw):
        self._n += 1
        status = self.job_status.get((kind, device.name), Status())
        return Job(f"j{kind[0]}{self._n:04d}", kind, model, device, status=status, **kw)

    def Device(self, name: str = "", os: str = ""):  # noqa: N802
        return Device(name, os)

    def upload_model(self, model, name=None):
        self.calls.append(("upload_model", str(model), name))
        self._maybe_fail("upload_model")
        return Model("m0001", name or "model")

    def submit_quantize_job(self, model, calibration_data, weights_dtype="int8", activations_dtype="int8", name=None,
                            options=""):
        self.calls.append(("submit_quantize_job", model.model_id, weights_dtype, activations_dtype,
                           {k: [a.shape for a in v] for k, v in calibration_data.items()}))
        self._maybe_fail("submit_quantize_job")
        return self._job("quantize", model, Device())

    def submit_compile_job(self, model, device, name=None, input_specs=None, options=""):
        self.calls.append(("submit_compile_job", model.model_id, device.name, options, input_specs))
        self._maybe_fail("submit_compile_job")
        return self._job("compile", model, device)

    def submit_inference_job(self, model, device, inputs=None, name=None, options="", profile=True):
        self.calls.append(("submit_inference_job", model.model_id, device.name, profile,
                           None if inputs is None else {k: [a.shape for a in v] for k, v in inputs.items()}))
        self._maybe_fail("submit_inference_job")
        if profile:
            return self._job("profile", model, device, profile=self.profile)
        n = len(next(iter(inputs.values())))
        outputs = self.outputs or {"output_0": [np.full((1, 4), i, np.float32) for i in range(n)]}
        return self._job("inference", model, device, outputs=outputs)

# A QNN target that runs every layer on the NPU (same summary, other placement).
PROFILE_QNN = {
    "execution_summary": PROFILE["execution_summary"],
    "execution_detail": [{**d, "type": "Conv3d" if "conv3d" in d["name"] else d["type"], "compute_unit": "NPU"}
                         for d in PROFILE["execution_detail"]],
}
# Everything on the CPU: what a target looks like when the NPU took nothing.
PROFILE_CPU = {
    "execution_summary": PROFILE["execution_summary"],
    "execution_detail": [{**d, "compute_unit": "CPU"} for d in PROFILE["execution_detail"]],
}
