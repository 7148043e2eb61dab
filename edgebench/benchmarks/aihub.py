"""Qualcomm AI Hub backend: profile TFLite and ONNX artifacts on hosted devices through the `qai_hub` client.

Per artifact: upload once. Per device ("aihub:<device name>"): a compile job when the format needs
one (ONNX -> `--target_runtime onnx` by default; TFLite is profiled as it is), a profile job
(`submit_inference_job(profile=True)`, random inputs), and optionally an inference job on the run's
input clips whose outputs go through `edgebench.parity.metrics.compare_outputs`.

The client enters at one boundary, `HubClient` (the wrapped `qai_hub.Client`, or a fake in tests).
No client or no API token -> `skipped` rows with the reason. API errors are retried with
exponential backoff, then the row is `runtime_failed` with the reason. The API token never leaves
this module: every string that goes into a row, a log line or an exception is scrubbed of it.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from edgebench.benchmarks.devices import AIHUB, parse_device
from edgebench.benchmarks.stats import DEFAULT_NOISY_IQR_RATIO, summarize
from edgebench.config import AIHubConfig
from edgebench.records import PASSED, RUNTIME_FAILED, SKIPPED, Artifact, LatencyResult, ModelRef

log = logging.getLogger(__name__)

TOKEN_ENV = "QAI_HUB_API_TOKEN"
CLIENT_INI_ENV = "QAIHUB_CLIENT_INI"  # the client's own override of ~/.qai_hub/client.ini
DEFAULT_CLIENT_INI = "~/.qai_hub/client.ini"
# Artifact formats the backend takes, and the compile options each needs (None: profile as is).
DEFAULT_COMPILE_OPTIONS: dict[str, str | None] = {"tflite": None, "onnx": "--target_runtime onnx"}
# What executes the model on the device, by compile target (or by format when not compiled).
RUNTIME_BY_TARGET = {
    "tflite": "litert", "onnx": "onnxruntime", "precompiled_qnn_onnx": "onnxruntime-qnn",
    "qnn_context_binary": "qnn", "qnn_dlc": "qnn", "qnn_lib_aarch64_android": "qnn",
}
MIB = 1024 * 1024
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?token\s+)[^\s'\",}]+")
_NOT_RETRIED = ("UserError", "TimeoutError", "ValueError", "TypeError", "FileNotFoundError", "NotImplementedError")


class HubClient(Protocol):
    """The part of the qai_hub API this backend uses (signatures as in qai-hub 0.56)."""

    def Device(self, name: str = "", os: str = "") -> Any: ...  # noqa: N802 - mirrors qai_hub.Device
    def upload_model(self, model: str, name: str | None = None) -> Any: ...
    def submit_compile_job(self, model: Any, device: Any, name: str | None = None, options: str = "") -> Any: ...
    def submit_inference_job(self, model: Any, device: Any, inputs: Any = None, name: str | None = None,
                             options: str = "", profile: bool = True) -> Any: ...


class RealHub:
    """HubClient over a real `qai_hub.Client` built from a token (never stored in anything we return)."""

    def __init__(self, qai_hub: Any, client: Any):
        self._hub, self._client = qai_hub, client

    def Device(self, name: str = "", os: str = "") -> Any:  # noqa: N802
        return self._hub.Device(name, os)

    def upload_model(self, model, name=None):
        return self._client.upload_model(model, name=name)

    def submit_compile_job(self, model, device, name=None, options=""):
        return self._client.submit_compile_job(model, device, name=name, options=options)

    def submit_inference_job(self, model, device, inputs=None, name=None, options="", profile=True):
        return self._client.submit_inference_job(model, device, inputs=inputs, name=name, options=options, profile=profile)


class HubError(Exception):
    """A hub step that failed for good (after retries): its message is scrubbed and one line."""


# ---------------------------------------------------------------- token and client


def _client_ini() -> configparser.ConfigParser:
    cp = configparser.ConfigParser()
    try:
        cp.read(os.path.expanduser(os.environ.get(CLIENT_INI_ENV) or DEFAULT_CLIENT_INI))
    except (configparser.Error, OSError):
        pass
    return cp


def find_token() -> str | None:
    """$QAI_HUB_API_TOKEN, else api_token in the client's config file ($QAIHUB_CLIENT_INI or ~/.qai_hub/client.ini)."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if token:
        return token
    return _client_ini().get("api", "api_token", fallback="").strip() or None


def connect() -> tuple[HubClient | None, str]:
    """(client, "") or (None, why not): the client is not installed, or there is no API token."""
    try:
        import qai_hub
    except ImportError:
        return None, "qai-hub client not installed (pip install qai-hub)"
    token = find_token()
    if not token:
        return None, (f"no AI Hub API token: set {TOKEN_ENV} or run `qai-hub configure --api_token <token>` "
                      f"(writes {DEFAULT_CLIENT_INI})")
    ini = _client_ini()
    urls = {k: ini.get("api", k) for k in ("api_url", "web_url") if ini.has_option("api", k)}
    config = qai_hub.ClientConfig(api_token=token, verbose=False, **urls)
    return RealHub(qai_hub, qai_hub.Client(config=config)), ""


class Scrubber:
    """Replaces every secret in a string by '***'; also flattens the client's boxed messages to one line."""

    def __init__(self, *secrets: str | None):
        self.secrets = [s for s in secrets if s]

    def __call__(self, text: Any) -> str:
        s = str(text)
        for secret in self.secrets:
            s = s.replace(secret, "***")
        return _AUTH_HEADER.sub(r"\1***", s)  # any token in an echoed Authorization header, ours or not

    def line(self, text: Any, limit: int = 400) -> str:
        s = re.sub(r"[┌┐└┘─│|]+", " ", self(text))
        s = " ".join(s.split())
        return s if len(s) <= limit else s[: limit - 3] + "..."

    def error(self, e: BaseException) -> str:
        msg = self.line(e)
        return f"{type(e).__name__}: {msg}" if msg else type(e).__name__

    def deep(self, value: Any) -> Any:
        """Scrub every string inside nested dicts/lists."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, Mapping):
            return {self(k) if isinstance(k, str) else k: self.deep(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.deep(v) for v in value)
        return value


# ---------------------------------------------------------------- retries


class _Caller:
    """Calls the hub with retries and exponential backoff; raises HubError with a scrubbed reason."""

    def __init__(self, scrub: Scrubber, retries: int, backoff_s: float, sleep: Callable[[float], None]):
        self.scrub, self.retries, self.backoff_s, self.sleep = scrub, retries, backoff_s, sleep

    def __call__(self, what: str, fn: Callable, *args, **kwargs) -> Any:
        for attempt in range(self.retries + 1):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - every client error becomes a reason
                reason = self.scrub.error(e)
                names = {c.__name__ for c in type(e).__mro__}
                if names & set(_NOT_RETRIED) or attempt == self.retries:
                    tries = f" (after {attempt + 1} attempts)" if attempt else ""
                    raise HubError(f"{what}: {reason}{tries}") from None
                delay = self.backoff_s * 2**attempt
                log.warning("AI Hub %s failed (%s); retry %d/%d in %.1f s", what, reason, attempt + 1, self.retries, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")


def _wait(call: _Caller, job: Any, what: str, timeout_s: float | None) -> None:
    status = call(f"{what} job wait", job.wait, int(timeout_s) if timeout_s else None)
    if not getattr(status, "success", False):
        message = getattr(status, "message", None) or getattr(status, "code", "") or "failed"
        raise HubError(f"{what} job failed: {call.scrub.line(message)} ({getattr(job, 'url', '')})")


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


def stack_outputs(outputs: Mapping[str, list], reference: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Hub outputs {name: [per clip]} -> {reference name: clips x shape}; by name, else by position."""
    stacked = {k: np.stack([np.asarray(v) for v in vals]) for k, vals in outputs.items()}
    if set(stacked) == set(reference):
        return stacked
    if len(stacked) != len(reference):
        raise HubError(f"device outputs {sorted(stacked)} do not match reference outputs {sorted(reference)}")
    return dict(zip(reference, stacked.values()))


def _plain(value: Any) -> Any:
    if is_dataclass(value):
        return asdict(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return value


def compare_on_device(reference: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray]) -> Any:
    """The parity metrics of device outputs, through edgebench.parity.metrics.compare_outputs."""
    try:
        from edgebench.parity.metrics import compare_outputs
    except ImportError:
        return {"status": SKIPPED, "reason": "edgebench.parity.metrics.compare_outputs is not available"}
    return _plain(compare_outputs(dict(reference), dict(outputs)))


# ---------------------------------------------------------------- profile -> row


def target_runtime(fmt: str, compile_options: str | None) -> str:
    m = re.search(r"--target_runtime[ =](\S+)", compile_options or "")
    target = m.group(1) if m else fmt
    return RUNTIME_BY_TARGET.get(target, target)


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


def _bench_device(
    hub: HubClient, call: _Caller, uploaded: Any, artifact: Artifact, ref: ModelRef, row: LatencyResult,
    device_name: str, compile_options: str | None, profile_options: str, cfg: AIHubConfig,
    inputs: Mapping[str, np.ndarray] | None, reference: Mapping[str, np.ndarray] | None,
    flops: float | None, noisy_iqr_ratio: float, wait_timeout_s: float | None,
) -> None:
    jobs: dict[str, str] = {}
    row.extra["jobs"] = jobs
    device = hub.Device(device_name)
    name = f"edgebench {artifact.model} {artifact.format} {artifact.precision}"
    target = uploaded
    if compile_options is not None:
        cjob = call("compile submit", hub.submit_compile_job, uploaded, device, name=name, options=compile_options)
        jobs["compile"] = cjob.url
        _wait(call, cjob, "compile", wait_timeout_s)
        target = call("compile target model", cjob.get_target_model)
        if target is None:
            raise HubError(f"compile job produced no target model ({cjob.url})")
    pjob = call("profile submit", hub.submit_inference_job, target, device, inputs=None, name=name,
                options=profile_options, profile=True)
    jobs["profile"] = pjob.url
    row.extra["hub_version"] = str(getattr(pjob, "hub_version", "") or "")
    _wait(call, pjob, "profile", wait_timeout_s)
    profile = call("profile download", pjob.download_profile)
    batch = ref.inputs[0].shape[0] if ref.inputs and ref.inputs[0].shape else 1
    apply_profile(row, profile, batch, flops, noisy_iqr_ratio)
    row.status = PASSED
    if not (cfg.inference_job and inputs):
        return
    # On-device outputs: a failure here is recorded, the measured latency stays.
    try:
        ijob = call("inference submit", hub.submit_inference_job, target, device,
                    inputs=hub_inputs(artifact, ref, inputs), name=name, options="", profile=False)
        jobs["inference"] = ijob.url
        _wait(call, ijob, "inference", wait_timeout_s)
        outputs = call("inference download", ijob.download_output_data)
        if not outputs:
            raise HubError(f"inference job returned no outputs ({ijob.url})")
        if reference is None:
            row.extra["parity"] = {"status": SKIPPED, "reason": "no reference outputs given"}
        else:
            row.extra["parity"] = compare_on_device(reference, stack_outputs(outputs, reference))
    except HubError as e:
        row.extra["parity"] = {"status": RUNTIME_FAILED, "reason": str(e)}


def _load_npz(path: str | Path | None) -> dict[str, np.ndarray] | None:
    if not path:
        return None
    with np.load(path) as data:
        return {k: data[k] for k in data.files}


def bench_aihub(
    artifacts: list[Artifact],
    devices: list[str],
    ref: ModelRef,
    inputs_path: str | Path | None = None,
    reference_path: str | Path | None = None,
    *,
    cfg: AIHubConfig | None = None,
    flops: float | None = None,
    noisy_iqr_ratio: float = DEFAULT_NOISY_IQR_RATIO,
    client: HubClient | None = None,
    compile_options: Mapping[str, str | None] | None = None,
    profile_options: str = "",
    wait_timeout_s: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> list[LatencyResult]:
    """One LatencyResult per (artifact, AI Hub device); never raises for hub trouble.

    `devices`: "aihub:<name>" or bare device names. `inputs_path`/`reference_path`: npz files of
    {input name: clips x input shape} and {output name: clips x output shape}. `client`: inject a
    HubClient (tests); default: the real client from the token, or skipped rows when there is none.
    `compile_options`: format -> compile options (None: profile as is); formats not in it are skipped.
    """
    cfg = cfg or AIHubConfig()
    compile_options = dict(DEFAULT_COMPILE_OPTIONS if compile_options is None else compile_options)
    names = [parse_device(d).name if d.startswith(f"{AIHUB}:") else d.strip() for d in devices]
    scrub = Scrubber(find_token())
    why_not = ""
    if client is None:
        client, why_not = connect()
    call = _Caller(scrub, cfg.retries, cfg.backoff_s, sleep)
    inputs = _load_npz(inputs_path)
    reference = _load_npz(reference_path)
    rows: list[LatencyResult] = []
    for artifact in artifacts:
        fmt_options = compile_options.get(artifact.format)
        runtime = target_runtime(artifact.format, fmt_options)
        art_rows = [
            LatencyResult(model=artifact.model, format=artifact.format, precision=artifact.precision,
                          runtime=runtime, device=f"{AIHUB}:{n}", status=SKIPPED,
                          runtime_options={"compile_options": fmt_options or "", "profile_options": profile_options})
            for n in names
        ]
        rows += art_rows
        if artifact.format not in compile_options:
            skip = f"the AI Hub backend takes {', '.join(sorted(compile_options))} artifacts, not {artifact.format}"
        elif not artifact.ok:
            skip = f"no artifact ({artifact.status})"
        elif client is None:
            skip = why_not
        else:
            skip = ""
        if skip:
            for r in art_rows:
                r.reason = skip
            continue
        try:
            with tempfile.TemporaryDirectory(prefix="edgebench-hub-") as staging:
                uploaded = call("upload", client.upload_model, str(upload_path(artifact, Path(staging))),
                                name=f"{artifact.model}-{artifact.format}-{artifact.precision}")
        except HubError as e:
            _fail_all(art_rows, str(e))
            continue
        except Exception as e:  # noqa: BLE001 - staging errors (unreadable ONNX, ...)
            _fail_all(art_rows, f"upload: {scrub.error(e)}")
            continue
        for r, device_name in zip(art_rows, names):
            try:
                _bench_device(client, call, uploaded, artifact, ref, r, device_name, fmt_options, profile_options,
                              cfg, inputs, reference, flops, noisy_iqr_ratio, wait_timeout_s)
            except HubError as e:
                r.status, r.reason = RUNTIME_FAILED, str(e)
            except Exception as e:  # noqa: BLE001 - a malformed response must not stop other devices
                r.status, r.reason = RUNTIME_FAILED, scrub.error(e)
            if r.status != PASSED:
                log.warning("AI Hub %s/%s on %s: %s", artifact.model, artifact.format, r.device, r.reason)
            else:
                log.info("AI Hub %s/%s on %s: p50 %.2f ms (%s)", artifact.model, artifact.format, r.device,
                         r.p50_ms, r.extra.get("jobs", {}).get("profile", ""))
    for r in rows:  # belt and braces: nothing we return carries the token
        r.reason = scrub(r.reason)
        r.extra = scrub.deep(r.extra)
        r.runtime_options = scrub.deep(r.runtime_options)
    return rows


def _fail_all(rows: list[LatencyResult], reason: str) -> None:
    for r in rows:
        r.status, r.reason = RUNTIME_FAILED, reason
    log.warning("AI Hub: %s", reason)
