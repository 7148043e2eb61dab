"""A plain `edgebench run` (not under make, no PREFECT_LOGGING_* set): only edgebench's own lines, each once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgebench.console import count_records

EDGEBENCH = Path(sys.executable).with_name("edgebench")
NOISE = ("Failed to load", "has not been tested", "_pytree", "INFO", "Finished in state", "Traceback",
         "Starting temporary server", "UserWarning", "FutureWarning", "DeprecationWarning")
# Core ML in the plan: the parent imports coremltools to ask whether its runtime can run here.
CONFIG = """formats: {onnx: [fp32], coreml: [fp32]}
runtimes: [torch, onnxruntime, coreml, coreml-mil]
"""


@pytest.mark.slow
def test_plain_run_prints_our_lines_once(tmp_path):
    out, config = tmp_path / "out", tmp_path / "pipeline.yaml"
    config.write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_LOGGING")}
    res = subprocess.run([str(EDGEBENCH), "run", "--input-shape", "1,3,4,32,32", "--quick", "--config", str(config),
                          "--out", str(out)], capture_output=True, text=True, timeout=1200, env=env)  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    for noise in NOISE:
        assert noise not in res.stdout and noise not in res.stderr, noise
    err = [line for line in res.stderr.splitlines() if line.strip()]
    assert all(line.startswith("warning: ") for line in err) and len(err) == len(set(err)), res.stderr
    steps = [line.split("] ", 1)[1] for line in res.stdout.splitlines() if line.startswith("[")]
    assert len(steps) == len(set(steps)), res.stdout
    for step in ("export resnet_mixed onnx fp32", "export resnet_mixed coreml fp32", "parity resnet_mixed onnx fp32",
                 "bench resnet_mixed pytorch fp32", "report "):
        assert any(s.startswith(step) for s in steps), (step, res.stdout)
    lines = res.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["format", "precision"])
    assert "speed-up" in lines[header] and "parity" in lines[header]
    assert lines[-1].startswith("report: ") and lines[-1].endswith("report.html")
    run_dir = Path(lines[-1].removeprefix("report: ")).parent
    info = json.loads((run_dir / "run.json").read_text())
    warnings_log = run_dir / "logs" / "warnings.log"
    assert "Failed to load _MLModelProxy" in warnings_log.read_text()  # the noise went to the run's log
    assert info["third_party_warnings"] == count_records(run_dir) > 0
    assert f"{info['third_party_warnings']} from other libraries" in (run_dir / "report.html").read_text()
