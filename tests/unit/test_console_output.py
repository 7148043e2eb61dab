"""What the console shows: our warnings once, other libraries' records in the run log (counted), tables that fit."""

from __future__ import annotations

import logging
import warnings

import pandas as pd
import pytest
from rich.console import Console

from edgebench import console as routing


@pytest.fixture(autouse=True)
def fresh_routing():
    """Each test starts without our handlers (earlier tests in this process attached them to their runs)."""
    root = logging.getLogger()

    def drop():
        for h in [h for h in root.handlers if isinstance(h, (routing.ConsoleHandler, routing.RunLogHandler))]:
            root.removeHandler(h)

    drop()
    logging.captureWarnings(False)  # pytest swaps warnings.showwarning per test: let setup() install it again
    yield
    drop()
    logging.captureWarnings(False)


def test_third_party_records_go_to_the_run_log_and_are_counted(tmp_path, capsys):
    routing.setup()
    logging.getLogger("coremltools").warning("Failed to load _MLModelProxy: no module")
    logging.getLogger("torch.utils._pytree").warning("Enum subclass ... deprecated")  # torch's own handler adopted
    warnings.warn("a library's FutureWarning", FutureWarning, stacklevel=1)
    logging.getLogger("edgebench.models.source").warning("resnet_mixed: random weights")
    logging.getLogger("edgebench.models.source").warning("resnet_mixed: random weights")  # said once
    logging.getLogger("prefect.engine").info("Finished in state Completed()")
    path = routing.log_to(tmp_path)  # what was held before the run folder existed comes first
    logging.getLogger("coremltools").warning("two\nlines")
    err = capsys.readouterr().err
    assert err.splitlines() == ["warning: resnet_mixed: random weights"]
    text = path.read_text()
    assert "Failed to load _MLModelProxy" in text and "_pytree" in text and "FutureWarning" in text
    assert "random weights" not in text and "Completed()" not in text
    assert routing.count_records(tmp_path) == 4  # a two-line record counts once
    assert routing.count_records(tmp_path / "elsewhere") == 0


def test_verbose_shows_everything(capsys):
    routing.setup(verbose=True)
    try:
        logging.getLogger("coremltools").warning("Torch version 2.14 has not been tested")
        assert "has not been tested" in capsys.readouterr().err
    finally:
        routing.set_verbose(False)
    logging.getLogger("coremltools").warning("Torch version 2.14 has not been tested")
    assert capsys.readouterr().err == ""


def _history(n_series: int, models: int = 1) -> pd.DataFrame:
    rows = []
    for i in range(n_series):
        rows.append({"model": f"model{i % models}", "format": "torchscript", "precision": "fp32", "runtime": "torchscript",
                     "device": "local", "runtime_options": "", "nights": 30, "first_night": "2026-11-01T02:00:00+00:00",
                     "last_night": "2026-11-30T02:00:00+00:00", "last_run_id": "20261130T020000Z-abcd",
                     "latest_status": "passed", "latest_p50_ms": 1274.25, "baseline_p50_ms": 1061.9,
                     "delta_p50_pct": 20.0, "trend": "▁▂▃▄▅▆▇█" * 4, "slope_pct_per_night": 0.7,
                     "verdict": "regression", "latest_reason": "a long reason " * 5})
    return pd.DataFrame(rows)


def render(table, width: int = 80) -> list[str]:
    con = Console(width=width, record=True, file=open("/dev/null", "w"))
    con.print(table)
    return con.export_text().splitlines()


def test_history_default_fits_80_columns_and_wide_has_everything():
    from edgebench.tables import history_view

    for models in (1, 2):
        lines = render(history_view(_history(4, models)), width=200)
        assert max(len(line.rstrip()) for line in lines) <= 80, "\n".join(lines)
        header = next(line for line in lines if "series" in line)
        assert header.split() == ["series", "nights", "last", "p50", "baseline", "delta", "trend", "verdict"]
        assert any("1274.2" in line and "+20.0%" in line and "regression" in line for line in lines)
    wide = "\n".join(render(history_view(_history(1), wide=True), width=400))
    assert "slope_pct_per_night" in wide and "latest_reason" in wide


def test_run_summary_columns():
    from edgebench.tables import run_summary

    df = pd.DataFrame([
        {"format": "pytorch", "precision": "fp32", "runtime": "torch", "device": "local", "status": "passed",
         "p50_ms": 459.9, "speedup_vs_eager": 1.0, "gmacs": 94.2, "pct_of_peak": 81.0, "parity": ""},
        {"format": "onnx", "precision": "fp32", "runtime": "onnxruntime", "device": "local", "status": "passed",
         "p50_ms": 55.4, "speedup_vs_eager": 8.3, "gmacs": 31.0, "pct_of_peak": 27.0, "parity": "passed"},
        {"format": "tflite", "precision": "fp32", "runtime": "litert", "device": "galaxy-s24", "status": "export_failed",
         "p50_ms": float("nan"), "speedup_vs_eager": float("nan"), "gmacs": float("nan"), "pct_of_peak": float("nan"),
         "parity": ""},
    ])  # fmt: skip
    lines = [line for line in render(run_summary(df)) if line.strip()]
    assert lines[0].split() == ["format", "precision", "runtime", "status", "p50", "ms", "speed-up", "%", "peak", "parity"]
    assert any(line.split() == ["onnx", "fp32", "onnxruntime", "passed", "55.4", "8.30x", "27", "%", "passed"]
               for line in lines)
    assert all(len(line) <= 80 for line in lines)  # a hub device's runtime label folds onto a second line
    assert any("litert @" in line and "export_failed" in line and "nan" not in line for line in lines)
    assert any(line.split() == ["galaxy-s24"] for line in lines)


def test_progress_bars_keep_each_line_once(monkeypatch, capsys):
    import sys

    from edgebench.flows import progress

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    try:
        progress.expect("export", 2)
        progress.expect("export", 1)  # a second model's exports add to the same bar
        for name in ("onnx", "tflite", "coreml"):
            progress.say(f"export resnet_mixed {name} fp32: passed")
        assert progress._bars["progress"].tasks[0].completed == 3
    finally:
        progress.finish()
    out = capsys.readouterr().out
    for name in ("onnx", "tflite", "coreml"):
        assert out.count(f"export resnet_mixed {name} fp32: passed") == 1, out
    progress.say("report done")  # after finish: plain lines again
    assert capsys.readouterr().out.count("report done") == 1


def test_history_series_show_runtime_options_only_where_they_differ():
    from edgebench.tables import history_view

    table = _history(3)
    table.loc[1, ["format", "runtime"]] = ["onnx", "onnxruntime"]
    table["runtime_options"] = ['{"xnnpack": false}', '{"graph_optimization": "all"}', ""]
    text = "\n".join(render(history_view(table), width=200))
    assert "xnnpack=False" in text and "graph_optimization" not in text  # onnx is alone in its series
