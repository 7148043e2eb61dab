"""`aihub:<device name>`: Qualcomm AI Hub devices, through the qai-hub client (devices/hub_client.py).

Per (source artifact, precision, target, device): upload the source model once (our TorchScript or
ONNX export), a quantize job for int8 (w8a8) and w8a16 on the calibration set the local exports use
(models.calibration; once per artifact, precision and set), a compile job to the hub's target (`--target_runtime qnn_dlc` ...), a profile job
(estimated inference time, memory ranges, layers per compute unit) and an inference job on the run's
clips, whose outputs are judged by the same parity verdict as a local runtime's. Artifacts in
`aihub.as_is` (our own .tflite) are profiled without a compile job.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import Field, field_validator

from edgebench.benchmarks.stats import summarize
from edgebench.config import Precision, Strict, base_precision
from edgebench.devices.base import Backend, BenchJob, Device, Measured, skipped
from edgebench.devices.hub_client import Caller, HubError, Scrubber, connect, find_token, wait_job
from edgebench.models.calibration import make_calibration
from edgebench.models.inputs import load_inputs
from edgebench.parity.outputs import load_outputs, outputs_key, save_outputs
from edgebench.parity.verdict import judged
from edgebench.records import PASSED, RUNTIME_FAILED, SKIPPED, Artifact, LatencyResult, ModelRef, ParityResult
from edgebench.runs import PreparedModel

log = logging.getLogger(__name__)


# Qualcomm AI Hub compile targets (`--target_runtime`), as qai-hub 0.56 names them.
HubTarget = Literal["qnn_dlc", "qnn_context_binary", "onnx", "tflite", "precompiled_qnn_onnx"]


class AIHubConfig(Strict):
    """Hub devices, what is compiled for them and how (docs/benchmarks.md)."""

    devices: list[str] = []
    source: Literal["onnx", "torchscript"] = "onnx"  # the exported artifact the hub compiles (and quantizes: ONNX only)
    targets: list[HubTarget] = ["qnn_dlc", "qnn_context_binary", "onnx", "tflite"]
    device_targets: dict[str, list[HubTarget]] = {}  # device name -> its own targets instead of `targets`
    precisions: list[Precision] = ["fp32"]  # int8 (w8a8) and w8a16 go through a quantize job first
    as_is: list[str] = ["tflite"]  # our own artifacts of these formats, profiled without a compile job
    compile_options: str = ""  # appended to every compile job's options, e.g. "--compute_unit npu"
    inference_job: bool = True
    retries: int = Field(3, ge=0)
    backoff_s: float = 2.0
    wait_timeout_s: float = Field(3600.0, gt=0)  # per hub job: jobs queue for a device, often for minutes

    @field_validator("as_is")
    @classmethod
    def _as_is_is_not_the_source(cls, v: list[str], info) -> list[str]:
        if info.data.get("source") in v:  # both would give the row (source, precision, target = source format)
            raise ValueError(f"'{info.data['source']}' is the compile source; it cannot also be profiled as it is")
        return v

MIB = 1024 * 1024
# Our precision -> (weights, activations) of a quantize job (qai_hub.QuantizeDtype member names, lower case).
QUANTIZE_DTYPES = {"int8": ("int8", "int8"), "w8a16": ("int8", "int16")}
COMPUTE_UNITS = ("NPU", "GPU", "CPU")  # what execution_detail[].compute_unit holds (ComputeUnit enum, prefix cut)


# ---------------------------------------------------------------- artifacts and data


def _onnx_external_files(path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    found = set()
    for t in model.graph.initializer:
        if t.data_location == onnx.TensorProto.EXTERNAL:
            found.update(e.value for e in t.external_data if e.key == "location")
    return sorted(found)


def upload_path(artifact: Artifact, staging: Path) -> Path:
    """The file or folder to upload: ONNX with external weights becomes a folder `<name>.onnx/`
    holding exactly one .onnx and one .data file, the layout the client accepts."""
    path = Path(artifact.path)
    if artifact.format != "onnx" or path.is_dir() or not _onnx_external_files(path):
        return path
    import onnx

    folder = staging / path.name  # "<stem>.onnx", a folder
    folder.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(path))  # reads the external data from beside the file
    onnx.save(model, str(folder / path.name), save_as_external_data=True, all_tensors_to_one_file=True,
              location=f"{path.stem}.data")
    return folder


def hub_inputs(artifact: Artifact, ref: ModelRef, inputs: Mapping[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """{artifact input name: [one array per clip]}, the client's DatasetEntries, names from the artifact."""
    names = [t.name for t in (artifact.inputs or ref.inputs)]
    arrays = [inputs[t.name] for t in ref.inputs]
    return {name: [np.ascontiguousarray(a[i]) for i in range(len(a))] for name, a in zip(names, arrays)}


def input_specs(artifact: Artifact, ref: ModelRef) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """TorchScript needs `input_specs` ({name: (shape, dtype)}, submit_compile_job's docstring); ONNX carries its own."""
    if artifact.format != "torchscript":
        return None
    return {t.name: (tuple(t.shape), t.dtype) for t in ref.inputs}


def stack_outputs(outputs: Mapping[str, list], reference: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Hub outputs {name: [per clip]} -> {reference name: clips x shape}; by name, else by position."""
    stacked = {k: np.stack([np.asarray(v) for v in vals]) for k, vals in outputs.items()}
    if set(stacked) == set(reference):
        return stacked
    if len(stacked) != len(reference):
        raise HubError(f"device outputs {sorted(stacked)} do not match reference outputs {sorted(reference)}")
    return dict(zip(reference, stacked.values()))


# ---------------------------------------------------------------- profile -> row


def apply_profile(row: LatencyResult, profile: Mapping, batch: int, flops: float | None, noisy_iqr_ratio: float) -> None:
    """Fill a row from `download_profile()`: times there are in microseconds, memory in bytes.

    With per-iteration times (`all_inference_times`, profile format >= 1.2) the stats are ours over
    every iteration; otherwise p50 is AI Hub's `estimated_inference_time` and runs stays 0.
    """
    summary = profile.get("execution_summary") or {}
    detail = profile.get("execution_detail") or []
    estimated = summary.get("estimated_inference_time")
    if estimated is None:
        raise HubError("profile has no estimated_inference_time")
    row.extra["estimated_inference_ms"] = estimated / 1e3
    times = [t for t in (summary.get("all_inference_times") or []) if t is not None]
    if times:
        stats = summarize([t / 1e6 for t in times], batch=batch, flops=flops, noisy_iqr_ratio=noisy_iqr_ratio)
        for key, value in stats.items():
            setattr(row, key, value)
    else:
        p50 = estimated / 1e6
        row.p50_ms = p50 * 1e3
        row.fps = batch / p50 if p50 > 0 else None
        row.gflops = flops / p50 / 1e9 if flops and p50 > 0 else None
    if summary.get("first_load_time") is not None:
        row.load_ms = summary["first_load_time"] / 1e3
    if summary.get("warm_load_time") is not None:
        row.extra["warm_load_ms"] = summary["warm_load_time"] / 1e3
    peak_range = summary.get("inference_memory_peak_range")
    if peak_range:
        row.extra["inference_peak_memory_range_mb"] = [peak_range[0] / MIB, peak_range[1] / MIB]
        row.peak_rss_mb = peak_range[1] / MIB
    elif summary.get("estimated_inference_peak_memory") is not None:
        row.peak_rss_mb = summary["estimated_inference_peak_memory"] / MIB
    units = Counter(layer.get("compute_unit", "UNKNOWN") for layer in detail)
    row.extra["layers_per_compute_unit"] = dict(units.most_common())
    row.extra["layers"] = len(detail)


def cpu_fallback(row: LatencyResult) -> str:
    """"k of n layers fell back to the CPU" when the device ran layers on its CPU, else ""."""
    units = row.extra.get("layers_per_compute_unit") or {}
    cpu, total = units.get("CPU", 0), sum(units.values())
    if not cpu:
        return ""
    row.extra["cpu_fallback_layers"] = cpu
    return "the whole model fell back to the CPU" if cpu == total else f"{cpu} of {total} layers fell back to the CPU"


def judge_outputs(job: BenchJob, outputs: Mapping[str, list], pm: PreparedModel, tolerance, hub_version: str,
                  outputs_dir: Path) -> ParityResult:
    """The device's outputs kept in the run folder, then judged by the parity verdict, as this device's row."""
    a = job.artifact
    reference = load_inputs(Path(pm.reference_path))
    result = ParityResult(a.model, a.format, job.row_precision, job.runtime, SKIPPED, device=job.device,
                          clips=len(next(iter(reference.values()))), runtime_version=hub_version,
                          runtime_options=dict(job.options), reference_path=pm.reference_path)
    stacked = stack_outputs(outputs, reference)
    key = outputs_key(a.sha256 or a.path, job.runtime, {**job.options, "precision": job.row_precision},
                      load_inputs(Path(pm.inputs_path)), device=job.device)
    meta = {"model": a.model, "format": a.format, "precision": job.row_precision, "runtime": job.runtime,
            "device": job.device, "runtime_version": hub_version, "runtime_options": dict(job.options)}
    result.outputs_path = str(save_outputs(outputs_dir, key, stacked, meta))
    if tolerance is None:
        result.reason = f"parity.tolerances has no entry for {job.row_precision}"
        return result
    return judged(result, load_outputs(result.outputs_path)[0], reference, tolerance)


# ---------------------------------------------------------------- the backend


class AIHubBackend(Backend):
    """Compile, quantize, profile and run on Qualcomm AI Hub devices. `connect` and `sleep` are replaced in tests."""

    kind = "aihub"
    settings_model = AIHubConfig
    report_columns = {"layers_npu": "int", "layers_gpu": "int", "layers_cpu": "int",  # layers per compute unit
                      "mem_peak_low_mb": "float", "mem_peak_high_mb": "float", "job_url": "str"}

    def __init__(self):
        self.connect = connect
        self.sleep = time.sleep
        self._models: dict[tuple, Any] = {}  # (artifact sha256[, precision]) -> uploaded / quantized hub Model
        self._lock = threading.Lock()

    def configured(self, config):
        return [Device(self.kind, name) for name in config.aihub.devices]

    def report_cells(self, row: LatencyResult) -> dict[str, Any]:
        """Layers per compute unit and the memory range of the profile, and the profile job's URL."""
        units = row.extra.get("layers_per_compute_unit")
        low, high = row.extra.get("inference_peak_memory_range_mb") or (None, None)
        return {**({f"layers_{u.lower()}": units.get(u, 0) for u in COMPUTE_UNITS} if units else {}),
                "mem_peak_low_mb": low, "mem_peak_high_mb": high,
                "job_url": (row.extra.get("jobs") or {}).get("profile", "")}

    # -------------------------------------------------------- plan

    def plan(self, device, artifacts, pm, config):
        cfg = config.aihub
        client, why_not = self.connect()
        jobs = []
        for a in artifacts:
            if a.format in cfg.as_is:
                jobs.append(BenchJob(a, a.format, device.label, options={"compile": "none: our own file"}))
            if a.format != cfg.source:
                continue
            for precision in cfg.precisions if a.precision == "fp32" else [a.precision]:
                for target in cfg.device_targets.get(device.name, cfg.targets):
                    options = {"target": target, "compile_options": f"--target_runtime {target} {cfg.compile_options}".strip()}
                    jobs.append(self._quantized(BenchJob(a, target, device.label, precision, options)))
        if not jobs:
            have = ", ".join(sorted({a.format for a in artifacts})) or "none"
            jobs.append(BenchJob(Artifact(pm.ref.name, cfg.source, "fp32", SKIPPED), "", device.label,
                                 why_not=f"no {cfg.source} artifact to compile (aihub.source); exported: {have}"))
        if client is None:  # said now: no job will reach the hub
            jobs = [replace(j, why_not=j.why_not or why_not) for j in jobs]
        return jobs

    @staticmethod
    def _quantized(job: BenchJob) -> BenchJob:
        """A job whose precision needs a quantize job first: its dtypes in the options, or why it cannot have one."""
        if job.row_precision == job.artifact.precision:
            return job
        if job.row_precision not in QUANTIZE_DTYPES:
            return replace(job, why_not=f"AI Hub quantize jobs make {', '.join(QUANTIZE_DTYPES)}, not {job.row_precision}")
        if job.artifact.format != "onnx":
            return replace(job, why_not="AI Hub quantize jobs take ONNX (set aihub.source: onnx)")
        weights, activations = QUANTIZE_DTYPES[job.row_precision]
        return replace(job, options={**job.options, "quantize": f"weights {weights}, activations {activations}"})

    # -------------------------------------------------------- run

    def run(self, job, pm, settings):
        client, why_not = self.connect()
        if client is None:
            return skipped(job, why_not)
        cfg = settings.config.aihub
        scrub = Scrubber(find_token())
        call = Caller(scrub, cfg.retries, cfg.backoff_s, self.sleep)
        a = job.artifact
        row = LatencyResult(a.model, a.format, job.row_precision, job.runtime, job.device, SKIPPED,
                            runtime_options=dict(job.options))
        parity = None
        try:
            parity = self._measure(client, call, job, pm, settings, row)
        except HubError as e:
            row.status, row.reason = RUNTIME_FAILED, str(e)
        except Exception as e:  # noqa: BLE001 - a malformed response must not stop other jobs
            row.status, row.reason = RUNTIME_FAILED, scrub.error(e)
        row.reason, row.extra = scrub(row.reason), scrub.deep(row.extra)  # nothing we return carries the token
        if parity is not None:
            parity.reason = scrub(parity.reason)
        if row.status == PASSED:
            log.info("AI Hub %s/%s/%s on %s: p50 %.2f ms (%s)", a.model, a.format, job.runtime, job.device, row.p50_ms,
                     row.extra.get("jobs", {}).get("profile", ""))
        else:
            log.warning("AI Hub %s/%s/%s on %s: %s", a.model, a.format, job.runtime, job.device, row.reason)
        return Measured(row, parity)

    def _measure(self, client, call: Caller, job: BenchJob, pm, settings, row: LatencyResult) -> ParityResult | None:
        cfg = settings.config.aihub
        timeout_s = cfg.wait_timeout_s
        jobs: dict[str, str] = {}
        row.extra["jobs"] = jobs
        name = f"edgebench {job.artifact.model} {job.artifact.format} {job.row_precision} {job.runtime}"
        device = client.Device(job.device.partition(":")[2])
        model = self._uploaded(client, call, job.artifact)
        if "quantize" in job.options:
            model = self._quantize(client, call, model, job, pm, settings, jobs, row)
        if "target" in job.options:
            cjob = call("compile submit", client.submit_compile_job, model, device, name=name,
                        input_specs=input_specs(job.artifact, pm.ref), options=job.options["compile_options"])
            jobs["compile"] = cjob.url
            wait_job(call, cjob, "compile", timeout_s)
            model = call("compile target model", cjob.get_target_model)
            if model is None:
                raise HubError(f"compile job produced no target model ({cjob.url})")
        pjob = call("profile submit", client.submit_inference_job, model, device, inputs=None, name=name, profile=True)
        jobs["profile"] = pjob.url
        hub_version = str(getattr(pjob, "hub_version", "") or "")
        row.runtime_version = hub_version
        wait_job(call, pjob, "profile", timeout_s)
        profile = call("profile download", pjob.download_profile)
        batch = pm.ref.inputs[0].shape[0] if pm.ref.inputs and pm.ref.inputs[0].shape else 1
        apply_profile(row, profile, batch, pm.flops, settings.config.benchmark.noisy_iqr_ratio)
        row.status, row.reason = PASSED, cpu_fallback(row)
        if not cfg.inference_job:
            return None
        return self._on_device_parity(client, call, model, device, name, job, pm, settings, jobs, hub_version)

    def _on_device_parity(self, client, call, model, device, name, job, pm, settings, jobs, hub_version) -> ParityResult:
        """The inference job on the run's clips, judged like a local runtime; its failure is the parity row's."""
        a = job.artifact
        try:
            inputs = load_inputs(Path(pm.inputs_path))
            ijob = call("inference submit", client.submit_inference_job, model, device,
                        inputs=hub_inputs(a, pm.ref, inputs), name=name, profile=False)
            jobs["inference"] = ijob.url
            wait_job(call, ijob, "inference", settings.config.aihub.wait_timeout_s)
            outputs = call("inference download", ijob.download_output_data)
            if not outputs:
                raise HubError(f"inference job returned no outputs ({ijob.url})")
            tolerance = settings.config.parity.tolerances.get(base_precision(job.row_precision))
            return judge_outputs(job, outputs, pm, tolerance, hub_version, settings.run_dir / "outputs")
        except HubError as e:
            return ParityResult(a.model, a.format, job.row_precision, job.runtime, RUNTIME_FAILED, reason=str(e),
                                device=job.device, runtime_version=hub_version, runtime_options=dict(job.options))

    def _uploaded(self, client, call: Caller, artifact: Artifact):
        """Upload once per artifact: every target and device compiles the same hub Model."""
        key = (artifact.sha256 or artifact.path,)
        with self._lock:
            if key not in self._models:
                with tempfile.TemporaryDirectory(prefix="edgebench-hub-") as staging:
                    path = str(upload_path(artifact, Path(staging)))
                    self._models[key] = call("upload", client.upload_model, path,
                                             name=f"{artifact.model}-{artifact.format}-{artifact.precision}")
            return self._models[key]

    def _quantize(self, client, call: Caller, model, job: BenchJob, pm, settings, jobs: dict, row: LatencyResult):
        """A quantize job once per (artifact, precision, calibration set): a QDQ ONNX model every target compiles from."""
        clips = make_calibration(pm.ref, settings.config.calibration, Path(settings.cache_dir))
        row.extra["calibration"] = clips.label  # the same set the local int8 / w8a16 exports calibrate on
        key = (job.artifact.sha256 or job.artifact.path, job.row_precision, clips.sha256)
        with self._lock:
            if key not in self._models:
                weights, activations = QUANTIZE_DTYPES[job.row_precision]
                per_clip = clips.load(pm.ref)
                calibration = hub_inputs(job.artifact, pm.ref, {t.name: np.stack([c[t.name] for c in per_clip])
                                                                for t in pm.ref.inputs})
                qjob = call("quantize submit", client.submit_quantize_job, model, calibration, weights_dtype=weights,
                            activations_dtype=activations, name=f"edgebench {job.artifact.model} {job.row_precision}")
                wait_job(call, qjob, "quantize", settings.config.aihub.wait_timeout_s)
                quantized = call("quantize target model", qjob.get_target_model)
                if quantized is None:
                    raise HubError(f"quantize job produced no model ({qjob.url})")
                self._models[key] = (quantized, qjob.url)
            quantized, url = self._models[key]
        jobs["quantize"] = url
        return quantized
