"""Weights resolution: --weights file, torchvision's file in the local hub cache, or seeded random."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgebench.config import ModelConfig
from edgebench.errors import UserError, reason_of
from edgebench.hashing import file_sha256


def torchvision_weights(cfg: ModelConfig):
    """The torchvision weights enum member named by the config (metadata only, no download)."""
    import torchvision.models as tvm

    _, _, arch = cfg.source.rpartition(":")
    enum = tvm.get_model_weights(arch)
    return enum[cfg.weights or "DEFAULT"]


def hub_cache_file(cfg: ModelConfig) -> Path | None:
    """Where torch.hub would have stored torchvision's weights file, if it is there."""
    if not cfg.source.startswith("torchvision:") or not cfg.weights:
        return None
    url = torchvision_weights(cfg).url
    path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return path if path.exists() else None


def load_state_dict_checked(model: nn.Module, path: Path) -> None:
    """Load a state dict file; wrong keys or shapes raise a UserError that names them."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"weights {path}: no such file") from None
    except Exception as e:  # unpickling errors come in many types
        raise UserError(f"weights {path}: not a loadable state dict ({reason_of(e)})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"weights {path}: expected a state dict, found {type(state).__name__}")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
             for k in own if k in state and hasattr(state[k], "shape") and state[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing keys {_few(missing)}")
    if unexpected:
        problems.append(f"unexpected keys {_few(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes {_few(wrong)}")
    if problems:
        raise UserError(f"weights {path} do not match the model: " + "; ".join(problems))
    model.load_state_dict(state)


def _few(items: list[str], n: int = 3) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return ", ".join(items[:n]) + more


def load_into(model: nn.Module, cfg: ModelConfig, weights_path: str | None) -> str:
    """Load weights in priority order and return their provenance string."""
    if weights_path:
        path = Path(weights_path)
        load_state_dict_checked(model, path)
        return f"file:{file_sha256(path)[:12]}"
    cached = hub_cache_file(cfg)
    if cached is not None:
        load_state_dict_checked(model, cached)
        return cfg.weights.lower()
    if cfg.random_batchnorm == "measured" and measure_batchnorms(model, cfg):
        return f"random:seed={cfg.seed},batchnorm=measured"
    return f"random:seed={cfg.seed}"


MEASURE_FRAMES = 16  # the clip BatchNorm statistics are measured on has at most this many frames


def measure_batchnorms(model: nn.Module, cfg: ModelConfig) -> int:
    """Set every BatchNorm's running statistics to those of its input on one seeded random clip (normalized as
    the preprocessing does), as training would have; returns how many. The model is left in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    model.eval()  # dropout and the rest as in inference; only the norms update their statistics
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
        m.train()
    shape = list(cfg.inputs[0].shape)
    if len(shape) == 5:
        shape[2] = min(shape[2], MEASURE_FRAMES)  # statistics over (N, T, H, W): 16 frames hold plenty of samples
    clip = torch.rand(shape, generator=torch.Generator().manual_seed(cfg.seed))
    rank = clip.dim() - 2
    mean = torch.tensor(cfg.preprocess.mean).reshape((1, -1) + (1,) * rank)
    std = torch.tensor(cfg.preprocess.std).reshape((1, -1) + (1,) * rank)
    with torch.no_grad():
        model((clip - mean) / std)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    model.eval()
    return len(norms)
