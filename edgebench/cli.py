"""The `edgebench` command line: thin wrappers over the package's functions."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from edgebench.errors import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Export PyTorch models to TorchScript, ONNX, Core ML and TFLite; check parity; benchmark; report.")
console = Console()
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


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2."""
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
