"""YAML configs (pipeline defaults and model specs), validated with pydantic."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator,
                      model_validator)
from pydantic_core import InitErrorDetails, PydanticCustomError

from edgebench.catalogue import (DEVICE_KINDS, DeviceKind, configured_runtime, default_formats, formats, runtime_class,
                                 runtime_refs, split_device)
from edgebench.child_memory import parse_limit
from edgebench.errors import UserError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(os.environ.get("EDGEBENCH_CONFIG_DIR", PROJECT_ROOT / "configs"))

# fp32 / fp16: float; int8: int8 weights (per-channel) and int8 activations (static, calibrated);
# w8: int8 weights, float activations; w8a16: int8 weights, 16-bit activations.
Precision = Literal["fp32", "fp16", "int8", "w8", "w8a16"]
MIXED = "-mixed"  # a reduced-precision file with some layers kept in higher precision: "int8-mixed"


def mixed_precision(precision: str) -> str:
    """The row precision of a file of `precision` that keeps some layers in float: int8 -> int8-mixed."""
    return precision if precision.endswith(MIXED) else precision + MIXED


def base_precision(precision: str) -> str:
    """The precision whose bounds judge a row: int8-mixed -> int8 (a repaired file meets the int8 bound)."""
    return precision.removesuffix(MIXED)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- models


class TensorConfig(Strict):
    name: str
    shape: list[int]
    dtype: str = "float32"


# Which frames make a clip (edgebench/models/sampling.py, docs/evaluation.md): `uniform` spreads the frames
# evenly over the video (K clips: K equal segments); `consecutive` takes runs of consecutive frames, after
# resampling to `fps` when set (K clips: evenly spaced starts), as torchvision's video reference does.
Sampling = Literal["uniform", "consecutive"]
DEFAULT_SAMPLING: Sampling = "consecutive"  # a YAML without preprocess.sampling gets this (`edgebench info` says so)


class PreprocessConfig(Strict):
    """Temporal sampling, then torchvision VideoClassification: resize, center crop, [0, 1], then mean/std."""

    sampling: Sampling = DEFAULT_SAMPLING
    fps: float | None = Field(None, gt=0)  # consecutive only: resample the video to this frame rate first
    frames: int = Field(16, ge=1)
    resize: tuple[int, int] | int = (128, 171)  # (height, width), or one number: the shorter side (aspect kept)
    crop: int = 112
    mean: tuple[float, float, float] = (0.43216, 0.394666, 0.37645)
    std: tuple[float, float, float] = (0.22803, 0.22145, 0.216989)

    @model_validator(mode="after")
    def _fps_needs_consecutive(self) -> "PreprocessConfig":
        if self.fps is not None and self.sampling != "consecutive":
            raise ValueError("fps applies to sampling: consecutive (uniform spreads the frames over the whole video)")
        return self

    @property
    def sampling_declared(self) -> bool:
        """Whether the YAML says which sampling its weights expect (else DEFAULT_SAMPLING applies)."""
        return "sampling" in self.model_fields_set


class ExportFriendlyConfig(Strict):
    mean_pool: bool = True  # adaptive 3D average pool -> mean over (T, H, W): Core ML can convert it
    normalize_inside: bool = True  # the model takes [0, 1] input; mean/std happen inside
    fold_batchnorm: bool = True  # BN folded into the conv before it: fewer ops in every format
    lower_3d: bool = True  # artifacts get the 2D-lowered form (models/lowering.py); eager stays 3D


class EvaluationConfig(Strict):
    """Accuracy on a labelled video set (docs/evaluation.md): clips, subset and the allowed top-1 drop."""

    dataset: str | None = None  # <root>/<label>/<video> folder or a CSV manifest (path,label[,start_s,end_s])
    clips_per_video: int = Field(5, ge=1)  # evenly spaced by the model's sampler; softmax averaged over them
    max_videos: int | None = Field(None, ge=1)  # a class-balanced subset, for quick nights
    # Largest allowed top-1 drop against eager, in points; a verdict fails only when the whole 95 % interval is beyond it.
    bounds: dict[str, float] = {"fp32": 0.0, "fp16": 0.2, "int8": 1.0, "w8": 1.0, "w8a16": 0.5}
    resamples: int = Field(10000, ge=100)  # paired bootstrap resamples of the per-video results
    seed: int = 0


class ModelConfig(Strict):
    name: str
    description: str = ""
    source: str  # torchvision:mc3_18 | path/to/file.py:factory | package.module:factory
    weights: str | None = None  # torchvision weights enum member, found in the local torch hub cache
    seed: int = 0
    # Random weights only: BatchNorm running statistics as initialised (mean 0, var 1) or measured on one seeded
    # random clip, so activations keep their scale through a deep net (S3D's vanish: its outputs ignored the input).
    random_batchnorm: Literal["init", "measured"] = "init"
    inputs: list[TensorConfig] = Field(min_length=1)
    outputs: list[TensorConfig] = Field(min_length=1)
    labels: str | list[str] | None = None  # "torchvision", a list, or a text file (one per line)
    preprocess: PreprocessConfig = PreprocessConfig()
    export_friendly: ExportFriendlyConfig = ExportFriendlyConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

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
    min_top5_agree: float | None = None


class ParityConfig(Strict):
    random_clips: int = Field(3, ge=0)  # 0: judge on the video's clips alone (int8 calibrated on video)
    seed: int = 0
    video: str | None = None  # its clips come from the model's sampler (preprocess.sampling)
    video_clips: int = Field(2, ge=1)
    # Measured and argued in docs/parity.md (benchmarks/noise_floors.py): correct fp32 files of three torchvision
    # models and a trained fixture reach 129-147 dB on every runtime (193-207 identical), fp16 Core ML programs
    # 75-77 dB; one wrong weight lands at 35-90 dB. fp16 has no top-1 gate: a near-tie may flip legitimately.
    tolerances: dict[str, Tolerance] = {
        "fp32": Tolerance(max_abs_err=1e-3, min_psnr_db=100.0, min_top1_agree=1.0),
        "fp16": Tolerance(min_cosine=0.99999, min_psnr_db=60.0),
        # Reduced precision, measured on real clips against injected quantization bugs (docs/parity.md).
        # Correct int8 / w8a16 / w8 on real clips: 41-43 dB, 1 - cosine 3e-4; a x2 scale, a BGR stem, garbage
        # calibration: 10-31 dB. Calibration and parity clips must be the same kind (both video or both random).
        "int8": Tolerance(min_cosine=0.998, min_psnr_db=33.0, min_top5_agree=0.8),
        "w8": Tolerance(min_cosine=0.9995, min_psnr_db=40.0, min_top5_agree=0.8),  # weight-only: 45-47 dB
        "w8a16": Tolerance(min_cosine=0.998, min_psnr_db=33.0, min_top5_agree=0.8),
    }

    @model_validator(mode="after")
    def _some_clip(self) -> "ParityConfig":
        if self.random_clips == 0 and not self.video:
            raise ValueError("random_clips: 0 needs parity.video (no clip would be judged)")
        return self


class LocalizeConfig(Strict):
    """Layer-wise localization of parity failures (docs/parity.md): the budget and the divergence rule."""

    auto: bool = True  # localize every parity_failed row of a run (edgebench check --localize: every row)
    all_rows: bool = False  # passing rows too: a layer whose error jumps then fails its row (costs a tap run each)
    timeout_s: float = Field(300.0, gt=0)  # hard timeout of the localization child
    jump_factor: float = Field(10.0, gt=1)  # a layer diverges when its rel err is this many times the worst before
    # ... and above this relative L2 error per precision (fp32 rounding stays under 1e-5 through mc3_18)
    rel_floor: dict[str, float] = {"fp32": 1e-5, "fp16": 1e-2, "int8": 0.1, "w8": 0.05, "w8a16": 0.05}


class ExternalArtifactConfig(Strict):
    """A file built elsewhere, checked like an exported artifact (rows name it `<model>@<name>`)."""

    path: str
    model: str
    precision: Precision = "fp32"
    format: str | None = None  # default: detected from the file
    name: str | None = None  # default: the file name


CalibrationMethod = Literal["minmax", "entropy", "percentile"]


class CalibrationConfig(Strict):
    """Clips the int8 / w8a16 exports calibrate on: from `videos` (files or folders), else seeded random."""

    videos: list[str] = []  # files, folders, <label>/<video> trees, CSV manifests; empty: seeded random (rows say so)
    clips: int = Field(8, ge=1)
    seed: int = 0
    method: CalibrationMethod = "minmax"  # a converter that does not offer it skips the precision, saying so


KeepIn = Literal["fp32", "fp16", "w8a16"]


class RepairConfig(Strict):
    """Repair of failing reduced-precision files (docs/repair.md): the smallest set of layers kept in `keep_in`."""

    enabled: bool = False  # a run repairs every reduced-precision row that fails (edgebench repair always does)
    max_trials: int | None = Field(None, ge=1)  # exports tried; default ceil(2 log2(layers) + 4)
    budget_s: float = Field(1800.0, gt=0)  # wall clock of one file's search; a trial running past it is the last
    keep_in: KeepIn = "fp32"  # what a kept layer computes in, where the toolchain offers it (else a refusal)
    max_float_layers: int | None = Field(None, ge=1)  # default: a third of the layers, at most 4; more is no repair


class BudgetConfig(Strict):
    """How long latency is measured. The local device counts rounds of all its rows timed interleaved
    (benchmarks/paired.py); a row timed alone (a queue device's machine) counts its own runs and seconds."""

    warmup_runs: int = Field(2, ge=0)
    min_runs: int = Field(30, ge=1)
    min_seconds: float = Field(20.0, ge=0)
    max_seconds: float = Field(300.0, gt=0)
    timeout_s: float = Field(900.0, gt=0)  # a child's start, and each inference (paired); the whole child (alone)


DEFAULT_MIN_STABILITY = 60.0  # ExecuTorch rates a stability score below 60 "Poor"


class BenchmarkConfig(Strict):
    full: BudgetConfig = BudgetConfig()
    quick: BudgetConfig = BudgetConfig(warmup_runs=1, min_runs=3, min_seconds=1.0, max_seconds=20.0, timeout_s=300.0)
    noisy_iqr_ratio: float = 0.10
    min_stability: float = Field(DEFAULT_MIN_STABILITY, ge=0, le=100)  # below: the row is marked unstable, no baseline


class MemoryConfig(Strict):
    """The memory budget of each export, check and benchmark child (edgebench/child_memory.py)."""

    child_limit: str = "75%"  # of this machine's memory, or a size ("12G", "800M"), or "none"
    enforce: Literal["auto", "cgroup", "address-space"] = "auto"  # auto: a cgroup where the host allows one

    @field_validator("child_limit")
    @classmethod
    def _a_size(cls, v: str) -> str:
        parse_limit(v)  # a ValueError names what is wrong
        return v


class FleetConfig(Strict):
    """The nightly fanned out over Prefect workers, one model's flow run each (docs/orchestration.md)."""

    deployment: str = "model-pipeline/fleet"  # the deployment each model runs through
    retries: int = Field(2, ge=0)  # a model run that Crashed (its worker died) is scheduled again this many times
    start_timeout_s: float = Field(3600.0, gt=0)  # a model run no worker started in this long is given up
    poll_s: float = Field(5.0, gt=0)  # how often the parent reads its model runs' states
    workers: int = Field(2, ge=0)  # fleet workers `edgebench serve` starts on this machine
    worker_limit: int = Field(1, ge=1)  # flow runs a worker runs at once: 1 keeps a model's benchmarks off the others
    cpus_per_worker: int = Field(0, ge=0)  # >0: serve pins fleet worker i to its own cores (W workers on one machine)
    heartbeat_s: int = Field(30, ge=30)  # model runs' heartbeat events (Prefect's minimum is 30 s) ...
    crashed_after_s: int = Field(90, gt=30)  # ... and the silence after which a run is marked Crashed (automation, parent)


class HistoryConfig(Strict):
    url: str | None = None  # default: sqlite:///<out>/history.sqlite; a PostgreSQL URL for a team
    baseline_nights: int = Field(7, ge=1)
    # Chosen from the measured error rates (benchmarks/regression_error_rates.py, docs/reports.md): the lowest
    # false-alarm rate at the best detection of a 10 % slowdown
    regression_pct: float = 5.0
    noise_k: float = 2.0
    parity_drift_factor: float = 10.0
    mad_scale: float = Field(1.4826, gt=0)  # MAD x 1.4826 estimates the standard deviation; 1.0 = raw MAD
    min_baseline_nights: int = Field(3, ge=1)  # fewer good nights: baseline shown, no regression verdict
    parity_drift_floor: float = Field(1e-6, ge=0)  # baseline max abs err below this counts as this
    trend_nights: int = Field(30, ge=2)  # nights drawn in the report's trend charts
    accuracy_drift_points: float = Field(1.0, ge=0)  # top-1 this many points under the baseline nights' median: a regression
    # A night whose paired timing shared the host's CPU with other processes beyond this share is neither judged
    # on its ratios nor a baseline: contention does not slow every runtime alike (docs/reports.md)
    max_foreign_cpu: float = Field(0.10, ge=0, le=1)


class RuntimeVariant(Strict):
    """A named runtime with other options (`litert-no-xnnpack: {runtime: litert, options: {xnnpack: false}}`)."""

    runtime: str
    options: dict[str, Any] = {}


class _Pipeline(Strict):
    """configs/pipeline.yaml; PipelineConfig below adds each device kind's settings section (`aihub:`)."""

    models: list[str] = ["resnet_mixed"]
    formats: dict[str, list[Precision]] = Field(default_factory=default_formats)  # every catalogued format
    converter_options: dict[str, dict[str, Any]] = {}
    export_timeout_s: float = Field(900.0, gt=0)
    runtimes: list[str] = Field(default_factory=lambda: list(runtime_refs()))  # every catalogued one, in its order
    runtime_options: dict[str, dict[str, Any]] = {}  # registry runtime -> its options, e.g. litert: {xnnpack: false}
    runtime_variants: dict[str, RuntimeVariant] = {}  # a new runtime name = a registry runtime with other options
    devices: list[str] = ["local"]
    threads: int = Field(0, ge=0)  # 0: every core of the host
    parity: ParityConfig = ParityConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    benchmark: BenchmarkConfig = BenchmarkConfig()
    history: HistoryConfig = HistoryConfig()
    localize: LocalizeConfig = LocalizeConfig()
    memory: MemoryConfig = MemoryConfig()
    repair: RepairConfig = RepairConfig()
    fleet: FleetConfig = FleetConfig()
    external_artifacts: list[ExternalArtifactConfig] = []

    @field_validator("devices")
    @classmethod
    def _known_device_kinds(cls, v: list[str]) -> list[str]:
        for text in v:
            _as_value_error(split_device, text)
        return v

    @field_validator("runtime_options")
    @classmethod
    def _known_runtime_options(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, options in v.items():
            _as_value_error(configured_runtime, name, options)
        return v

    @field_validator("runtime_variants")
    @classmethod
    def _known_variant_runtimes(cls, v: dict[str, RuntimeVariant]) -> dict[str, RuntimeVariant]:
        for name, variant in v.items():
            if name in runtime_refs():
                raise ValueError(f"variant '{name}' has the name of a registered runtime")
            _as_value_error(configured_runtime, variant.runtime, variant.options)
        return v

    @model_validator(mode="after")
    def _known_names(self) -> "_Pipeline":
        """Every format and runtime name is in the catalogue (or a configured variant); the error names the entry."""
        for section in ("formats", "converter_options"):
            for fmt in getattr(self, section):
                if fmt not in formats():
                    self._unknown((section, fmt), fmt, "format", list(formats()))
        known = [*runtime_refs(), *self.runtime_variants]
        for i, name in enumerate(self.runtimes):
            if name not in known:
                self._unknown(("runtimes", i), name, "runtime", known)
        return self

    def _unknown(self, loc: tuple, name: str, kind: str, known: list[str]) -> None:
        error = PydanticCustomError(f"unknown_{kind}", "unknown {kind} '{name}'; known {kind}s: {known}",
                                    {"kind": kind, "name": name, "known": ", ".join(known)})
        raise ValidationError.from_exception_data(type(self).__name__,
                                                  [InitErrorDetails(type=error, loc=loc, input=name)])

    def runtime_spec(self, name: str) -> tuple[str, dict[str, Any]]:
        """(registry runtime, options) for a runtime or variant name: `runtime_options` of the runtime, then the variant's."""
        variant = self.runtime_variants.get(name)
        base = variant.runtime if variant else name
        runtime_class(base)  # an unknown name is a UserError naming the known ones
        return base, {**self.runtime_options.get(base, {}), **(variant.options if variant else {})}


def _device_settings(kind: DeviceKind) -> tuple[Any, Any]:
    """The field of a device kind's settings section: its backend's `settings_model`, loaded when a config is
    made (the backend modules import this one); an error names the field inside the section."""
    def check(value: Any) -> Any:
        model = kind.backend.load().settings_model
        if isinstance(value, model):
            return value
        try:
            return model.model_validate({} if value is None else value)
        except ValidationError as e:
            err = e.errors()[0]
            raise PydanticCustomError("device_settings", "{message}", {
                "message": _message(err), "field": ".".join(str(p) for p in err["loc"])}) from None

    return Annotated[Any, BeforeValidator(check)], Field(default_factory=lambda: kind.backend.load().settings_model())


PipelineConfig = create_model("PipelineConfig", __base__=_Pipeline, __module__=__name__,
                              **{k.settings: _device_settings(k) for k in DEVICE_KINDS if k.settings})


def _as_value_error(check, *args) -> None:
    """Run a registry check inside a pydantic validator, so the error names the config field."""
    try:
        check(*args)
    except UserError as e:
        raise ValueError(str(e)) from None


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
        inner = (err.get("ctx") or {}).get("field")  # a device settings section names its own field
        field = ".".join(str(p) for p in [*err["loc"], *([inner] if inner else [])]) or "(top level)"
        more = f" (and {len(e.errors()) - 1} more)" if len(e.errors()) > 1 else ""
        raise UserError(f"{path}: field '{field}': {_message(err)}{more}") from None


def _message(err: dict) -> str:
    return "unknown field" if err["type"] == "extra_forbidden" else err["msg"]


def load_pipeline_config(path: Path | None = None, overrides: dict | None = None) -> PipelineConfig:
    """configs/pipeline.yaml (or `path`), with CLI overrides merged on top."""
    path = Path(path) if path else CONFIG_DIR / "pipeline.yaml"
    data = read_yaml(path) if path.exists() or path != CONFIG_DIR / "pipeline.yaml" else {}  # a named file must exist
    if overrides:
        data = {**(data or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return validate(PipelineConfig, data, path)


def stable_hash(data: Any) -> str:
    """sha256 of a JSON rendering with sorted keys: the same config gives the same hash."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()
