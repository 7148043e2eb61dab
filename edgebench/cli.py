"""The `edgebench` command line: thin wrappers over the package's functions."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer
from rich.console import Console
from typer.exceptions import TyperException

from edgebench import catalogue, interrupts, pipeline
from edgebench.benchmarks.local import add_speedups
from edgebench.benchmarks.peak import describe_limit
from edgebench.benchmarks.table import latency_table
from edgebench.catalogue import shown_device
from edgebench.checking import check_file
from edgebench.config import load_pipeline_config
from edgebench.console import log_to, set_verbose, setup
from edgebench.converters.export import export_table
from edgebench.errors import UserError, plain, reason_of
from edgebench.evaluation.table import accuracy_table
from edgebench.flows.serve import serve as start, stop as halt
from edgebench.models.registry import known_models, load_model_config
from edgebench.parity.localize import localization_table
from edgebench.parity.table import parity_table
from edgebench.pipeline import DEFAULT_OUT
from edgebench.prefect_env import apply_defaults
from edgebench.preflight import check_config, check_models, check_run
from edgebench.records import REPAIR_FAILED
from edgebench.rejudge import rejudge_run, write_rejudged
from edgebench.repair.run import repair_config
from edgebench.tables import history_view, run_summary

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export PyTorch models to every registered on-device format; check parity; benchmark; report.")
console = Console(width=None if sys.stdout.isatty() else 200)  # piped or logged: keep table rows whole
err_console = Console(stderr=True)

ModelOpt = typer.Option("resnet_mixed", "--model", "-m", help="Registered model name or a model YAML path.")
WeightsOpt = typer.Option(None, "--weights", help="A state dict file (loaded with weights_only=True).")


@app.callback()
def _global_options(verbose: bool = typer.Option(False, "--verbose", "-v", help="Also show other libraries' log lines "
                                                 "(coremltools, torch, Prefect) on the console.")) -> None:
    set_verbose(verbose)


@app.command()
def info(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt) -> None:
    """Print parameters, FLOPs, input/output spec and weights provenance of a model."""
    from edgebench.models.info import model_info

    facts = model_info(_checked_model(model, weights, None))
    console.print(f"model        {facts['model']}")
    console.print(f"parameters   {facts['parameters']:,} (export-friendly form: {facts['parameters_export_friendly']:,})")
    console.print(f"FLOPs        {facts['gflop']:.2f} GFLOP per forward = {facts['gmac']:.2f} GMAC (counted by torch)")
    for spec in facts["inputs"]:
        console.print(f"input        {spec}")
    for spec in facts["outputs"]:
        console.print(f"output       {spec}")
    console.print(f"labels       {facts['labels']}")
    console.print(f"sampling     {facts['sampling']}" + ("" if facts["sampling_declared"] else
                  " (the default: the model YAML declares no preprocess.sampling; docs/evaluation.md)"))
    console.print(f"weights      {facts['weights']}")
    why = facts["form_reason"] or "lowered by " + facts["form_driver"]
    console.print(f"export form  {facts['form']} ({why}); the eager baseline runs the 3d form")
    if not facts["form_reason"]:
        if facts["lowered_share"] is not None:
            console.print(f"lowered      {100 * facts['lowered_share']:.2f} % of the FLOPs, on the folded (N*T, C, H, W) tensor")
        kept = ", ".join(f"{op} ({why})" for op, why in facts["stayed_3d"].items())
        console.print(f"stayed 3-D   {kept or 'none: every 3D conv, pool and norm is lowered'}")
        if facts["unfolded"]:
            console.print(f"5-D view at  {', '.join(f'{op} x{n}' for op, n in facts['unfolded'].items())}")
    for label, key in (("ops (export)", "op_mix"), ("ops (3d)    ", "op_mix_3d")):
        console.print(f"{label} {', '.join(f'{k} {v}' for k, v in facts[key].items())}")
    for name, entry in catalogue.formats().items():  # what each catalogued format makes of it
        console.print(f"format       {name}: {', '.join(entry.precisions)} on {', '.join(entry.runtimes) or 'no runtime'}, "
                      f"{entry.export_form} form; layer taps: {'yes' if entry.tapper else 'no'}")


@app.command()
def models() -> None:
    """List the registered models."""
    for name in known_models():
        console.print(name)


@app.command()
def demo(
    video: Path = typer.Argument(..., help="A video file (anything FFmpeg decodes)."),
    model: str = ModelOpt,
    weights: Optional[Path] = WeightsOpt,
    artifact: Optional[Path] = typer.Option(None, "--artifact", help="Run this exported artifact instead of PyTorch."),
    top: int = typer.Option(5, "--top", min=1, help="How many labels to print."),
    clips: int = typer.Option(1, "--clips", min=1, help="Evenly spaced clips, softmax averaged (as evaluate's "
                              "--clips-per-video)."),
) -> None:
    """Classify a video by the model's clip sampling and print the top labels with probabilities."""
    from edgebench.demo import classify

    result = classify(video, model, str(weights) if weights else None, artifact, top, clips)
    if result.random_weights:
        err_console.print(f"[bold yellow]warning:[/] {result.model} has random weights ({result.provenance}): "
                          "these labels are meaningless; pass --weights or put torchvision's file in the torch hub cache")
    console.print(f"{result.model} on {video} via {result.runtime} ({result.clips} clip(s), {result.sampling}):")
    for label, prob in result.top:
        console.print(f"  {prob:7.2%}  {label}")


FormatsOpt = typer.Option(None, "--formats", help="Comma-separated formats to keep, e.g. onnx,tflite.")
OutOpt = typer.Option(None, "--out", help="Output folder (default: reports/ at the project root).")
ConfigOpt = typer.Option(None, "--config", help="Pipeline YAML (default: configs/pipeline.yaml).")
NoCacheOpt = typer.Option(False, "--no-cache", help="Export again even when a cached artifact matches.")
QuickOpt = typer.Option(False, "--quick", help="The short benchmark budget, for development.")
ShapeOpt = typer.Option(None, "--input-shape", help="Override the input shape, e.g. 1,3,4,32,32 (for fast checks).")
CalibrationOpt = typer.Option(None, "--calibration", help="Calibrate int8/w8a16 on these videos instead of "
                              "calibration.videos: files, folders, <label>/<video> trees or CSV manifests (repeatable).")


def _split(value: Optional[str]) -> Optional[list[str]]:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


def _shape(value: Optional[str]) -> Optional[tuple[int, ...]]:
    if not value:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise UserError(f"--input-shape: expected integers separated by commas, got {value!r}") from None


def _settings(config: Optional[Path], formats: Optional[str], out: Optional[Path], quick: bool, no_cache: bool,
              runtimes: Optional[str] = None, devices: Optional[str] = None, calibration: Optional[list[str]] = None):
    cfg = pipeline.narrow_config(load_pipeline_config(config), _split(formats), runtimes=_split(runtimes),
                                 devices=_split(devices), calibration=calibration)
    check_config(cfg, config)
    return pipeline.new_run(cfg, out, quick=quick, use_cache=not no_cache)


def _checked_model(model: str, weights: Optional[Path], input_shape: Optional[str]):
    """The model's ModelRef once it ran on its example input with the declared output shapes."""
    return check_models([model], str(weights) if weights else None, _shape(input_shape))[0]


@app.command()
def export(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
           out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
           input_shape: Optional[str] = ShapeOpt, calibration: Optional[list[str]] = CalibrationOpt) -> None:
    """Export the configured formats and precisions (cached) and print a table of the artifacts."""
    settings = _settings(config, formats, out, False, no_cache, calibration=calibration)
    ref = _checked_model(model, weights, input_shape)
    artifacts = [pipeline.export_one(ref, f, p, o, settings) for f, p, o in pipeline.planned_exports(settings.config)]
    console.print(export_table(artifacts))
    console.print(f"artifacts under {settings.cache_dir}")


@app.command()
def parity(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
           runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma-separated runtimes to keep."),
           out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
           input_shape: Optional[str] = ShapeOpt, calibration: Optional[list[str]] = CalibrationOpt,
           rejudge: Optional[str] = typer.Option(None, "--rejudge", help="A run folder or run id: judge its kept "
                                                 "outputs again with --config's tolerances, running no model.")) -> None:
    """Export (cached), then compare every artifact on every runtime with the PyTorch reference; with --rejudge
    RUN, that run's saved outputs judged again (a new run folder beside it, outside the history)."""
    if rejudge:
        _rejudge(_run_folder(rejudge, out), config)
        return
    settings = _settings(config, formats, out, False, no_cache, runtimes, calibration=calibration)
    _checked_model(model, weights, input_shape)
    log_to(settings.run_dir)
    result = pipeline.run_model_sequential(model, settings, str(weights) if weights else None, _shape(input_shape),
                                           bench=False)
    console.print(parity_table(result.parity))


def _rejudge(folder: Path, config: Optional[Path]) -> None:
    result = rejudge_run(folder, load_pipeline_config(config) if config else None)
    paths = write_rejudged(result)
    console.print(parity_table(result.run.parity))
    for old, new in result.changed:
        console.print(f"{new.model} {new.format} {new.precision} {new.runtime}{shown_device(new.device)}: "
                      f"{old.status} -> {new.status}")
    console.print(f"{len(result.changed)} verdict(s) changed, nothing run; report: {paths.report_html}")


def _run_folder(run: str, out: Optional[Path]) -> Path:
    """A run folder, or a run id under --out."""
    from edgebench.reports.writer import run_dir_of  # imports pandas

    return Path(run) if Path(run).is_dir() else run_dir_of(Path(out or DEFAULT_OUT), run)


@app.command()
def bench(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
          runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma-separated runtimes to keep."),
          devices: Optional[str] = typer.Option(None, "--devices", help="Comma-separated: local, aihub:<device>."),
          quick: bool = QuickOpt, out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt,
          no_cache: bool = NoCacheOpt, input_shape: Optional[str] = ShapeOpt) -> None:
    """Export (cached), then measure latency per artifact, runtime and device, one at a time."""
    settings = _settings(config, formats, out, quick, no_cache, runtimes, devices)
    _checked_model(model, weights, input_shape)
    log_to(settings.run_dir)
    result = pipeline.run_model_sequential(model, settings, str(weights) if weights else None, _shape(input_shape),
                                           parity=False)
    console.print(latency_table(add_speedups(result.latency)))


@app.command()
def run(model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Model(s) to run (default: configured)."),
        formats: Optional[str] = FormatsOpt, quick: bool = QuickOpt, out: Optional[Path] = OutOpt,
        config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
        devices: Optional[str] = typer.Option(None, "--devices", help="Comma-separated: local, aihub:<device>, queue:<name>."),
        fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="Exit 1 when a regression is found."),
        input_shape: Optional[str] = ShapeOpt, weights: Optional[Path] = WeightsOpt,
        calibration: Optional[list[str]] = CalibrationOpt) -> None:
    """Run the whole export-and-benchmark flow (Prefect, no server needed); print a summary and the report path."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")  # our step lines say enough
    from edgebench.flows import progress

    shape = _shape(input_shape)
    # Everything checked before the flow starts: a bad name or shape is one line, exit 2. The temporary server
    # starts during the models' forward passes, after the cheap checks.
    check_run(pipeline.narrow_config(load_pipeline_config(config), _split(formats), devices=_split(devices),
                                     models=model or None, calibration=calibration), config,
              weights=str(weights) if weights else None,
              input_shape=shape, meanwhile=interrupts.server_starting)
    from edgebench.flows.export_and_benchmark import export_and_benchmark

    try:  # Ctrl-C / SIGTERM: children killed, run folder marked interrupted, exit 130 / 143
        state = interrupts.run_flow(export_and_benchmark, models=model or None, formats=_split(formats),
                                    devices=_split(devices), budget="quick" if quick else "full",
                                    out=str(out) if out else None,
                                    use_cache=not no_cache, fail_on_regression=fail_on_regression,
                                    config_path=str(config) if config else None,
                                    input_shape=list(shape) if shape else None,
                                    weights=str(weights) if weights else None, calibration=calibration or None)
    except interrupts.Interrupted as e:
        print(f"edgebench: {e}; the run stopped, history and reports/latest untouched", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    finally:
        progress.finish()
    if not state.is_completed():
        _flow_failure(state)
    report_html = Path(state.result())
    _print_summary(report_html.parent / "results.csv")
    console.print(f"report: {report_html}")


def _flow_failure(state) -> None:
    """A UserError inside the flow is still one line and exit 2; anything else one line and exit 1."""
    try:
        state.result()
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 - the flow's own exception, shown as its first line
        print(f"edgebench: the flow ended {state.name}: {reason_of(e)}", file=sys.stderr)
    else:
        print(f"edgebench: the flow ended {state.name}", file=sys.stderr)
    raise typer.Exit(1)


def _print_summary(results_csv: Path) -> None:
    from edgebench.reports.writer import read_results_csv

    if results_csv.exists():
        console.print(run_summary(read_results_csv(results_csv)))
        _print_limit(results_csv.with_name("run.json"))


def _print_limit(run_json: Path) -> None:
    """The host's limit the summary's `% peak` is taken against (run.json's host.peak)."""

    try:
        peak = json.loads(run_json.read_text()).get("host", {}).get("peak")
    except (OSError, ValueError):
        return
    if peak is not None:
        console.print(f"limit: {describe_limit(peak)}", highlight=False)


@app.command()
def report(run: str = typer.Argument(..., help="A run folder, or a run id under --out."), out: Optional[Path] = OutOpt) -> None:
    """Rebuild the HTML report of a past run."""
    from edgebench.reports.writer import rebuild_report  # imports pandas

    console.print(f"report: {rebuild_report(_run_folder(run, out))}")


@app.command()
def history(model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model's series."),
            out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt,
            csv: Optional[Path] = typer.Option(None, "--csv", help="Where to export every column (default: <out>/history.csv)."),
            wide: bool = typer.Option(False, "--wide", help="Every column (first and last night, run id, slope, reason).")) -> None:
    """Print every series with its trend and latest verdict (80 columns; --wide: all), and export it as CSV."""
    from edgebench.reports.writer import history_table

    out = Path(out or DEFAULT_OUT)
    csv = csv or out / "history.csv"
    table = history_table(out, model, load_pipeline_config(config).history, csv=csv)
    if table.empty:
        console.print("no history yet")
        return
    console.print(history_view(table, wide=wide))
    console.print(f"exported to {csv}")


@app.command()
def serve(fleet_workers: Optional[int] = typer.Option(None, "--fleet-workers", min=0, help="Fleet workers to start "
                                                       "here for the fanned-out nightly (default: fleet.workers)."),
          cpus_per_worker: Optional[int] = typer.Option(None, "--cpus-per-worker", min=0, help="Pin each fleet "
                                                         "worker to its own cores (default: fleet.cpus_per_worker).")
          ) -> None:
    """Start a local Prefect server, work pool, limits, deployments and workers (idempotent)."""
    start(console.print, fleet_workers=fleet_workers, cpus_per_worker=cpus_per_worker)


@app.command()
def stop() -> None:
    """Stop exactly the processes `edgebench serve` started."""
    halt(console.print)


@app.command()
def evaluate(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt,
             dataset: Optional[str] = typer.Option(None, "--dataset", help="<root>/<label>/<video> folder or a CSV "
                                                   "manifest path,label[,start_s,end_s] (default: the model YAML's)."),
             clips_per_video: Optional[int] = typer.Option(None, "--clips-per-video", min=1, help="Clips per video."),
             max_videos: Optional[int] = typer.Option(None, "--max-videos", min=1, help="A class-balanced subset."),
             formats: Optional[str] = FormatsOpt,
             runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma-separated runtimes to keep."),
             out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
             calibration: Optional[list[str]] = CalibrationOpt) -> None:
    """Export (cached), then score every artifact on every runtime on a labelled video set, against eager."""
    if not dataset and not load_model_config(model).evaluation.dataset:
        raise UserError(f"evaluate: no dataset for {model}: pass --dataset or set evaluation.dataset in its model YAML")
    settings = _settings(config, formats, out, False, no_cache, runtimes, calibration=calibration)
    chosen = {"dataset": dataset, "clips_per_video": clips_per_video, "max_videos": max_videos}
    result = pipeline.run_model_sequential(model, settings, str(weights) if weights else None, parity=False,
                                           bench=False, evaluate=True, evaluation=chosen)
    console.print(accuracy_table(result.accuracy))
    paths = pipeline.finish_run(settings, [result])
    console.print(f"results: {paths.results_csv}")
    console.print(f"report: {paths.report_html}")


@app.command()
def repair(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
           precision: str = typer.Option("int8", "--precision", help="The reduced precision to repair: int8, w8, w8a16."),
           dataset: Optional[str] = typer.Option(None, "--dataset", help="Judge by the accuracy bound on this labelled "
                                                 "set (folder per class or CSV); default: the parity bound."),
           max_videos: Optional[int] = typer.Option(None, "--max-videos", min=1, help="A class-balanced subset."),
           bench: bool = typer.Option(True, "--bench/--no-bench", help="Measure fp32, quantized and mixed latency."),
           quick: bool = QuickOpt, out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt,
           no_cache: bool = NoCacheOpt, input_shape: Optional[str] = ShapeOpt) -> None:
    """Repair failing reduced-precision files: the fewest layers kept in float that make each pass its bound
    (docs/repair.md); exit 0 repaired or nothing to repair, 1 a file no small layer set repairs."""
    from edgebench.repair.table import repair_table
    from edgebench.reports.writer import read_results_csv

    cfg = repair_config(load_pipeline_config(config), _split(formats), precision)
    check_config(cfg, config)
    settings = pipeline.new_run(cfg, out, quick=quick, use_cache=not no_cache)
    _checked_model(model, weights, input_shape)
    log_to(settings.run_dir)
    chosen = {"dataset": dataset, "max_videos": max_videos}
    result = pipeline.run_model_sequential(model, settings, str(weights) if weights else None, _shape(input_shape),
                                           bench=bench, evaluate=dataset is not None, evaluation=chosen)
    paths = pipeline.finish_run(settings, [result])
    console.print(repair_table(result.repairs, read_results_csv(paths.results_csv)))
    for r in result.repairs:
        if r.trials_path:
            console.print(f"{r.format} {r.precision}: trials in {r.trials_path}")
    console.print(f"results: {paths.results_csv}")
    console.print(f"report: {paths.report_html}")
    raise typer.Exit(1 if any(r.status == REPAIR_FAILED for r in result.repairs) else 0)


@app.command()
def check(artifact: Path = typer.Argument(..., help="An artifact file (or .mlpackage folder) built anywhere."),
          model: str = ModelOpt, weights: Optional[Path] = WeightsOpt,
          runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma-separated runtimes to keep."),
          precision: str = typer.Option("fp32", "--precision", help="The artifact's precision: picks the tolerance."),
          fmt: Optional[str] = typer.Option(None, "--format", help="The format, when the file does not tell."),
          bench: bool = typer.Option(False, "--bench", help="Also measure latency (and the eager baseline)."),
          localize: bool = typer.Option(False, "--localize", help="Per-layer error of every row, not only failing ones."),
          quick: bool = QuickOpt, config: Optional[Path] = ConfigOpt, input_shape: Optional[str] = ShapeOpt,
          out: Optional[Path] = typer.Option(None, "--out", help="Output folder (default: reports/checks/).")) -> None:
    """Check one artifact file against the model: io spec, parity per runtime, latency with --bench; exit 0 pass,
    1 fail, 2 bad input."""
    settings = _settings(config, None, out or DEFAULT_OUT / "checks", quick, False, runtimes)  # own history
    log_to(settings.run_dir)
    outcome = check_file(artifact, model, settings, str(weights) if weights else None, _shape(input_shape),
                         precision, fmt, bench=bench, localize_all=localize)
    console.print(parity_table(outcome.parity))
    for loc in outcome.localizations:
        console.print(localization_table(loc))
    if outcome.latency:
        console.print(latency_table(outcome.latency))
    console.print(f"report: {outcome.report_html}")
    console.print(f"check {outcome.artifact.format} {outcome.artifact.path}: "
                  + ("passed" if outcome.exit_code == 0 else "FAILED"))
    raise typer.Exit(outcome.exit_code)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: a usage error prints the usage line and one error line, a user error one line; both exit 2."""
    apply_defaults()
    setup()  # before any library is imported: their log lines go to the run's log file
    try:
        code = app(args=argv, prog_name="edgebench", standalone_mode=False)
    except UserError as e:
        _fail(str(e))
    except TyperException as e:  # typer 0.29 vendors click: its usage errors are typer._click exceptions
        _usage_error(e)
    except typer.Abort:
        sys.exit(130)
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"edgebench: error: {' '.join(plain(message).split())}", file=sys.stderr)  # plain print: one line, never wrapped
    sys.exit(code)


def _usage_error(e: TyperException) -> NoReturn:
    """Click's usage line, then one error line (click would add a hint line and a box)."""
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError" and ctx is not None:  # bare `edgebench`: the help, not an error
        print(ctx.get_help())
        sys.exit(0)
    if ctx is not None:
        print(ctx.get_usage(), file=sys.stderr)
    hint = f" (see '{ctx.command_path if ctx is not None else 'edgebench'} --help')"
    _fail(e.format_message() + hint, getattr(e, "exit_code", 2) or 2)
