"""Everything a run needs, checked before any work starts: formats, tolerances, models, shapes, outputs."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import Callable, ContextManager

from edgebench.config import CONFIG_DIR, PipelineConfig
from edgebench.converters.registry import get_converter
from edgebench.errors import UserError
from edgebench.models.calibration import calibration_videos
from edgebench.models.io_check import check_outputs
from edgebench.models.registry import load_model_config
from edgebench.records import ModelRef

log = logging.getLogger(__name__)


def config_path_of(path: str | Path | None) -> Path:
    """The pipeline YAML a run reads: `path`, or configs/pipeline.yaml."""
    return Path(path) if path else CONFIG_DIR / "pipeline.yaml"


def check_config(config: PipelineConfig, config_path: str | Path | None = None) -> None:
    """Every configured precision has a parity tolerance (format names were checked when the config was read)."""
    where = config_path_of(config_path)
    precisions = dict.fromkeys(p for ps in config.formats.values() for p in ps)
    missing = [p for p in precisions if p not in config.parity.tolerances]
    if missing:
        raise UserError(f"{where}: field 'parity.tolerances': no tolerance for precision {', '.join(missing)}")
    calibrated = sorted({p for fmt, ps in config.formats.items() for p in ps if p in get_converter(fmt).calibrated})
    if calibrated and config.calibration.videos:
        try:
            calibration_videos(config.calibration.videos)  # listing only: a missing path fails before any work
        except UserError as e:
            raise UserError(f"{where}: {e}") from None
        if config.parity.random_clips:
            log.warning("%s: %s calibrate on video clips but parity also judges %d random clips, where a correct "
                        "file calibrated on video reaches about 29 dB and fails (docs/parity.md); set "
                        "parity.random_clips: 0 with a parity.video, or leave calibration.videos empty",
                        where, "/".join(calibrated), config.parity.random_clips)


def check_models(names: list[str], weights: str | None = None,
                 input_shape: tuple[int, ...] | None = None) -> list[ModelRef]:
    """Resolve each model and run it once on its example input (with the override shape)."""
    from edgebench.models.source import build_module, example_input, resolve_model

    refs = []
    for name in names:
        ref = resolve_model(name, weights, input_shape)
        check_outputs(ref, build_module(ref), example_input(ref))
        refs.append(ref)
    return refs


def check_run(config: PipelineConfig, config_path: str | Path | None = None, weights: str | None = None,
              input_shape: tuple[int, ...] | None = None,
              meanwhile: Callable[[], ContextManager] = contextlib.nullcontext) -> list[ModelRef]:
    """Model names and YAMLs (cheap), the config, then every model's forward pass; the first problem is a UserError.

    The forward passes run inside `meanwhile()`: `edgebench run` starts Prefect's server there, once
    the cheap checks have passed, so the two slow starts overlap.
    """
    for name in config.models:
        load_model_config(name)
    check_config(config, config_path)
    with meanwhile():
        return check_models(list(config.models), weights, input_shape)
