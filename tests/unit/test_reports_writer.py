"""write_run_reports: the run folder, atomic CSV, run.json, latest link, rebuild, history table, escaping."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from edgebench.config import HistoryConfig
from edgebench.errors import UserError
from edgebench.records import EXPORT_FAILED
from edgebench.reports.history import HistoryStore
from edgebench.reports.rows import COLUMNS, flatten
from edgebench.reports.writer import (
    history_table,
    read_results_csv,
    rebuild_report,
    update_latest,
    write_csv_atomic,
    write_run_reports,
)
from tests.synthetic_runs import SERIES_P50, synthetic_run

TS = ("torchscript", "fp32", "torchscript")
EVIL = "<script>alert('pwned')</script>"


def seed_history(out: Path, nights: int, last_slow: float = 0.0) -> None:
    """Past nights straight into the store (fast); the torchscript series +-1 %."""
    quiet = [0.004, -0.006, 0.01, -0.002, 0.0, 0.007, -0.01, 0.003, -0.004, 0.002]
    with HistoryStore.open(out) as store:
        for n in range(nights):
            store.write_run(flatten(synthetic_run(n, p50={TS: SERIES_P50[TS] * (1 + quiet[n % 10])})))


def test_run_folder_files_and_latest(tmp_path):
    seed_history(tmp_path, 9)
    run = synthetic_run(9, p50={TS: SERIES_P50[TS] * 1.2}, out_dir=tmp_path / "work")
    paths = write_run_reports(run, tmp_path, HistoryConfig())
    assert paths.run_dir == tmp_path / "runs" / run.run_id
    for p in (paths.results_csv, paths.run_json, paths.report_html):
        assert p.is_file() and p.parent == paths.run_dir
    assert (tmp_path / "latest").is_symlink() and os.readlink(tmp_path / "latest") == f"runs/{run.run_id}"
    assert (tmp_path / "latest" / "report.html").read_text() == paths.report_html.read_text()
    assert [f.kind for f in paths.findings] == ["regression"]
    assert not list(paths.run_dir.glob(".*tmp*")) and not list(tmp_path.glob(".latest.tmp*"))
    with HistoryStore.open(tmp_path) as store:  # tonight committed to history
        assert store.load()["run_id"].nunique() == 10


def test_csv_columns_exactly_in_order(tmp_path):
    paths = write_run_reports(synthetic_run(0), tmp_path)
    header = paths.results_csv.read_text().splitlines()[0]
    assert header.split(",") == COLUMNS
    df = read_results_csv(paths.results_csv)
    assert list(df.columns) == COLUMNS and len(df) == 6
    assert df.loc[df["format"] == "pytorch", "reason"].iat[0] == ""


def test_run_json_has_what_engineers_and_rebuild_need(tmp_path):
    paths = write_run_reports(synthetic_run(0), tmp_path)
    info = json.loads(paths.run_json.read_text())
    for key in ("versions", "host", "threads", "git_commit", "weights", "config", "started_at", "ended_at", "records"):
        assert key in info, key
    for pkg in ("torch", "onnxruntime", "prefect", "pandas", "numpy", "coremltools", "litert-torch", "qai-hub"):
        assert pkg in info["versions"]
    assert info["host"]["cores"] >= 1 and info["host"]["cpu"]
    assert re.fullmatch(r"[0-9a-f]{40}|unknown", info["git_commit"])
    assert info["weights"] == {"resnet_mixed": "random:seed=0"} and info["random_weights"] is True
    assert info["files"]["results_csv"] == "results.csv"
    assert info["summary"]["rows"] == 6


def test_rebuild_report_from_run_folder(tmp_path):
    seed_history(tmp_path, 5)
    paths = write_run_reports(synthetic_run(5, p50={TS: SERIES_P50[TS] * 1.3}), tmp_path)
    first = paths.report_html.read_text()
    paths.report_html.unlink()
    # later nights must not leak into the rebuilt report of night 5
    write_run_reports(synthetic_run(6), tmp_path)
    rebuilt = rebuild_report(paths.run_dir)
    assert rebuilt == paths.report_html and rebuilt.read_text() == first
    with pytest.raises(UserError, match="not a run folder"):
        rebuild_report(tmp_path)


def test_csv_write_is_atomic(tmp_path):
    target = tmp_path / "results.csv"
    good = flatten(synthetic_run(0))
    write_csv_atomic(good, target)
    before = target.read_bytes()

    class Exploding:
        def __str__(self):
            raise RuntimeError("disk full halfway")

    bad = good.copy()
    bad["reason"] = bad["reason"].astype(object)
    bad.loc[3, "reason"] = Exploding()
    with pytest.raises(RuntimeError, match="halfway"):
        write_csv_atomic(bad, target)
    assert target.read_bytes() == before  # the old file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temporary left behind


def test_latest_never_goes_back_to_an_older_run(tmp_path):
    new = write_run_reports(synthetic_run(3), tmp_path)
    old = write_run_reports(synthetic_run(1), tmp_path)  # e.g. a re-run of an older night finishing later
    assert (tmp_path / "latest").resolve() == new.run_dir.resolve()
    assert old.run_dir.is_dir()
    (tmp_path / "latest").unlink()
    (tmp_path / "latest").mkdir()
    with pytest.raises(UserError, match="not a symlink"):
        update_latest(tmp_path, old.run_dir, "9999")


def test_history_table_trend_and_verdicts(tmp_path):
    seed_history(tmp_path, 9)
    run = synthetic_run(9, p50={TS: SERIES_P50[TS] * 1.2},
                        overrides={("onnx", "fp32", "onnxruntime"): {"export_status": EXPORT_FAILED}})  # fmt: skip
    write_run_reports(run, tmp_path)
    csv = tmp_path / "history.csv"
    table = history_table(tmp_path, csv=csv)
    assert len(table) == 6 and csv.is_file()
    verdict = dict(zip(table["format"], table["verdict"]))
    assert verdict["torchscript"] == "regression" and verdict["onnx"] == "broke" and verdict["pytorch"] == "ok"
    ts = table[table["format"] == "torchscript"].iloc[0]
    assert ts["nights"] == 10 and ts["trend"].endswith("█") and len(ts["trend"]) == 10
    assert ts["delta_p50_pct"] == pytest.approx(20, abs=1.5)
    assert list(pd.read_csv(csv).columns) == list(table.columns)
    assert history_table(tmp_path, model="other").empty


def test_strings_from_configs_models_and_errors_are_escaped(tmp_path):
    run = synthetic_run(
        0, out_dir=tmp_path / "work",
        overrides={("onnx", "fp32", "onnxruntime"): {"export_status": EXPORT_FAILED, "export_reason": f"bad op {EVIL}",
                                                     "log_text": f"Traceback\n{EVIL}\n"}},
        config={"models": ["resnet_mixed"], "formats": {"onnx": ["fp32"]}, "converter_options": {"onnx": {"note": EVIL}}},
    )  # fmt: skip
    run.latency[0].reason = f'"><img src=x onerror=alert(1)>{EVIL}'
    text = write_run_reports(run, tmp_path).report_html.read_text()
    assert EVIL not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(" in text
    assert text.count("<script") == 1  # only the report's own sorting script
    assert "onerror=alert" not in text.replace("&#34;&gt;&lt;img src=x onerror=alert(1)&gt;", "")


def test_report_is_self_contained(tmp_path):
    seed_history(tmp_path, 3)
    text = write_run_reports(synthetic_run(3, out_dir=tmp_path / "work"), tmp_path).report_html.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text and "url(http" not in text
    assert "Content-Security-Policy" in text
    assert "random weights: accuracy-free numbers" in text
    for marker in ('class="matrix"', 'class="latency"', 'class="parity"', 'class="trend-chart"', 'id="results-table"'):
        assert marker in text, marker
    # artifact links are relative to the run folder
    assert 'href="../../work/artifacts/onnx-fp32/resnet_mixed.onnx"' in text


def test_no_banner_with_real_weights(tmp_path):
    text = write_run_reports(synthetic_run(0, provenance="kinetics400_v1"), tmp_path).report_html.read_text()
    assert "accuracy-free" not in text and "kinetics400_v1" in text


def test_first_night_two_models_and_a_hub_device(tmp_path):
    from edgebench.records import LatencyResult

    a = synthetic_run(0, out_dir=tmp_path / "work")
    b = synthetic_run(0, model="r2plus1d_18", provenance="kinetics400_v1")
    a.models += b.models
    a.artifacts += b.artifacts
    a.parity += b.parity
    a.latency += b.latency + [LatencyResult("resnet_mixed", "tflite", "fp32", "litert", "galaxy-s24", "passed",
                                            p50_ms=203.5, p90_ms=210.0, extra={"job": "https://hub/jobs/1"})]  # fmt: skip
    paths = write_run_reports(a, tmp_path)
    text = paths.report_html.read_text()
    assert paths.findings == []
    assert "No history yet" in text
    assert text.count('class="matrix"') == 2 and "litert @ galaxy-s24" in text
    assert "random weights: accuracy-free numbers" in text and "(resnet_mixed ran" in text  # only the random one
    df = read_results_csv(paths.results_csv)
    assert len(df) == 13 and set(df["device"]) == {"local", "galaxy-s24"}


def test_history_command_prints_and_exports_the_series(tmp_path, monkeypatch, capsys):
    """`edgebench history` over a stored history: a table on stdout and the same rows in a CSV."""
    import sys

    from edgebench.cli import main

    for night in range(3):
        write_run_reports(synthetic_run(night), tmp_path, HistoryConfig(), publish_prefect=False)
    monkeypatch.setattr(sys, "argv", ["edgebench", "history", "--out", str(tmp_path)])
    main()
    out = capsys.readouterr().out
    exported = pd.read_csv(tmp_path / "history.csv")
    assert len(exported) > 0 and f"exported to {tmp_path / 'history.csv'}" in out
    assert exported["nights"].max() == 3


def test_run_json_names_the_cpu_and_its_kernel_isa():
    from edgebench.host import cpu_isa
    from edgebench.reports.runinfo import host_info

    x86 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_vnni amx_tile\n"
    assert cpu_isa(x86) == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile"]
    assert cpu_isa("processor\t: 0\nFeatures\t: fp asimd sve i8mm\n") == ["asimd", "sve", "i8mm"]
    assert cpu_isa("flags\t: fpu sse2\n") == []  # an AVX-less CPU says so: nothing invented
    host = host_info()
    assert host["cpu"] and isinstance(host["isa"], list)


def test_paired_rows_show_their_ratio_and_an_unstable_row_is_marked(tmp_path):
    ort = ("onnx", "fp32", "onnxruntime")
    steady = write_run_reports(synthetic_run(0, paired=True), tmp_path / "steady").report_html.read_text()
    assert 'class="tag-unstable"' not in steady  # negative control: every row stable
    paths = write_run_reports(synthetic_run(0, paired=True, overrides={ort: {"stability": 35.0}}), tmp_path / "shaky")
    text = paths.report_html.read_text()
    assert text.count('class="tag-unstable"') == 1
    assert re.search(r"1\.1\dx eager \[1\.\d\d, 1\.\d\d\]", text)  # onnxruntime's ratio with its interval
    info = json.loads(paths.run_json.read_text())
    assert info["host"]["cpu"] == "Synthetic Xeon" and len(info["host_key"]) == 12
    rows = read_results_csv(paths.results_csv)
    shaky = rows[rows["runtime"] == "onnxruntime"].iloc[0]
    assert not shaky["stable"] and shaky["stability"] == 35.0 and shaky["host_key"] == info["host_key"]
    assert shaky["cold_start_ms"] == pytest.approx(120.0 + shaky["first_ms"])
