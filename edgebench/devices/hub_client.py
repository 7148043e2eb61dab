"""The Qualcomm AI Hub client boundary: token lookup, the `qai_hub.Client` wrapper, retries, and token scrubbing.

Everything edgebench asks of the hub goes through `HubClient` (a `RealHub` over qai-hub 0.56's
`qai_hub.Client`, or tests/unit/hub_fakes.FakeHub). The API token never leaves this module: every
string that goes into a row, a log line or an exception passes a `Scrubber` first.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from typing import Any, Callable, Mapping, Protocol

log = logging.getLogger(__name__)

TOKEN_ENV = "QAI_HUB_API_TOKEN"
CLIENT_INI_ENV = "QAIHUB_CLIENT_INI"  # the client's own override of ~/.qai_hub/client.ini
DEFAULT_CLIENT_INI = "~/.qai_hub/client.ini"
_AUTH_HEADER = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?token\s+)[^\s'\",}]+")
_NOT_RETRIED = ("UserError", "TimeoutError", "ValueError", "TypeError", "FileNotFoundError", "NotImplementedError")


class HubClient(Protocol):
    """The part of the qai_hub API edgebench uses; names and parameters as in qai-hub 0.56's `qai_hub.Client`
    (client.py: upload_model, submit_quantize_job, submit_compile_job, submit_inference_job)."""

    def Device(self, name: str = "", os: str = "") -> Any: ...  # noqa: N802 - mirrors qai_hub.Device
    def upload_model(self, model: str, name: str | None = None) -> Any: ...
    def submit_quantize_job(self, model: Any, calibration_data: Any, weights_dtype: str = "int8",
                            activations_dtype: str = "int8", name: str | None = None, options: str = "") -> Any: ...
    def submit_compile_job(self, model: Any, device: Any, name: str | None = None, input_specs: Any = None,
                           options: str = "") -> Any: ...
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

    def submit_quantize_job(self, model, calibration_data, weights_dtype="int8", activations_dtype="int8", name=None,
                            options=""):
        dtype = self._hub.QuantizeDtype  # an Enum: INT8, INT16, INT4
        return self._client.submit_quantize_job(model, calibration_data, weights_dtype=dtype[weights_dtype.upper()],
                                                activations_dtype=dtype[activations_dtype.upper()], name=name,
                                                options=options)

    def submit_compile_job(self, model, device, name=None, input_specs=None, options=""):
        return self._client.submit_compile_job(model, device, name=name, input_specs=input_specs, options=options)

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


class Caller:
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


def wait_job(call: Caller, job: Any, what: str, timeout_s: float | None) -> None:
    """Block until the job ends; a failed one is a HubError with the hub's reason and the job URL.

    `Job.wait` returns a JobStatus (qai_hub/client.py, class JobStatus: .success, .code, .message).
    """
    status = call(f"{what} job wait", job.wait, int(timeout_s) if timeout_s else None)
    if not getattr(status, "success", False):
        message = getattr(status, "message", None) or getattr(status, "code", "") or "failed"
        raise HubError(f"{what} job failed: {call.scrub.line(message)} ({getattr(job, 'url', '')})")
