"""Reports and history: results.csv, run.json, report.html, Prefect artifacts, nightly regressions."""
