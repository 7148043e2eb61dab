"""Write a run's reports: results.csv, run.json, report.html, history rows, the `latest` link."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.config import HistoryConfig
from edgebench.console import count_records
from edgebench.errors import UserError
from edgebench.records import RunData, atomic_path, write_json_atomic, write_text_atomic
from edgebench.reports import html
from edgebench.reports.history import HistoryStore, resolve_url
from edgebench.reports.regressions import BROKE, FIXED, REGRESSION, SPEEDUP, Finding, evaluate
from edgebench.reports.rows import COLUMNS, FAILED_STATUSES, SERIES, STRING_COLUMNS, RuntimesFor, coerce, flatten
from edgebench.reports.runinfo import INTERRUPTED, build_run_info, interrupted_run_info, run_from_dict

log = logging.getLogger(__name__)
RESULTS_CSV, RUN_JSON, REPORT_HTML = "results.csv", "run.json", "report.html"
SPARK = "▁▂▃▄▅▆▇█"


@dataclass
class ReportPaths:
    """Where one run's reports went, and what they found."""

    run_dir: Path
    results_csv: Path
    run_json: Path
    report_html: Path
    latest: Path
    history_url: str
    findings: list[Finding] = field(default_factory=list)
    rows: int = 0


def run_dir_of(out: Path, run_id: str) -> Path:
    return Path(out) / "runs" / run_id


def write_run_reports(run: RunData, out: Path, history_cfg: HistoryConfig | None = None,
                      runtimes_for: RuntimesFor | None = None, publish_prefect: bool = True,
                      record: bool = True, where: dict | None = None) -> ReportPaths:  # fmt: skip
    """Rows, regressions against history, results.csv, run.json, report.html; then, when the run is `record`ed
    (a night of the series, not a re-judged copy), its history rows and `latest`. `where`: the host, git and
    versions the figures came from, when not this process (runinfo.WHERE)."""
    out = Path(out)
    cfg = history_cfg or HistoryConfig()
    run_dir = run_dir_of(out, run.run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    url = resolve_url(out, cfg)
    with HistoryStore(url) as store:
        models = sorted({m.name for m in run.models} | {a.model for a in run.artifacts} | {lr.model for lr in run.latency})
        history = _load_models(store, models)
        df, findings = evaluate(flatten(run, history, runtimes_for), history, cfg)
        write_csv_atomic(df, run_dir / RESULTS_CSV)
        df = read_results_csv(run_dir / RESULTS_CSV)  # the CSV's rounding everywhere: a rebuild matches exactly
        info = build_run_info(run, findings, summary=_summary(df, findings),
                              files={"results_csv": RESULTS_CSV, "report_html": REPORT_HTML, "run_json": RUN_JSON},
                              where=where)  # fmt: skip
        info["history_url"] = store._safe_url()
        info["third_party_warnings"] = count_records(run_dir)  # other libraries' records in logs/warnings.log
        write_json_atomic(run_dir / RUN_JSON, info)
        page = html.render_report(run, df, findings, history, info, run_dir, cfg.trend_nights)
        write_text_atomic(run_dir / REPORT_HTML, page)
        if record:
            store.write_run(df, {"ended_at": run.ended_at, "host": info["host"].get("hostname"),
                                 "git_commit": info["git_commit"], "weights": info["weights"], "threads": run.threads,
                                 "run_dir": str(run_dir.resolve())})  # fmt: skip
    latest = update_latest(out, run_dir, run.started_at) if record else out / "latest"
    if publish_prefect and record:
        try:
            from edgebench.reports.prefect_artifacts import publish

            publish(df, findings, run, str(run_dir / REPORT_HTML))
        except Exception as e:  # the reports are on disk: a Prefect API hiccup must not lose the run
            log.warning("could not publish Prefect artifacts: %s", e)
    return ReportPaths(run_dir, run_dir / RESULTS_CSV, run_dir / RUN_JSON, run_dir / REPORT_HTML, latest, info["history_url"],
                       findings, len(df))  # fmt: skip


def mark_interrupted(out: Path, run_id: str, started_at: str, reason: str, finished: list[str]) -> Path:
    """run.json saying the run was stopped and what had finished; history and `latest` stay untouched."""
    path = run_dir_of(Path(out), run_id) / RUN_JSON
    ended = datetime.now(timezone.utc).isoformat(timespec="seconds")
    write_json_atomic(path, interrupted_run_info(run_id, started_at, ended, reason, finished))
    return path


def rebuild_report(run_dir: Path, history_cfg: HistoryConfig | None = None) -> Path:
    """Render report.html again from run.json + results.csv + the history up to that run."""
    run_dir = Path(run_dir)
    info_path = run_dir / RUN_JSON
    if not info_path.exists():
        raise UserError(f"{run_dir}: not a run folder (no {RUN_JSON})")
    try:
        info = json.loads(info_path.read_text())
        if info.get("status") == INTERRUPTED:
            raise UserError(f"{run_dir}: the run was interrupted ({info.get('reason')}); it has no report")
        run = run_from_dict(info["records"])
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{info_path}: unreadable run.json ({e.__class__.__name__}: {e})") from None
    df = read_results_csv(run_dir / info.get("files", {}).get("results_csv", RESULTS_CSV))
    findings = [Finding.from_dict(f) for f in info.get("findings", [])]
    cfg = history_cfg or _history_cfg_of(info)
    out = run_dir.parent.parent if run_dir.parent.name == "runs" else run_dir
    history = None
    try:
        with HistoryStore(resolve_url(out, cfg)) as store:
            history = _load_models(store, sorted(set(df["model"])))
    except UserError as e:
        log.warning("history unavailable, report without trends: %s", e)
    page = html.render_report(run, df, findings, history, info, run_dir, cfg.trend_nights)
    write_text_atomic(run_dir / REPORT_HTML, page)
    return run_dir / REPORT_HTML


def history_table(out: Path, model: str | None = None, history_cfg: HistoryConfig | None = None,
                  csv: Path | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per series: nights, latest status and p50, baseline, delta, trend, slope, verdict, and for a
    series timed interleaved with eager its latest ratio, the baseline ratio and their delta (what the verdict uses)."""
    cfg = history_cfg or HistoryConfig()
    with HistoryStore(resolve_url(Path(out), cfg)) as store:
        h = store.load(model=model)
    cols = [*SERIES, "nights", "first_night", "last_night", "last_run_id", "latest_status", "latest_p50_ms",
            "baseline_p50_ms", "delta_p50_pct", "trend", "slope_pct_per_night", "verdict", "latest_reason",
            "latest_ratio", "baseline_ratio", "delta_ratio_pct"]  # fmt: skip
    if h.empty:
        table = pd.DataFrame(columns=cols)
    else:
        latest = h.groupby(SERIES, sort=False).tail(1)
        judged, findings = evaluate(latest, h, cfg)
        kinds = {}
        for f in findings:
            kinds.setdefault(f.series, []).append(f.kind)
        groups = {k: g for k, g in h.groupby(SERIES, sort=False)}
        records = []
        for _, r in judged.sort_values(SERIES).iterrows():
            key = tuple(r[c] for c in SERIES)
            g = groups[key]
            p50 = g["p50_ms"].dropna().tail(cfg.trend_nights).to_numpy(dtype=float)
            records.append({
                **dict(zip(SERIES, key)), "nights": g["run_id"].nunique(), "first_night": g["started_at"].iat[0],
                "last_night": r["started_at"], "last_run_id": r["run_id"], "latest_status": r["status"],
                "latest_p50_ms": r["p50_ms"], "baseline_p50_ms": r["baseline_p50_ms"], "delta_p50_pct": r["delta_p50_pct"],
                "trend": sparkline(p50), "slope_pct_per_night": theil_sen_pct(p50),
                "verdict": _verdict(r, kinds.get(key, [])), "latest_reason": r["reason"],
                "latest_ratio": r["ratio_vs_eager"], "baseline_ratio": r["baseline_ratio"],
                "delta_ratio_pct": r["delta_ratio_pct"],
            })  # fmt: skip
        table = pd.DataFrame(records, columns=cols)
    if csv:
        write_csv_atomic(table, Path(csv), columns=cols)
    return table


def write_csv_atomic(df: pd.DataFrame, path: Path, columns: list[str] | None = None) -> None:
    """pandas to_csv to a temporary name beside `path`, then rename."""
    columns = columns or COLUMNS
    with atomic_path(Path(path)) as tmp:
        df.to_csv(tmp, columns=columns, index=False, float_format="%.6g")


def read_results_csv(path: Path) -> pd.DataFrame:
    """results.csv back into a typed DataFrame (empty strings stay empty strings)."""
    if not Path(path).exists():
        raise UserError(f"{path}: no such results file")
    df = pd.read_csv(path, dtype={c: str for c in STRING_COLUMNS}, keep_default_na=False, na_values={
        c: [""] for c in COLUMNS if c not in STRING_COLUMNS})  # fmt: skip
    return coerce(df)


def update_latest(out: Path, run_dir: Path, started_at: str) -> Path:
    """Point <out>/latest at runs/<run_id> (relative), atomically; an older run never replaces a newer one."""
    out = Path(out)
    latest = out / "latest"
    target = os.path.relpath(run_dir, out)
    current = _latest_started_at(latest)
    if current and current > started_at:
        log.info("latest keeps pointing at a newer run (%s)", current)
        return latest
    if latest.exists() and not latest.is_symlink():
        raise UserError(f"{latest}: exists and is not a symlink; move it away")
    tmp = out / f".latest.tmp{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(target, tmp, target_is_directory=True)
    os.replace(tmp, latest)
    return latest


def sparkline(values: np.ndarray) -> str:
    """▁▂▃▅▇ of the values, scaled between their min and max."""
    if len(values) == 0:
        return ""
    lo, hi = float(np.min(values)), float(np.max(values))
    if hi - lo <= 1e-12 * max(abs(hi), 1):
        return SPARK[3] * len(values)
    return "".join(SPARK[min(7, int((v - lo) / (hi - lo) * 8))] for v in values)


def theil_sen_pct(values: np.ndarray) -> float | None:
    """Robust slope (median of pairwise slopes) per night, as a % of the median value."""
    n = len(values)
    if n < 3:
        return None
    slopes = [(values[j] - values[i]) / (j - i) for i in range(n) for j in range(i + 1, n)]
    med = float(np.median(values))
    return float(np.median(slopes)) / med * 100.0 if med > 0 else None


def _verdict(r, kinds: list[str]) -> str:
    if REGRESSION in kinds:
        return "regression"
    if BROKE in kinds:
        return "broke"
    if r["status"] in FAILED_STATUSES:
        return "failing"
    if FIXED in kinds:
        return "fixed"
    if SPEEDUP in kinds:
        return "faster"
    if "accuracy_drift" in kinds:
        return "accuracy drift"
    if "parity_drift" in kinds:
        return "parity drift"
    no_baseline = pd.isna(r["baseline_ratio"]) if pd.notna(r["ratio_vs_eager"]) else pd.isna(r["baseline_p50_ms"])
    if no_baseline and r["status"] == "passed":  # a paired series has none on a new host either
        return "new"
    return "ok" if r["status"] == "passed" else r["status"]


def _summary(df: pd.DataFrame, findings: list[Finding]) -> dict:
    return {"rows": len(df), "status": {k: int(v) for k, v in df["status"].value_counts().items()},
            "findings": {k: sum(f.kind == k for f in findings) for k in {f.kind for f in findings}}}  # fmt: skip


def _load_models(store: HistoryStore, models: list[str]) -> pd.DataFrame:
    frames = [store.load(model=m) for m in models] if models else [store.load()]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else coerce(pd.DataFrame())


def _history_cfg_of(info: dict) -> HistoryConfig:
    try:
        return HistoryConfig.model_validate(((info.get("config") or {}).get("history")) or {})
    except Exception:
        return HistoryConfig()


def _latest_started_at(latest: Path) -> str | None:
    try:
        return json.loads((latest / RUN_JSON).read_text()).get("started_at")
    except (OSError, ValueError):
        return None
