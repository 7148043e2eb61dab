"""Open a real report.html in headless Chromium: no console errors, no network, matrix and charts, sorting works."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from playwright import sync_api  # installed by make test; a missing browser fails, never skips

from edgebench.config import HistoryConfig
from edgebench.records import EXPORT_FAILED, PARITY_FAILED
from edgebench.reports.history import HistoryStore
from edgebench.reports.rows import flatten
from edgebench.reports.writer import write_run_reports
from tests.synthetic_runs import PEAK, SERIES_P50, synthetic_run

CHROMIUM = os.environ.get("EDGEBENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
TS, ORT = ("torchscript", "fp32", "torchscript"), ("onnx", "fp32", "onnxruntime")
NOISE = [0.004, -0.006, 0.01, -0.002, 0.0, 0.007, -0.01, 0.003, -0.004]

if not Path(CHROMIUM).exists():
    raise RuntimeError(f"{CHROMIUM} not found: the set-up (make test) installs Debian's chromium")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    """A report with 9 past nights, a regression, a parity failure, an export failure and a <script> reason."""
    out = tmp_path_factory.mktemp("reports")
    with HistoryStore.open(out) as store:
        for n, rel in enumerate(NOISE):
            store.write_run(flatten(synthetic_run(n, p50={TS: SERIES_P50[TS] * (1 + rel), ORT: SERIES_P50[ORT] * (1 - rel)})))
    run = synthetic_run(9, out_dir=out / "work", p50={TS: SERIES_P50[TS] * 1.2}, peak=PEAK, overrides={
        ("tflite", "fp32", "litert"): {"parity_status": PARITY_FAILED, "max_abs_err": 2e-3},
        ("coreml", "fp16", "coreml"): {"export_status": EXPORT_FAILED,
                                       "export_reason": "ValueError: op <script>alert(1)</script> not supported",
                                       "log_text": "Traceback (most recent call last):\n  ...\nValueError: <script>\n"},
    })  # fmt: skip
    return write_run_reports(run, out, HistoryConfig()).report_html


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, path: Path):
    """The page, with every request and every console error or warning it caused."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    requests, errors = [], []
    page.on("request", lambda r: requests.append(r.url))
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    page.goto(path.resolve().as_uri(), wait_until="load")
    return page, requests, errors


def test_checks_catch_network_requests_and_script_errors(report, browser, tmp_path):
    """Negative control: a page that fetches something and throws is caught by the same listeners."""
    bad = tmp_path / "bad.html"
    bad.write_text(report.read_text().replace(
        "<footer>", '<img src="https://example.com/x.png"><script>undefinedFunction()</script><footer>'))  # fmt: skip
    page, requests, errors = open_page(browser, bad)
    assert "https://example.com/x.png" in requests
    assert any("undefinedFunction" in e for e in errors) and any("Content Security Policy" in e for e in errors)
    page.close()


def test_report_in_chromium(report, browser, tmp_path):
    page, requests, errors = open_page(browser, report)

    shot = tmp_path / "report.png"  # what engineers see each morning, before any click
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    if os.environ.get("EDGEBENCH_SCREENSHOT"):  # keep a copy to look at
        shutil.copy(shot, os.environ["EDGEBENCH_SCREENSHOT"])

    # only the file itself was fetched, and nothing complained (CSP violations would show up here too)
    assert requests == [report.resolve().as_uri()]
    assert errors == []
    assert page.evaluate("window.alert.toString()").startswith("function alert")  # the <script> reason did not run

    # header, random-weights banner and the regressions section at the top
    assert page.locator("#random-weights").inner_text().startswith("random weights: accuracy-free numbers")
    findings = page.locator("#regressions .finding")
    assert findings.count() >= 2
    assert "regression" in page.locator("#regressions").inner_text()

    # status matrix with readable reasons
    matrix = page.locator("table.matrix").first
    assert matrix.is_visible()
    assert matrix.locator("td.st-export_failed").count() == 1
    assert "<script>alert(1)</script>" in matrix.locator("td.st-export_failed .cell-reason").inner_text()
    assert matrix.locator("td.st-parity_failed").count() == 1

    # the host's limit in the header; each timed row's share of it, coloured by band, a gauge as wide as the share
    assert "fp32 60 GMAC/s (synthetic fp32 GEMM)" in page.locator("#limit").inner_text()
    eager, litert = (matrix.locator("tr", has_text=label).locator(".cell-peak") for label in ("pytorch eager", "tflite fp32"))
    assert "57 % of fp32 peak" in eager.inner_text() and "36 % of fp32 peak" in litert.inner_text()
    assert "pk-high" in eager.get_attribute("class") and "pk-mid" in litert.get_attribute("class")
    colours = [el.evaluate("e => getComputedStyle(e.querySelector('.gauge i')).backgroundColor") for el in (eager, litert)]
    filled = [el.locator(".gauge i").bounding_box()["width"] / el.locator(".gauge").bounding_box()["width"]
              for el in (eager, litert)]
    assert colours[0] != colours[1] and filled == pytest.approx([0.57, 0.36], abs=0.02)
    assert page.locator("#results-table td.pk.pk-high").count() >= 1 and page.locator("#results-table td.pk.pk-mid").count() >= 1

    # charts drawn: latency bars with whiskers, parity bars with tolerance marks, trend lines
    assert page.locator("svg.latency rect.bar").count() == 4
    assert page.locator("svg.latency line.whisker").count() >= 4
    assert page.locator("svg.parity rect.bar").count() == 3
    assert page.locator("svg.parity line.tol").count() == 3
    assert page.locator("svg.trend-chart polyline.trendline").count() >= 4
    assert page.locator(".trend.regression").count() == 1
    box = page.locator("svg.latency").first.bounding_box()
    assert box and box["width"] > 300 and box["height"] > 60

    # sorting: click p50_ms, ascending then descending, blanks last
    col = page.locator("#results-table th").all_inner_texts().index("p50_ms")
    def p50s():
        return page.eval_on_selector_all(
            "#results-table tbody tr", f"rows => rows.map(r => r.cells[{col}].getAttribute('data-v'))")  # fmt: skip

    page.locator("#results-table th[data-col=p50_ms]").click()
    values = [float(v) for v in p50s() if v]
    assert values == sorted(values) and len(values) == 4
    assert p50s()[-1] == ""
    assert page.locator("#results-table th[data-col=p50_ms]").get_attribute("aria-sort") == "ascending"
    page.locator("#results-table th[data-col=p50_ms]").click()
    values = [float(v) for v in p50s() if v]
    assert values == sorted(values, reverse=True)

    # the filter box
    page.locator("#filter").fill("export_failed")
    assert page.locator("#results-table tbody tr:visible").count() == 1
    page.locator("#filter").fill("")

    # collapsible op census and logs
    assert page.locator("details.artifact").count() == 5
    assert page.locator("details.log[open]").count() == 1
    page.close()
