"""The model registry: one YAML file per model under configs/models/."""

from __future__ import annotations

from pathlib import Path

from edgebench.config import CONFIG_DIR, ModelConfig, read_yaml, validate
from edgebench.errors import UserError


def models_dir() -> Path:
    return CONFIG_DIR / "models"


ALL = "all"  # a model list of just this name means every registered model (the nightly's zoo)


def known_models() -> list[str]:
    return sorted(p.stem for p in models_dir().glob("*.yaml"))


def expand_models(names: list[str]) -> list[str]:
    """`[all]` -> every registered model; any other list as it is."""
    return known_models() if list(names) == [ALL] else list(names)


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
