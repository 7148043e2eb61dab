"""YAML configs (pipeline defaults and model specs), validated with pydantic."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgebench.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(os.environ.get("EDGEBENCH_CONFIG_DIR", PROJECT_ROOT / "configs"))

# fp32 / fp16: float; int8: int8 weights (per-channel) and int8 activations (static, calibrated);
# w8: int8 weights, float activations; w8a16: int8 weights, 16-bit activations.
Precision = Literal["fp32", "fp16", "int8", "w8", "w8a16"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- models


class TensorConfig(Strict):
    name: str
    shape: list[int]
    dtype: str = "float32"


class PreprocessConfig(Strict):
    """torchvision VideoClassification: resize, center crop, [0, 1], then mean/std."""

    frames: int = 16
    resize: tuple[int, int] = (128, 171)
    crop: int = 112
    mean: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
    std: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)


class ExportFriendlyConfig(Strict):
    mean_pool: bool = True  # adaptive 3D average pool -> mean over (T, H, W): Core ML can convert it
    normalize_inside: bool = True  # the model takes [0, 1] input; mean/std happen inside
    fold_batchnorm: bool = True  # BN folded into the conv before it: fewer ops in every format


class ModelConfig(Strict):
    name: str
    description: str = ""
    source: str  # torchvision:mc3_18 | path/to/file.py:factory | package.module:factory
    weights: str | None = None  # torchvision weights enum member, found in the local torch hub cache
    seed: int = 0
    inputs: list[TensorConfig] = Field(min_length=1)
    outputs: list[TensorConfig] = Field(min_length=1)
    labels: str | list[str] | None = None  # "torchvision", a list, or a text file (one per line)
    preprocess: PreprocessConfig = PreprocessConfig()
    export_friendly: ExportFriendlyConfig = ExportFriendlyConfig()

    @field_validator("source")
    @classmethod
    def _source_has_factory(cls, v: str) -> str:
        if ":" not in v:
            raise ValueError("must be 'torchvision:<name>', 'file.py:factory' or 'package.module:factory'")
        return v


# ---------------------------------------------------------------- pipeline


class Tolerance(Strict):
    max_abs_err: float | None = None
    min_cosine: float | None = None
    min_psnr_db: float | None = None
    min_top1_agree: float | None = None


class ParityConfig(Strict):
    random_clips: int = Field(3, ge=1)
    seed: int = 0
    video: str | None = None
    video_clips: int = Field(2, ge=1)
    # Measured and argued in docs/parity.md: fp32 runtimes reach 134-141 dB, fp16 Core ML programs 75-77 dB;
    # single-weight conversion bugs land at 35-63 dB. fp16 has no top-1 gate: a near-tie may flip legitimately.
    tolerances: dict[str, Tolerance] = {
        "fp32": Tolerance(max_abs_err=1e-3, min_psnr_db=80.0, min_top1_agree=1.0),
        "fp16": Tolerance(min_cosine=0.99999, min_psnr_db=60.0),
    }


class BudgetConfig(Strict):
    warmup_runs: int = Field(2, ge=0)
    min_runs: int = Field(10, ge=1)
    min_seconds: float = Field(10.0, ge=0)
    max_seconds: float = Field(120.0, gt=0)
    timeout_s: float = Field(900.0, gt=0)


class BenchmarkConfig(Strict):
    full: BudgetConfig = BudgetConfig()
    quick: BudgetConfig = BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=1.0, max_seconds=20.0, timeout_s=300.0)
    noisy_iqr_ratio: float = 0.10


class AIHubConfig(Strict):
    devices: list[str] = []
    inference_job: bool = True
    retries: int = Field(3, ge=0)
    backoff_s: float = 2.0


class HistoryConfig(Strict):
    url: str | None = None  # default: sqlite:///<out>/history.sqlite; a PostgreSQL URL for a team
    baseline_nights: int = Field(7, ge=1)
    regression_pct: float = 10.0
    noise_k: float = 3.0
    parity_drift_factor: float = 10.0
    mad_scale: float = Field(1.4826, gt=0)  # MAD x 1.4826 estimates the standard deviation; 1.0 = raw MAD
    min_baseline_nights: int = Field(3, ge=1)  # fewer good nights: baseline shown, no regression verdict
    parity_drift_floor: float = Field(1e-6, ge=0)  # baseline max abs err below this counts as this
    trend_nights: int = Field(30, ge=2)  # nights drawn in the report's trend charts


class PipelineConfig(Strict):
    models: list[str] = ["resnet_mixed"]
    formats: dict[str, list[Precision]] = {
        "torchscript": ["fp32"],
        "onnx": ["fp32"],
        "coreml": ["fp32", "fp16"],
        "tflite": ["fp32"],
    }
    converter_options: dict[str, dict[str, Any]] = {}
    export_timeout_s: float = Field(900.0, gt=0)
    runtimes: list[str] = ["torch", "torchscript", "onnxruntime", "litert", "coreml", "coreml-mil"]
    devices: list[str] = ["local"]
    threads: int = Field(0, ge=0)  # 0: every core of the host
    parity: ParityConfig = ParityConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    aihub: AIHubConfig = AIHubConfig()
    history: HistoryConfig = HistoryConfig()


# ---------------------------------------------------------------- loading


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; a missing or malformed file is a UserError naming it."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise UserError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        line = f" line {where.line + 1}" if where else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UserError(f"{path}:{line}: malformed YAML: {problem}") from None


def validate(model_cls: type[Strict], data: Any, path: Path | str) -> Any:
    """Validate parsed YAML; the error names the file, the field and what is wrong."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UserError(f"{path}: field '{field}': {msg}{more}") from None


def load_pipeline_config(path: Path | None = None, overrides: dict | None = None) -> PipelineConfig:
    """configs/pipeline.yaml (or `path`), with CLI overrides merged on top."""
    path = Path(path) if path else CONFIG_DIR / "pipeline.yaml"
    data = read_yaml(path) if path.exists() else {}
    if overrides:
        data = {**(data or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return validate(PipelineConfig, data, path)


def stable_hash(data: Any) -> str:
    """sha256 of a JSON rendering with sorted keys: the same config gives the same hash."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()
