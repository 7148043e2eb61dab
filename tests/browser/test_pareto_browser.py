"""The report's Pareto view in headless Chromium: per format, each file as size x PSNR x p50, the front marked and
joined, failing files hollow and off the front; the precision table and the repairs table say the same."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright import sync_api

from edgebench.config import HistoryConfig
from edgebench.records import (PARITY_FAILED, PASSED, REPAIR_FAILED, Artifact, LatencyResult, ParityResult, RepairResult,
                               RunData)
from edgebench.reports.writer import write_run_reports
from tests.browser.test_report_browser import ARGS, CHROMIUM, open_page
from tests.synthetic_runs import model_ref

KEPT = ("model.layer2.0.conv2.0", "model.layer3.0.conv1.0")
# (format, precision): (size MiB, p50 ms, PSNR dB, parity status); onnx w8a16 is passing but dominated by int8-mixed
FILES = {
    ("onnx", "fp32"): (44.6, 480.0, 131.0, PASSED), ("onnx", "int8"): (11.5, 150.0, 21.0, PARITY_FAILED),
    ("onnx", "int8-mixed"): (12.1, 170.0, 44.0, PASSED), ("onnx", "w8a16"): (12.2, 520.0, 40.0, PASSED),
    ("tflite", "fp32"): (44.6, 650.0, 135.0, PASSED), ("tflite", "int8"): (11.5, 90.0, 43.0, PASSED),
}
RUNTIME = {"onnx": "onnxruntime", "tflite": "litert"}


def pareto_run(out: Path) -> RunData:
    """A run with the files above, each timed and checked, and the onnx int8 repair (plus a failed tflite one)."""
    artifacts, parity, latency = [], [], []
    for (fmt, precision), (size, p50, psnr, status) in FILES.items():
        kept = KEPT if precision == "int8-mixed" else ()
        artifacts.append(Artifact("resnet_mixed", fmt, precision, PASSED, path=str(out / f"{fmt}-{precision}.bin"),
                                  size_bytes=int(size * 2**20), float_layers=kept))
        parity.append(ParityResult("resnet_mixed", fmt, precision, RUNTIME[fmt], status, psnr_db=psnr, cosine=0.999,
                                   max_abs_err=0.01))
        latency.append(LatencyResult("resnet_mixed", fmt, precision, RUNTIME[fmt], "local", PASSED, p50_ms=p50))
    trials = out / "repair" / "resnet_mixed-onnx-int8.json"
    trials.parent.mkdir(parents=True)
    trials.write_text('{"trials": []}')
    repairs = [RepairResult("resnet_mixed", "onnx", "int8", "repaired", "2 of 21 layers kept in fp32", "parity", KEPT,
                            "fp32", 4, 21, 13, 61.0, str(trials)),
               RepairResult("resnet_mixed", "tflite", "int8", "not_needed", "tflite int8 passes its parity bound: "
                            "nothing to repair", "parity")]
    artifacts.append(Artifact("resnet_mixed", "executorch", "int8-mixed", REPAIR_FAILED,
                              reason="repair_failed: budget spent; tried 13 sets"))
    return RunData("r1", "2026-12-04T02:00:00+00:00", "2026-12-04T02:30:00+00:00", str(out), 2,
                   [model_ref("resnet_mixed")], artifacts, parity, latency,
                   config={"formats": {"onnx": ["fp32", "int8", "w8a16"], "tflite": ["fp32", "int8"]}}, repairs=repairs)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("pareto")
    report = write_run_reports(pareto_run(out / "work"), out, HistoryConfig()).report_html
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page, requests, errors = open_page(browser, report)
        assert errors == [] and requests == [report.resolve().as_uri()]
        yield page
        browser.close()


def points(page, fmt: str) -> dict[str, str]:
    """precision -> the class of its point (front | ok | bad) in the format's Pareto chart."""
    chart = page.locator(f"figure.pareto-chart[data-format={fmt}] svg.pareto")
    assert chart.is_visible()
    return {g.get_attribute("data-precision"): g.get_attribute("class").split()[-1] for g in chart.locator("g.point").all()}


def test_front_per_format(page):
    assert points(page, "onnx") == {"fp32": "front", "int8-mixed": "front", "w8a16": "ok", "int8": "bad"}
    assert points(page, "tflite") == {"fp32": "front", "int8": "front"}
    onnx = page.locator("figure.pareto-chart[data-format=onnx]")
    assert onnx.locator("polyline.frontline").count() == 1 and "PSNR dB against p50" in onnx.inner_text()
    mixed = onnx.locator("g.point[data-precision=int8-mixed]")
    assert KEPT[0] in mixed.locator("title").text_content()
    fp32, small = (onnx.locator(f"g.point[data-precision={p}] circle").bounding_box() for p in ("fp32", "int8-mixed"))
    assert fp32["width"] > small["width"] > 0  # circle area follows the file size
    assert fp32["y"] < small["y"] and fp32["x"] > small["x"]  # closer to PyTorch (up), slower (right)


def test_tables_say_the_same(page):
    rows = page.locator("table.precisions tbody tr")
    front = {tuple(r.locator("td").all_inner_texts()[:2]) for r in rows.all() if "on-front" in r.get_attribute("class")}
    assert front == {("onnx", "fp32"), ("onnx", "int8-mixed"), ("tflite", "fp32"), ("tflite", "int8")}
    mixed = page.locator("table.precisions tbody tr", has_text="int8-mixed").first.inner_text()
    assert "model.layer2.0.conv2.0, model.layer3.0.conv1.0" in mixed
    assert "2.82x" in mixed and "0.88x" in mixed  # 170 ms: against fp32's 480 ms, against int8's 150 ms
    repairs = page.locator("table.repairs tbody tr")
    assert [r.locator("td").first.inner_text() for r in repairs.all()] == ["onnx", "tflite"]
    assert repairs.first.locator("a").get_attribute("href").endswith("repair/resnet_mixed-onnx-int8.json")
    assert "nothing to repair" in repairs.nth(1).inner_text()
    assert page.locator("table.matrix td.st-repair_failed").count() >= 1  # the executorch row that found nothing
