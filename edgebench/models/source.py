"""Resolve a registered model into a ModelRef, and rebuild its module from that ref anywhere."""

from __future__ import annotations

import functools
import hashlib
import importlib
import importlib.util
import logging
import sys
from pathlib import Path

import torch
from torch import nn

from edgebench.config import ModelConfig, stable_hash
from edgebench.errors import UserError
from edgebench.models import rewrites
from edgebench.models import weights as weights_mod
from edgebench.models.friendly import make_export_friendly
from edgebench.models.io_check import check_input_shape
from edgebench.models.lowering import LoweringReport
from edgebench.models.lowering_graph import lower_3d, trace
from edgebench.models.registry import load_model_config, model_config_path
from edgebench.records import ModelRef, TensorSpec

log = logging.getLogger(__name__)


def _factory(cfg: ModelConfig, config_path: Path):
    kind, _, attr = cfg.source.rpartition(":")
    if kind == "torchvision":
        import torchvision.models.video as tv_video

        try:
            return getattr(tv_video, attr)
        except AttributeError:
            raise UserError(f"{config_path}: field 'source': torchvision has no video model '{attr}'") from None
    if kind.endswith(".py"):
        file = Path(kind)
        if not file.is_absolute() and not file.exists():
            file = config_path.parent / kind
        if not file.exists():
            raise UserError(f"{config_path}: field 'source': no such file {kind}")
        spec = importlib.util.spec_from_file_location(f"edgebench_user_{file.stem}", file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # as an import does: a dataclass in the file looks its module up there
        try:
            spec.loader.exec_module(module)
        except ImportError as e:  # the file's own imports: say which, not a traceback
            sys.modules.pop(spec.name, None)
            raise UserError(f"{config_path}: field 'source': {file} cannot be loaded ({e}; is its package on "
                            f"PYTHONPATH?)") from None
    else:
        try:
            module = importlib.import_module(kind)
        except ImportError as e:
            raise UserError(f"{config_path}: field 'source': cannot import {kind} ({e})") from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise UserError(f"{config_path}: field 'source': {kind} has no attribute '{attr}'")
    return fn


def build_base(cfg: ModelConfig, config_path: Path, weights_path: str | None) -> tuple[nn.Module, str]:
    """The model as its source defines it (no rewrites), with weights; returns (module, provenance)."""
    torch.manual_seed(cfg.seed)  # random init is reproducible: the same seed gives the same weights
    model = _factory(cfg, config_path)()
    provenance = weights_mod.load_into(model, cfg, weights_path)
    return model.eval(), provenance


def labels_for(cfg: ModelConfig, config_path: Path) -> tuple[str, ...]:
    if cfg.labels is None:
        return ()
    if isinstance(cfg.labels, list):
        return tuple(cfg.labels)
    if cfg.labels == "torchvision":
        return tuple(weights_mod.torchvision_weights(cfg).meta["categories"])
    path = Path(cfg.labels)
    path = path if path.exists() else config_path.parent / cfg.labels
    if not path.exists():
        raise UserError(f"{config_path}: field 'labels': no such file {cfg.labels}")
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def state_dict_sha256(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def resolve_model(name: str, weights_path: str | None = None, input_shape: tuple[int, ...] | None = None) -> ModelRef:
    """Validate the config, load the weights once and describe the result as a ModelRef."""
    path = model_config_path(name)
    cfg = load_model_config(name)
    if input_shape is not None:
        check_input_shape(TensorSpec(cfg.inputs[0].name, tuple(cfg.inputs[0].shape)), tuple(input_shape), path)
    base, provenance = build_base(cfg, path, weights_path)
    if provenance.startswith("random"):
        log.warning("%s: no pretrained weights found, using seeded random weights (%s): "
                    "latency is real, predictions are meaningless", cfg.name, provenance)
    inputs = tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in cfg.inputs)
    if input_shape is not None:
        inputs = (TensorSpec(inputs[0].name, tuple(input_shape), inputs[0].dtype),) + inputs[1:]
    outputs = tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in cfg.outputs)
    return ModelRef(
        name=cfg.name,
        config_path=str(path.resolve()),
        weights_path=str(Path(weights_path).resolve()) if weights_path else None,
        provenance=provenance,
        weights_sha256=state_dict_sha256(base),
        # evaluation settings change no artifact: leave them out of the hash the export cache keys on
        config_hash=stable_hash(cfg.model_dump(mode="json", exclude={"evaluation"})),
        inputs=inputs,
        outputs=outputs,
        labels=labels_for(cfg, path),
        input_override=tuple(input_shape) if input_shape else None,
    )


@functools.lru_cache(maxsize=4)
def _build_cached(ref: ModelRef, lowered: bool, fmt: str | None) -> tuple[nn.Module, LoweringReport]:
    if fmt is not None and not rewrites.needed(fmt):  # no rewrite for this format: the format-free build
        return _build_cached(ref, lowered, None)
    cfg = load_model_config(ref.config_path)
    base, _ = build_base(cfg, Path(ref.config_path), ref.weights_path)
    rank = len(ref.inputs[0].shape)
    model = make_export_friendly(base, cfg.export_friendly, cfg.preprocess, input_rank=rank)
    check = example_input(ref, seed=1)  # a check input apart from the converters' example
    if not lowered:
        report = LoweringReport(reason="the unlowered form was asked for")
    elif not cfg.export_friendly.lower_3d:
        report = LoweringReport(reason="export_friendly.lower_3d is false")
    else:
        model, report = lower_3d(model, check)
        if report.reason:
            log.warning("%s: the 2D lowering is not applied: %s", ref.name, report.reason)
    if fmt is not None:
        model, report.rewrites = _rewritten(model, fmt, check)
    return model.eval(), report


def _rewritten(model: nn.Module, fmt: str, check: torch.Tensor) -> tuple[nn.Module, list[str]]:
    """`model` with the export-friendly rewrites format `fmt` needs (models/rewrites.py), and their names."""
    with torch.no_grad():
        want = model(check)
    traced = model if isinstance(model, torch.fx.GraphModule) else trace(model)
    applied = rewrites.apply_rewrites(traced, fmt, check, want)
    return (traced, applied) if applied else (model, [])


def build_module(ref: ModelRef, lowered: bool = False, fmt: str | None = None) -> nn.Module:
    """The export-friendly module for `ref` (built once per process); `lowered`: the 2D-lowered form when
    the config says lower_3d and the rewrite holds (else the unlowered one: lowering_report says why);
    `fmt`: with the rewrites that format's converter needs."""
    return _build_cached(ref, bool(lowered), fmt)[0]


def lowering_report(ref: ModelRef, lowered: bool = True, fmt: str | None = None) -> LoweringReport:
    """What `build_module(ref, lowered, fmt)` did: its form, 3D ops kept, FLOPs lowered, rewrites, or why not."""
    return _build_cached(ref, bool(lowered), fmt)[1]


def example_input(ref: ModelRef, seed: int = 0) -> torch.Tensor:
    """One seeded random input in [0, 1] shaped like the first input spec."""
    g = torch.Generator().manual_seed(seed)
    return torch.rand(ref.inputs[0].shape, generator=g)
