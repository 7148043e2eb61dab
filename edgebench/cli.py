"""The `edgebench` command line: thin wrappers over the package's functions."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from edgebench.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export PyTorch models to TorchScript, ONNX, Core ML and TFLite; check parity; benchmark; report.")
console = Console(width=None if sys.stdout.isatty() else 200)  # piped or logged: keep table rows whole
err_console = Console(stderr=True)

ModelOpt = typer.Option("resnet_mixed", "--model", "-m", help="Registered model name or a model YAML path.")
WeightsOpt = typer.Option(None, "--weights", help="A state dict file (loaded with weights_only=True).")


def _setup_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s", stream=sys.stderr)


@app.command()
def info(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt) -> None:
    """Print parameters, FLOPs, input/output spec and weights provenance of a model."""
    from edgebench.models.info import model_info
    from edgebench.models.source import resolve_model

    facts = model_info(resolve_model(model, str(weights) if weights else None))
    console.print(f"model        {facts['model']}")
    console.print(f"parameters   {facts['parameters']:,} (export-friendly form: {facts['parameters_export_friendly']:,})")
    console.print(f"FLOPs        {facts['gflop']:.2f} GFLOP per forward = {facts['gmac']:.2f} GMAC (counted by torch)")
    for spec in facts["inputs"]:
        console.print(f"input        {spec}")
    for spec in facts["outputs"]:
        console.print(f"output       {spec}")
    console.print(f"labels       {facts['labels']}")
    console.print(f"weights      {facts['weights']}")


@app.command()
def models() -> None:
    """List the registered models."""
    from edgebench.models.registry import known_models

    for name in known_models():
        console.print(name)


@app.command()
def demo(
    video: Path = typer.Argument(..., help="A video file (anything FFmpeg decodes)."),
    model: str = ModelOpt,
    weights: Optional[Path] = WeightsOpt,
    artifact: Optional[Path] = typer.Option(None, "--artifact", help="Run this exported artifact instead of PyTorch."),
    top: int = typer.Option(5, "--top", min=1, help="How many labels to print."),
) -> None:
    """Classify a video clip and print the top labels with probabilities."""
    from edgebench.demo import classify

    result = classify(video, model, str(weights) if weights else None, artifact, top)
    if result.random_weights:
        err_console.print(f"[bold yellow]warning:[/] {result.model} has random weights ({result.provenance}): "
                          "these labels are meaningless; pass --weights or put torchvision's file in the torch hub cache")
    console.print(f"{result.model} on {video} via {result.runtime}:")
    for label, prob in result.top:
        console.print(f"  {prob:7.2%}  {label}")


FormatsOpt = typer.Option(None, "--formats", help="Comma-separated formats to keep, e.g. onnx,tflite.")
OutOpt = typer.Option(None, "--out", help="Output folder (default: reports/ at the project root).")
ConfigOpt = typer.Option(None, "--config", help="Pipeline YAML (default: configs/pipeline.yaml).")
NoCacheOpt = typer.Option(False, "--no-cache", help="Export again even when a cached artifact matches.")
QuickOpt = typer.Option(False, "--quick", help="The short benchmark budget, for development.")
ShapeOpt = typer.Option(None, "--input-shape", help="Override the input shape, e.g. 1,3,4,32,32 (for fast checks).")


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
              runtimes: Optional[str] = None, devices: Optional[str] = None):
    from edgebench import pipeline
    from edgebench.config import load_pipeline_config

    cfg = pipeline.narrow_config(load_pipeline_config(config), _split(formats), runtimes=_split(runtimes),
                                 devices=_split(devices))
    return pipeline.new_run(cfg, out, quick=quick, use_cache=not no_cache)


@app.command()
def export(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
           out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
           input_shape: Optional[str] = ShapeOpt) -> None:
    """Export the configured formats and precisions (cached) and print a table of the artifacts."""
    from edgebench import pipeline
    from edgebench.converters.export import export_table
    from edgebench.models.source import resolve_model

    settings = _settings(config, formats, out, False, no_cache)
    ref = resolve_model(model, str(weights) if weights else None, _shape(input_shape))
    artifacts = [pipeline.export_one(ref, f, p, o, settings) for f, p, o in pipeline.planned_exports(settings.config)]
    console.print(export_table(artifacts))
    console.print(f"artifacts under {settings.cache_dir}")


@app.command()
def parity(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
           runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma-separated runtimes to keep."),
           out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
           input_shape: Optional[str] = ShapeOpt) -> None:
    """Export (cached), then compare every artifact on every runtime with the PyTorch reference."""
    from edgebench import pipeline
    from edgebench.parity.table import parity_table

    settings = _settings(config, formats, out, False, no_cache, runtimes)
    result = pipeline.run_model_sequential(model, settings, str(weights) if weights else None, _shape(input_shape),
                                           bench=False)
    console.print(parity_table(result.parity))


@app.command()
def bench(model: str = ModelOpt, weights: Optional[Path] = WeightsOpt, formats: Optional[str] = FormatsOpt,
          runtimes: Optional[str] = typer.Option(None, "--runtimes", help="Comma-separated runtimes to keep."),
          devices: Optional[str] = typer.Option(None, "--devices", help="Comma-separated: local, aihub:<device>."),
          quick: bool = QuickOpt, out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt,
          no_cache: bool = NoCacheOpt, input_shape: Optional[str] = ShapeOpt) -> None:
    """Export (cached), then measure latency per artifact, runtime and device, one at a time."""
    from edgebench import pipeline
    from edgebench.benchmarks.local import add_speedups
    from edgebench.benchmarks.table import latency_table

    settings = _settings(config, formats, out, quick, no_cache, runtimes, devices)
    result = pipeline.run_model_sequential(model, settings, str(weights) if weights else None, _shape(input_shape),
                                           parity=False)
    console.print(latency_table(add_speedups(result.latency)))


@app.command()
def run(model: Optional[list[str]] = typer.Option(None, "--model", "-m", help="Model(s) to run (default: configured)."),
        formats: Optional[str] = FormatsOpt, quick: bool = QuickOpt, out: Optional[Path] = OutOpt,
        config: Optional[Path] = ConfigOpt, no_cache: bool = NoCacheOpt,
        devices: Optional[str] = typer.Option(None, "--devices", help="Comma-separated: local, aihub:<device>, queue:<name>."),
        fail_on_regression: bool = typer.Option(False, "--fail-on-regression", help="Exit 1 when a regression is found."),
        input_shape: Optional[str] = ShapeOpt) -> None:
    """Run the whole export-and-benchmark flow (Prefect, no server needed) and print the report path."""
    os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")  # our step lines say enough
    from edgebench.flows.export_and_benchmark import export_and_benchmark

    shape = _shape(input_shape)
    state = export_and_benchmark(models=model or None, formats=_split(formats), devices=_split(devices),
                                 quick=quick, out=str(out) if out else None, use_cache=not no_cache,
                                 fail_on_regression=fail_on_regression, config_path=str(config) if config else None,
                                 input_shape=list(shape) if shape else None, return_state=True)
    if not state.is_completed():
        err_console.print(f"edgebench: the flow ended {state.name}: {state.message}")
        raise typer.Exit(1)
    console.print(f"report: {state.result()}")


@app.command()
def report(run: str = typer.Argument(..., help="A run folder, or a run id under --out."), out: Optional[Path] = OutOpt) -> None:
    """Rebuild the HTML report of a past run."""
    from edgebench.pipeline import DEFAULT_OUT
    from edgebench.reports.writer import rebuild_report, run_dir_of

    folder = Path(run) if Path(run).is_dir() else run_dir_of(Path(out or DEFAULT_OUT), run)
    console.print(f"report: {rebuild_report(folder)}")


@app.command()
def history(model: Optional[str] = typer.Option(None, "--model", "-m", help="Only this model's series."),
            out: Optional[Path] = OutOpt, config: Optional[Path] = ConfigOpt,
            csv: Optional[Path] = typer.Option(None, "--csv", help="Where to export the table (default: <out>/history.csv).")) -> None:
    """Print every series with its trend and latest verdict, and export it as CSV."""
    import pandas as pd
    from rich.table import Table

    from edgebench.config import load_pipeline_config
    from edgebench.pipeline import DEFAULT_OUT
    from edgebench.reports.writer import history_table

    out = Path(out or DEFAULT_OUT)
    csv = csv or out / "history.csv"
    table = history_table(out, model, load_pipeline_config(config).history, csv=csv)
    if table.empty:
        console.print("no history yet")
        return
    shown = Table(*table.columns)
    for row in table.itertuples(index=False):
        shown.add_row(*("" if pd.isna(v) else str(v) for v in row))
    console.print(shown)
    console.print(f"exported to {csv}")


@app.command()
def serve() -> None:
    """Start a local Prefect server, work pool, limits, deployments and a worker (idempotent)."""
    from edgebench.flows.serve import serve as start

    start(console.print)


@app.command()
def stop() -> None:
    """Stop exactly the processes `edgebench serve` started."""
    from edgebench.flows.serve import stop as halt

    halt(console.print)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
    from edgebench.prefect_env import apply_defaults

    apply_defaults()
    _setup_logging()
    try:
        app(standalone_mode=False)
    except UserError as e:
        print(f"edgebench: error: {e}", file=sys.stderr)  # plain print: one line, never wrapped
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(130)
    except Exception as e:  # click usage errors come through here in non-standalone mode
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
