"""The README's Python API example, run as the script a user would save (small input shape, ONNX only)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"


def api_example() -> str:
    section = README.read_text().split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow
def test_readme_api_example_runs(tmp_path):
    code = api_example()
    assert "input_shape=(1, 3, 4, 32, 32)" in code  # the example stays small enough to run here
    (tmp_path / "example.py").write_text(code)
    res = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "Traceback" not in res.stderr
    assert re.search(r"^onnx onnxruntime passed \S+$", res.stdout, re.M), res.stdout
    report = Path(res.stdout.strip().splitlines()[-1].removeprefix("report: "))
    assert report.is_file() and report.is_relative_to(tmp_path / "reports-api")
    assert "speedup_vs_eager" in res.stdout
