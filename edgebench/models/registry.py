"""The model registry: one YAML file per model under configs/models/."""

from __future__ import annotations

from pathlib import Path

from edgebench.config import CONFIG_DIR, ModelConfig, read_yaml, validate
from edgebench.errors import UserError


def models_dir() -> Path:
    return CONFIG_DIR / "models"


def known_models() -> list[str]:
    return sorted(p.stem for p in models_dir().glob("*.yaml"))


def model_config_path(name: str) -> Path:
    """A registered name, or a path to a model YAML of the user's own."""
    if name.endswith((".yaml", ".yml")):
        path = Path(name)
        if not path.exists():
            raise UserError(f"model config {name}: no such file")
        return path
    path = models_dir() / f"{name}.yaml"
    if not path.exists():
        raise UserError(f"unknown model '{name}'; known models: {', '.join(known_models())}")
    return path


def load_model_config(name: str) -> ModelConfig:
    path = model_config_path(name)
    cfg = validate(ModelConfig, read_yaml(path), path)
    return cfg
