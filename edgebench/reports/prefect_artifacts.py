"""Prefect artifacts for the flow run: a results table and a markdown summary with the regressions."""

from __future__ import annotations

import logging
import math
import sys

import pandas as pd

from edgebench.records import RunData
from edgebench.reports.regressions import ERROR, Finding

log = logging.getLogger(__name__)

RESULTS_KEY = "edgebench-results"
SUMMARY_KEY = "edgebench-summary"
TABLE_COLUMNS = ["model", "format", "precision", "runtime", "device", "status", "parity", "max_abs_err",
                 "p50_ms", "p90_ms", "speedup_vs_eager", "delta_p50_pct", "regression", "reason"]  # fmt: skip


def in_run_context() -> bool:
    """True inside a Prefect flow or task run."""
    if "prefect.context" not in sys.modules:  # not imported: cannot be in a run (and importing costs seconds)
        return False
    try:
        from prefect.context import FlowRunContext, TaskRunContext
    except ImportError:
        return False
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None


def publish(df: pd.DataFrame, findings: list[Finding], run: RunData, report_path: str | None = None) -> bool:
    """Create the table and markdown artifacts; a no-op (False) outside a flow run."""
    if not in_run_context():
        return False
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    create_table_artifact(table=table_records(df), key=RESULTS_KEY, description=f"edgebench results, run {run.run_id}",
                          _sync=True)  # fmt: skip
    create_markdown_artifact(markdown=summary_markdown(df, findings, run, report_path), key=SUMMARY_KEY,
                             description=f"edgebench summary, run {run.run_id}", _sync=True)  # fmt: skip
    return True


def table_records(df: pd.DataFrame) -> list[dict]:
    """The results as JSON-safe rows (missing values -> None, floats rounded)."""
    out = []
    for rec in df[[c for c in TABLE_COLUMNS if c in df.columns]].to_dict("records"):
        out.append({k: _clean(v) for k, v in rec.items()})
    return out


def summary_markdown(df: pd.DataFrame, findings: list[Finding], run: RunData, report_path: str | None = None) -> str:
    """Status counts, weights warning, regressions and failures, in markdown."""
    lines = [f"# edgebench run `{run.run_id}`", "", f"Started {run.started_at}, ended {run.ended_at}, {run.threads} threads."]
    if any(m.random_weights for m in run.models):
        lines += ["", "> **random weights: accuracy-free numbers**"]
    lines += ["", "| status | rows |", "|---|---|"]
    lines += [f"| {s} | {n} |" for s, n in df["status"].value_counts().items()]
    bad = [f for f in findings if f.severity == ERROR]
    lines += ["", f"## Changes since previous nights ({len(bad)} need attention)" if findings else "## No regressions", ""]
    lines += [f"- **{f.severity}** {f.kind}: `{_md(f.label)}`: {_md(f.message)}" for f in findings]
    failed = df[~df["status"].isin(["passed", "skipped"])]
    if len(failed):
        lines += ["", "## Failures", "", "| series | status | reason |", "|---|---|---|"]
        for _, r in failed.iterrows():
            label = f"{r['model']} / {r['format']} {r['precision']} / {r['runtime'] or '-'} @ {r['device']}"
            lines.append(f"| {_md(label)} | {r['status']} | {_md(r['reason'][:300])} |")
    acted = [r for r in getattr(run, "repairs", []) if r.status != "not_needed"]
    if acted:
        lines += ["", "## Repairs of failing reduced-precision files", "", "| file | status | what happened |", "|---|---|---|"]
        lines += [f"| {_md(f'{r.model} / {r.format} {r.precision}')} | {r.status} | {_md(r.reason[:300])} |" for r in acted]
    if report_path:
        lines += ["", f"Report: `{report_path}`"]
    return "\n".join(lines) + "\n"


def _md(s: str) -> str:
    """Markdown-safe inline text: no table breaks, no raw HTML."""
    return str(s).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ")


def _clean(v):
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return None if math.isinf(v) else float(f"{v:.6g}")
    return v
