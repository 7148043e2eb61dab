"""The real qai_hub client against a local HTTP server standing in for AI Hub (no internet)."""

import http.server
import inspect
import json
import logging
import threading

import pytest

from edgebench.config import PipelineConfig
from edgebench.devices import hub_client as aihub
from edgebench.devices.aihub import AIHubBackend, AIHubConfig
from edgebench.devices.base import Device
from edgebench.devices.hub_client import RealHub
from edgebench.pipeline import PreparedModel, RunSettings
from edgebench.records import PASSED, RUNTIME_FAILED, Artifact
from tests.unit.bench_helpers import TINY_REF

TOKEN = "qaihubSECRETtoken0123456789abcdef"


@pytest.fixture
def hub_server(monkeypatch, tmp_path):
    """A server that rejects every call: 401 for /models/ uploads, or echoes the header in a 400."""
    seen, mode = [], {"status": 401}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _reply(self):
            seen.append((self.command, self.path, self.headers.get("Authorization")))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            detail = "Invalid token." if mode["status"] == 401 else f"bad request, Authorization: {self.headers.get('Authorization')}"
            body = json.dumps({"detail": detail}).encode()
            self.send_response(mode["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = _reply

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    ini = tmp_path / "client.ini"
    ini.write_text(f"[api]\napi_token = {TOKEN}\napi_url = {url}\nweb_url = {url}\n")
    monkeypatch.delenv(aihub.TOKEN_ENV, raising=False)
    monkeypatch.setenv(aihub.CLIENT_INI_ENV, str(ini))
    yield seen, mode
    server.shutdown()


@pytest.fixture
def tflite(tmp_path):
    path = tmp_path / "m.tflite"
    path.write_bytes(b"\0\0\0\0TFL3" + b"\0" * 64)
    return Artifact(model="tiny", format="tflite", precision="fp32", status=PASSED, path=str(path))


def bench(artifact, tmp_path, retries, sleeps=None):
    """The real backend (real qai_hub.Client from the client.ini) on one device, our .tflite as it is."""
    backend = AIHubBackend()
    backend.sleep = sleeps.append if sleeps is not None else backend.sleep
    config = PipelineConfig(devices=[], aihub=AIHubConfig(retries=retries, backoff_s=0.01, inference_job=False))
    settings = RunSettings("r", "t", str(tmp_path), str(tmp_path), 1, True, True, config)
    pm = PreparedModel(TINY_REF, "", "", 0)
    jobs = backend.plan(Device("aihub", "Samsung Galaxy S24 (Family)"), [artifact], pm, config)
    return [backend.run(j, pm, settings).latency for j in jobs]


def test_bad_token_is_runtime_failed_without_retry(hub_server, tflite, tmp_path):
    seen, _ = hub_server
    sleeps = []
    rows = bench(tflite, tmp_path, 2, sleeps)
    assert rows[0].status == RUNTIME_FAILED
    assert rows[0].reason.startswith("upload: UserError: Failed to authenticate")
    assert seen == [("POST", "/api/v1/models/", f"token {TOKEN}")]  # the real client sent the token
    assert sleeps == []


def test_echoed_token_is_scrubbed(hub_server, tflite, caplog, capfd, tmp_path):
    seen, mode = hub_server
    mode["status"] = 400
    with caplog.at_level(logging.DEBUG):
        rows = bench(tflite, tmp_path, 0)
    assert rows[0].status == RUNTIME_FAILED and "bad request" in rows[0].reason
    out, err = capfd.readouterr()
    for text in (json.dumps(rows[0].to_dict()), caplog.text, out, err):
        assert TOKEN not in text


def test_real_hub_calls_match_the_client_signatures():
    import qai_hub

    for method in ("upload_model", "submit_quantize_job", "submit_compile_job", "submit_inference_job"):
        params = inspect.signature(getattr(qai_hub.Client, method)).parameters
        ours = [p for p in inspect.signature(getattr(RealHub, method)).parameters if p != "self"]
        assert set(ours) <= set(params), method
    assert qai_hub.Device("Samsung Galaxy S24 (Family)").name == "Samsung Galaxy S24 (Family)"
