"""`edgebench parity --rejudge RUN [--config C]`: a past run's parity verdicts again, from its kept outputs and
the tolerances (and localization rule) of another config; no model is built and no runtime started.

Every parity row of a run points at the outputs its session saved (ParityResult.outputs_path) and at the
reference they were judged against; the verdict is a pure function of those files and a tolerance
(parity/verdict.py), and the culprit layer a pure function of the saved per-layer errors
(parity/localize.judged_table). The re-judged run is written beside the original as
`<run id>-rejudged-<suffix>`, with its own results.csv and report, and never enters the history.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgebench.config import PipelineConfig, validate
from edgebench.errors import UserError
from edgebench.models.inputs import load_inputs
from edgebench.parity.localize import Localization, judged_table, record_localization
from edgebench.parity.outputs import load_outputs
from edgebench.parity.verdict import judged
from edgebench.pipeline import parity_runtimes
from edgebench.records import PARITY_FAILED, PASSED, ParityResult, RunData, write_json_atomic
from edgebench.reports.runinfo import INTERRUPTED, WHERE, run_from_dict
from edgebench.runs import utc_now

METRICS = ("max_abs_err", "max_abs_index", "mean_abs_err", "max_rel_err", "cosine", "psnr_db", "top1_agree",
           "top5_agree", "min_passing_atol")


@dataclass
class Rejudged:
    """The re-judged run, where its outputs came from (runinfo.WHERE) and the rows whose status changed."""

    run: RunData
    where: dict
    changed: list[tuple[ParityResult, ParityResult]] = field(default_factory=list)


def load_run(run_dir: Path) -> tuple[RunData, dict]:
    """The records of a finished run folder and its run.json; anything else is a UserError naming it."""
    path = Path(run_dir) / "run.json"
    if not path.exists():
        raise UserError(f"{run_dir}: not a run folder (no run.json)")
    info = json.loads(path.read_text())
    if info.get("status") == INTERRUPTED:
        raise UserError(f"{run_dir}: the run was interrupted ({info.get('reason')}); it has no verdicts to re-judge")
    return run_from_dict(info["records"]), info


def run_config(run: RunData, where: Path) -> PipelineConfig:
    """The pipeline config the run was made with (run.json keeps it)."""
    return validate(PipelineConfig, {k: v for k, v in run.config.items() if k in PipelineConfig.model_fields}, where)


def rejudge_row(row: ParityResult, config: PipelineConfig, localization_dir: Path) -> ParityResult:
    """One row judged again from its kept outputs; a row without outputs (skipped, runtime_failed) stays as it was."""
    if row.status not in (PASSED, PARITY_FAILED) or not row.outputs_path:
        return row
    tolerance = config.parity.tolerances.get(row.precision)
    if tolerance is None:
        raise UserError(f"parity.tolerances: no tolerance for precision {row.precision} (row {row.format} {row.runtime})")
    fresh = replace(row, **{m: None for m in METRICS}, reason="", first_divergent_layer="", localization_path="")
    new = judged(fresh, load_outputs(row.outputs_path)[0], load_inputs(Path(row.reference_path)), tolerance)
    if row.localization_path and Path(row.localization_path).exists():
        relocalize(new, Localization.load(row.localization_path), config, localization_dir)
    elif new.status == PARITY_FAILED and row.status == PASSED:
        new.reason += "; not localized (it passed when it ran: `edgebench check --localize` names the layer)"
    return new


def relocalize(row: ParityResult, loc: Localization, config: PipelineConfig, folder: Path) -> None:
    """The saved per-layer errors judged by the config's localization rule; the new table saved in `folder`."""
    again = judged_table(loc, [asdict(layer) for layer in loc.layers], config.localize)
    path = folder / f"{row.model}-{row.format}-{row.precision}.json"  # one per artifact, as in a run
    write_json_atomic(path, again.to_dict())
    record_localization(row, again, path)


def rejudge_run(run_dir: Path, config: PipelineConfig | None = None) -> Rejudged:
    """The run's parity rows judged again (with `config`'s tolerances, else the run's own), as a new run."""
    run, info = load_run(run_dir)
    config = config or run_config(run, Path(run_dir) / "run.json")
    run_id = f"{run.run_id}-rejudged-{secrets.token_hex(2)}"
    folder = Path(run.out_dir or Path(run_dir).parent.parent) / "runs" / run_id / "localization"
    parity = [rejudge_row(row, config, folder) for row in run.parity]
    changed = [(old, new) for old, new in zip(run.parity, parity) if old.status != new.status]
    again = replace(run, run_id=run_id, ended_at=utc_now(), parity=parity,
                    config={**config.model_dump(mode="json"), "rejudged_from": run.run_id})
    return Rejudged(again, {k: info[k] for k in WHERE if k in info}, changed)


def write_rejudged(result: Rejudged):
    """results.csv, run.json and report.html of the re-judged run, outside the history and `latest`."""
    from edgebench.reports.writer import write_run_reports  # imports pandas

    config = run_config(result.run, result.run.run_id)
    return write_run_reports(result.run, Path(result.run.out_dir), config.history, publish_prefect=False, record=False,
                             runtimes_for=lambda fmt: parity_runtimes(fmt, config), where=result.where)
