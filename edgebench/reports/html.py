"""report.html: one self-contained page (inline CSS, JS and SVG) rendered with Jinja2, autoescaped."""

from __future__ import annotations

import functools
import json
import math
import os
from pathlib import Path

import pandas as pd
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from edgebench.benchmarks.peak import describe_limit, peak_for
from edgebench.catalogue import EAGER, shown_device
from edgebench.evaluation.stats import ci_text
from edgebench.parity.localize import Localization
from edgebench.records import RunData
from edgebench.reports import charts
from edgebench.reports.pareto import pareto_charts
from edgebench.reports.precision import precision_table
from edgebench.reports.regressions import Finding
from edgebench.reports.rows import COLUMNS, STATUS_RANK
from edgebench.reports.runinfo import key_packages
from edgebench.reports.scorecard import scorecard
from edgebench.runtimes.registry import runtime_names
from edgebench.tables import band

TEMPLATES = Path(__file__).with_name("templates")
LOG_TAIL_LINES, LOG_TAIL_BYTES, REASON_SHORT = 80, 16_000, 280
TABLE_COLUMNS = [c for c in COLUMNS if c not in ("run_id", "started_at", "weights")]


@functools.lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja2 environment: autoescape on for every template, undefined names are errors."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)  # fmt: skip
    env.filters["num"] = _num
    return env


def render_report(run: RunData, df: pd.DataFrame, findings: list[Finding], history: pd.DataFrame | None,
                  info: dict, run_dir: Path, trend_nights: int = 30) -> str:  # fmt: skip
    """The HTML text of the report of one run."""
    run_dir = Path(run_dir)
    tolerances = ((run.config or {}).get("parity") or {}).get("tolerances") or {}
    models = []
    for name in dict.fromkeys(list(df["model"]) + [m.name for m in run.models]):
        mdf = df[df["model"] == name]
        ref = next((m for m in run.models if m.name == name), None)
        models.append({
            "name": name, "weights": ref.provenance if ref else "", "random": bool(ref and ref.random_weights),
            "inputs": ", ".join(f"{t.name} {'x'.join(map(str, t.shape))} {t.dtype}" for t in (ref.inputs if ref else ())),
            "matrix": status_matrix(mdf, list(dict.fromkeys(df["format"])), run.peak),  # rows come in config order
            "latency": charts.latency_chart(mdf), "parity": charts.parity_chart(mdf, tolerances),
            "counts": _counts(mdf), "accuracy": accuracy_section(run, name),
            "precisions": precision_table(mdf), "pareto": pareto_charts(mdf), "repairs": repairs_section(run, name, run_dir),
        })  # fmt: skip
    anchors = {m["name"]: f"model-{i}" for i, m in enumerate(models, start=1)}  # the sections' ids
    ctx = {
        "scorecard": scorecard(df, (run.config or {}).get("formats") or {}, history, anchors),
        "title": f"edgebench {', '.join(m['name'] for m in models) or 'run'} {run.started_at[:10]}",
        "run": {"run_id": run.run_id, "started_at": run.started_at, "ended_at": run.ended_at,
                "duration": _duration(info.get("duration_s")), "threads": run.threads},
        "host": info.get("host") or {}, "limit": describe_limit(run.peak), "versions": _ordered(info.get("versions") or {}, ["python", *key_packages()]),
        "packages": info.get("packages") or {}, "git_commit": info.get("git_commit", "unknown"),
        "git_dirty": info.get("git_dirty"), "models": models,
        "random_models": [m["name"] for m in models if m["random"]],
        "findings": [f.to_dict() for f in findings], "counts": _counts(df),
        "table": results_table(df, run, run_dir), "trends": charts.trend_charts(df, history, trend_nights),
        "localizations": localization_charts(run, run_dir),
        "artifacts": artifact_details(run, run_dir), "logs": logs(run, run_dir),
        "config_json": json.dumps(run.config or {}, indent=2, sort_keys=True, default=str),
        "files": _ordered(info.get("files") or {}, ["report_html", "results_csv", "run_json"]),
        "has_history": history is not None and not history.empty,
        "warnings": info.get("third_party_warnings", 0),  # records in logs/warnings.log (edgebench/console.py)
    }  # fmt: skip
    return environment().get_template("report.html.j2").render(**ctx)


def localization_charts(run: RunData, run_dir: Path) -> list[dict]:
    """An error-against-depth chart per localized artifact (parity.localize JSON), failing rows first."""
    rows: dict[str, list] = {}
    for pr in run.parity:
        if pr.localization_path and Path(pr.localization_path).exists():
            rows.setdefault(pr.localization_path, []).append(pr)
    out = []
    for path, prs in sorted(rows.items(), key=lambda kv: all(p.status == "passed" for p in kv[1])):
        loc = Localization.load(path)
        failed = any(p.status != "passed" for p in prs)
        chart = charts.depth_chart({**loc.to_dict(), "summary": loc.summary(failed)})
        out.append({**chart, "runtimes": ", ".join(f"{p.runtime} ({p.status.replace('_', ' ')})" for p in prs),
                    "href": link(path, run_dir), "failed": failed})
    return out


def repairs_section(run: RunData, model: str, run_dir: Path) -> list[dict]:
    """The model's repairs: failed ones first, then repaired, then those with nothing to do; a link to the trials."""
    order = {"repair_failed": 0, "repaired": 1, "skipped": 2, "not_needed": 3}
    rows = sorted((r for r in run.repairs if r.model == model), key=lambda r: (order.get(r.status, 9), r.format))
    return [{"format": r.format, "precision": r.precision, "status": r.status, "judge": r.judge,
             "float_layers": ", ".join(r.float_layers), "trials": f"{r.trials} of {r.max_trials}" if r.max_trials else "",
             "seconds": f"{r.seconds:.0f}" if r.seconds else "", "reason": r.reason,
             "href": link(r.trials_path, run_dir) if r.trials_path else None} for r in rows]


def status_matrix(df: pd.DataFrame, formats: list[str], peak: dict | None = None) -> dict:
    """Rows (format, precision) x columns (runtime [@ device]); each cell a status with its reason."""
    def col_of(r):
        return (r["runtime"] or "(no runtime)") + shown_device(r["device"])

    fmt_rank = {f: i for i, f in enumerate(formats)}
    rt_rank = {r: i for i, r in enumerate(runtime_names())}  # the catalogue's order
    cols = sorted({(r["runtime"], r["device"], col_of(r)) for _, r in df.iterrows()},
                  key=lambda c: (c[1] != "local", rt_rank.get(c[0], len(rt_rank)), c[2]))  # fmt: skip
    rows = sorted({(r["format"], r["precision"]) for _, r in df.iterrows()},
                  key=lambda fp: (fmt_rank.get(fp[0], len(fmt_rank)), fp))  # fmt: skip
    cells = {}
    for _, r in df.iterrows():
        reason = r["reason"]
        cells[(r["format"], r["precision"], col_of(r))] = {
            "status": r["status"], "label": r["status"].replace("_", " "),
            "p50": f"p50 {charts.fmt_ms(r['p50_ms'])} ms" if pd.notna(r["p50_ms"]) else "",
            "ratio": _ratio_text(r),
            "err": f"err {r['max_abs_err']:.1e}" if pd.notna(r["max_abs_err"]) else "",
            "regression": charts.truthy(r["regression"]),
            "unstable": _unstable(r),
            "reason": reason[:REASON_SHORT] + ("…" if len(reason) > REASON_SHORT else ""),
            "reason_full": reason if len(reason) > REASON_SHORT else "",
            "peak": peak_gauge(r, peak),
        }  # fmt: skip
    return {"columns": [c[2] for c in cols],
            "rows": [{"label": EAGER.label if f == EAGER.format else f"{f} {p}",
                      "cells": [cells.get((f, p, c[2])) for c in cols]} for f, p in rows]}  # fmt: skip


def peak_gauge(r, peak: dict | None) -> dict | None:
    """A matrix cell's GMAC/s and share of its precision's peak, with the band its bar is coloured by."""
    if pd.isna(r["gmacs"]):
        return None
    limit = peak_for(peak, r["precision"]) if pd.notna(r["pct_of_peak"]) else None
    text = f"{r['gmacs']:,.0f} GMAC/s"
    if limit is None:
        return {"text": text, "pct": None, "band": "", "title": ""}
    pct = float(r["pct_of_peak"])
    return {"text": f"{text} · {pct:.0f} % of {limit[0]} peak", "pct": min(pct, 100.0), "band": band(pct),
            "title": f"{limit[0]} peak {limit[1]['gmacs']:,.0f} GMAC/s by {limit[1]['kernel']}"}


def _unstable(r) -> bool:
    """The row's stability is known and poor (stable False; missing is not unstable)."""
    return not (r["stable"] is None or pd.isna(r["stable"]) or bool(r["stable"]))


def _ratio_text(r) -> str:
    """"1.07x eager [1.05, 1.09]" for a row timed interleaved with eager (not for eager itself)."""
    if pd.isna(r["ratio_vs_eager"]) or r["format"] == EAGER.format:
        return ""
    return f"{r['ratio_vs_eager']:.2f}x eager [{r['ratio_low']:.2f}, {r['ratio_high']:.2f}]"


def accuracy_section(run: RunData, model: str) -> dict:
    """The model's accuracy rows (eager first), with the drop, its interval and the most confused classes."""
    rows = [a for a in getattr(run, "accuracy", None) or [] if a.model == model]
    rows.sort(key=lambda a: (a.format != EAGER.format, a.format, a.precision, a.runtime))
    pct = lambda v: "" if v is None else f"{v:.1f} %"  # noqa: E731
    first = next((a for a in rows if a.videos), None)
    return {"dataset": first.dataset if first else "", "videos": first.videos if first else 0,
            "unreadable": first.unreadable if first else 0,
            "rows": [{"label": EAGER.label if a.format == EAGER.format else f"{a.format} {a.precision}",
                      "runtime": a.runtime, "status": a.status, "top1": pct(a.top1), "top5": pct(a.top5),
                      "clip_top1": pct(a.clip_top1), "drop": "" if a.top1_drop is None else f"{a.top1_drop:+.1f}",
                      "ci": ci_text(a.top1_drop_low, a.top1_drop_high), "bound": "" if a.bound is None else f"{a.bound:g}",
                      "verdict": a.verdict or ("baseline" if a.format == EAGER.format and a.status == "passed" else ""),
                      "reason": a.reason, "confused": a.confused} for a in rows]}  # fmt: skip


def results_table(df: pd.DataFrame, run: RunData, run_dir: Path) -> dict:
    """Header and cells (display text + sort value) of the sortable results table."""
    paths = {(a.model, a.format, a.precision): a.path for a in run.artifacts if a.path}
    rows = []
    for _, r in df.iterrows():
        cells = [{"text": _num(r[c], c), "sort": _sort_value(r[c]), "cls": _cell_class(c, r), "href": None,
                  "style": f"--pct:{min(float(r[c]), 100.0):.0f}%" if c == "pct_of_peak" and pd.notna(r[c]) else ""}
                 for c in TABLE_COLUMNS]
        path = paths.get((r["model"], r["format"], r["precision"]))
        cells.append({"text": Path(path).name if path else "", "sort": Path(path).name if path else "",
                      "cls": "", "href": link(path, run_dir) if path else None, "style": ""})  # fmt: skip
        rows.append({"status": r["status"], "cells": cells})
    return {"columns": TABLE_COLUMNS + ["artifact"], "rows": rows}


def artifact_details(run: RunData, run_dir: Path) -> list[dict]:
    """Per artifact: status, size, hash, versions, link and op census (most frequent ops first)."""
    out = []
    for a in run.artifacts:
        ops = sorted(a.op_census.items(), key=lambda kv: (-kv[1], kv[0]))
        out.append({"name": f"{a.model} / {a.format} {a.precision}", "status": a.status, "reason": a.reason,
                    "path": a.path, "href": link(a.path, run_dir) if a.path else None,
                    "size": f"{a.size_bytes / 2**20:,.1f} MiB" if a.size_bytes else "", "sha256": a.sha256[:16],
                    "export_s": f"{a.export_s:.1f} s" if a.export_s else "", "cached": a.cached,
                    "versions": a.versions, "options": json.dumps(a.options, sort_keys=True, default=str),
                    "ops": ops, "op_total": sum(a.op_census.values())})  # fmt: skip
    return out


def logs(run: RunData, run_dir: Path) -> list[dict]:
    """Tails of export logs (and any log a benchmark recorded), failures first."""
    found = []
    for a in run.artifacts:
        if a.log_path:
            found.append((not a.ok, f"{a.model} / {a.format} {a.precision}: {Path(a.log_path).name}", a.log_path, a.reason))
    for lr in run.latency:
        p = (lr.extra or {}).get("log_path")
        if p:
            found.append((lr.status != "passed", f"{lr.model} / {lr.format} {lr.precision} / {lr.runtime} @ {lr.device}: "
                          f"{Path(p).name}", p, lr.reason))  # fmt: skip
    out = []
    for failed, title, path, reason in sorted(found, key=lambda f: (not f[0], f[1])):
        out.append({"title": title, "failed": failed, "reason": reason, "href": link(path, run_dir),
                    "tail": tail(Path(path))})  # fmt: skip
    return out


def tail(path: Path, lines: int = LOG_TAIL_LINES, limit: int = LOG_TAIL_BYTES) -> str:
    """The last lines of a text file (at most `limit` bytes read), or why it cannot be read."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - limit))
            data = f.read().decode("utf-8", errors="replace")
    except OSError as e:
        return f"(cannot read {path}: {e.strerror})"
    text = "\n".join(data.splitlines()[-lines:])
    return ("…\n" if size > limit or data.count("\n") > lines else "") + text


def link(path: str, run_dir: Path) -> str:
    """A relative link from the run folder when possible, else a file:// URL."""
    p = Path(path)
    try:
        return Path(os.path.relpath(p.resolve() if p.is_absolute() or p.exists() else p, run_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows)
        return p.resolve().as_uri()


def _ordered(d: dict, first: list[str]) -> dict:
    """`d` with the keys of `first` first, in that order (run.json stores keys sorted)."""
    return {**{k: d[k] for k in first if k in d}, **{k: v for k, v in d.items() if k not in first}}


def _counts(df: pd.DataFrame) -> list[dict]:
    counts = df["status"].value_counts()
    return [{"status": s, "label": s.replace("_", " "), "n": int(counts[s])}
            for s in sorted(counts.index, key=lambda s: STATUS_RANK.get(s, 9))]  # fmt: skip


def _duration(s) -> str:
    if s is None or (isinstance(s, float) and math.isnan(s)):
        return ""
    s = int(s)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def _num(v, column: str = "") -> str:
    """Display text of a table value: short, aligned, empty for missing."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bool) or type(v).__name__ in ("bool_", "bool"):
        return "yes" if v else "no"
    if column in ("runs",):
        return f"{int(v)}"
    if column in ("max_abs_err", "mean_abs_err"):
        return f"{v:.2e}"
    if column in ("cosine",):
        return f"{v:.6f}"
    if column in ("top1_agree", "top5_agree"):
        return f"{v:.0%}"
    if column in ("top1", "top5"):
        return f"{v:.1f} %"
    if column == "top1_drop":
        return f"{v:+.1f}"
    if column in ("delta_p50_pct", "delta_ratio_pct"):
        return f"{v:+.1f} %"
    if column in ("ratio_vs_eager", "ratio_low", "ratio_high", "baseline_ratio"):
        return f"{v:.3f}x"
    if column == "cv":
        return f"{v:.1%}"
    if column == "stability":
        return f"{v:.0f}"
    if column in ("speedup_vs_eager",):
        return f"{v:.2f}x"
    if column == "pct_of_peak":
        return f"{v:.0f} %"
    if column == "gmacs":
        return f"{v:,.1f}"
    if column.endswith("_ms"):
        return charts.fmt_ms(float(v))
    return f"{v:,.2f}" if abs(v) < 1000 else f"{v:,.0f}"


def _sort_value(v) -> str:
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return ""
    if isinstance(v, str):
        return v
    return repr(float(v))


def _cell_class(column: str, r) -> str:
    if column == "status":
        return f"st st-{r['status']}"
    if column == "regression" and charts.truthy(r["regression"]):
        return "bad"
    if column == "stable" and _unstable(r):
        return "warn"
    if column == "parity" and r["parity"] == "failed":
        return "bad"
    if column == "reason":
        return "reason"
    if column == "pct_of_peak" and pd.notna(r[column]):
        return f"num pk pk-{band(float(r[column]))}"
    return "num" if column in COLUMNS and column not in ("model", "format", "precision", "runtime", "device", "parity") else ""
