"""Small, picklable records that travel between pipeline steps, processes and Prefect tasks."""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

# Row statuses, in the order a row can fail along the pipeline.
PASSED = "passed"
EXPORT_FAILED = "export_failed"
PARITY_FAILED = "parity_failed"
RUNTIME_FAILED = "runtime_failed"
SKIPPED = "skipped"
ACCURACY_FAILED = "accuracy_failed"  # the top-1 drop against eager is beyond the precision's bound (evaluation)
OUT_OF_MEMORY = "out_of_memory"  # a child (export, check or benchmark) went past its memory budget (child_memory)
REPAIR_FAILED = "repair_failed"  # no small set of layers kept in float made a failing file pass (docs/repair.md)
STATUSES = (PASSED, EXPORT_FAILED, OUT_OF_MEMORY, REPAIR_FAILED, PARITY_FAILED, ACCURACY_FAILED, RUNTIME_FAILED, SKIPPED)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    @classmethod
    def from_dict(cls, d: dict) -> "TensorSpec":
        return cls(d["name"], tuple(d["shape"]), d.get("dtype", "float32"))


@dataclass(frozen=True)
class ModelRef:
    """Everything needed to rebuild the same export-friendly model in any process."""

    name: str
    config_path: str
    weights_path: str | None
    provenance: str  # kinetics400_v1 | file:<sha prefix> | random:seed=0
    weights_sha256: str  # hash of the resolved state dict, the cache key of every artifact
    config_hash: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] = ()
    input_override: tuple[int, ...] | None = None  # a smaller input shape, for tests

    @property
    def random_weights(self) -> bool:
        return self.provenance.startswith("random")



@dataclass
class Artifact:
    """One exported file (or folder) for a (model, format, precision), or why it is missing."""

    model: str
    format: str
    precision: str
    status: str  # passed | export_failed | out_of_memory | skipped | repair_failed (no <precision>-mixed file made)
    reason: str = ""
    path: str = ""
    size_bytes: int = 0
    sha256: str = ""
    export_s: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)
    inputs: tuple[TensorSpec, ...] = ()
    outputs: tuple[TensorSpec, ...] = ()
    op_census: dict[str, int] = field(default_factory=dict)
    form: str = ""  # the module exported: "2d-lowered" or "3d" (models/lowering.py); "" for eager / not exported
    rewrites: tuple[str, ...] = ()  # export-friendly rewrites applied for this format (models/rewrites.py)
    compute_dtypes: dict[str, int] = field(default_factory=dict)  # conv/matmul ops per compute dtype
    calibration: str = ""  # "video:<files> x<clips> <method> <sha256 prefix>", "random ...", "" (none needed)
    float_layers: tuple[str, ...] = ()  # layers an <precision>-mixed file keeps in higher precision (docs/repair.md)
    options: dict[str, Any] = field(default_factory=dict)
    log_path: str = ""
    cache_key: str = ""
    cached: bool = False
    peak_mb: float | None = None  # resident peak of the export child (None: taken from the cache)

    @property
    def ok(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Artifact":
        return record_from_dict(cls, d)

    def save(self, path: Path) -> None:
        """The record as JSON; its files' paths relative to the record's folder, so a copied or restored cache still hits."""
        folder = Path(path).parent
        write_json_atomic(path, {**self.to_dict(), "path": _relative(self.path, folder),
                                 "log_path": _relative(self.log_path, folder)})

    @classmethod
    def load(cls, path: Path) -> "Artifact":
        """A saved record; relative paths resolved against the record's folder (absolute ones, older records, kept)."""
        folder = Path(path).parent
        d = json.loads(Path(path).read_text())
        return cls.from_dict({**d, **{k: str(folder / d[k]) for k in ("path", "log_path")
                                      if d.get(k) and not Path(d[k]).is_absolute()}})


def _relative(path: str, folder: Path) -> str:
    """`path` relative to `folder` when it lies inside it, else unchanged."""
    if not path:
        return path
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return path


@dataclass
class ParityResult:
    """Outputs of one (artifact, runtime) compared with the PyTorch reference."""

    model: str
    format: str
    precision: str
    runtime: str
    status: str  # passed | parity_failed | runtime_failed | out_of_memory | skipped
    reason: str = ""
    max_abs_err: float | None = None
    max_abs_index: tuple[int, ...] | None = None
    mean_abs_err: float | None = None
    max_rel_err: float | None = None
    cosine: float | None = None
    psnr_db: float | None = None
    top1_agree: float | None = None
    top5_agree: float | None = None
    min_passing_atol: float | None = None
    clips: int = 0
    runtime_version: str = ""
    runtime_options: dict[str, Any] = field(default_factory=dict)
    first_divergent_layer: str = ""  # module name where the error first jumps (parity.localize), "" if not localized
    localization_path: str = ""  # JSON with the per-layer table behind first_divergent_layer
    device: str = "local"  # where the outputs came from: "local", or a hub device whose outputs were judged here
    peak_mb: float | None = None  # resident peak of the check's child
    outputs_path: str = ""  # the session's saved outputs (parity/outputs.py): a verdict can be re-judged from them
    reference_path: str = ""  # the eager reference outputs they were judged against

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class LatencyResult:
    """Latency statistics of one (artifact, runtime, device), in milliseconds."""

    model: str
    format: str
    precision: str
    runtime: str
    device: str
    status: str  # passed | runtime_failed | out_of_memory | skipped
    reason: str = ""
    load_ms: float | None = None
    first_ms: float | None = None
    warmup_runs: int = 0
    runs: int = 0
    min_ms: float | None = None
    mean_ms: float | None = None
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    std_ms: float | None = None
    iqr_ms: float | None = None
    noisy: bool | None = None
    outliers: int | None = None
    fps: float | None = None
    gflops: float | None = None
    peak_rss_mb: float | None = None
    threads: int | None = None
    runtime_version: str = ""
    runtime_options: dict[str, Any] = field(default_factory=dict)
    speedup_vs_eager: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # hub job URLs, memory ranges, ...
    trimmed_mean_ms: float | None = None  # mean of the middle 80 % of the samples
    cv: float | None = None  # std / mean
    stability: float | None = None  # ExecuTorch's stability score, 0-100 (benchmarks.stats.stability_score)
    # Timed interleaved with eager (benchmarks.paired): median over rounds of row / that round's eager, 95 % interval.
    ratio_vs_eager: float | None = None
    ratio_low: float | None = None
    ratio_high: float | None = None
    foreign_cpu: float | None = None  # share of the host's CPU other processes took while timing (benchmarks.hostload)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class AccuracyResult:
    """Video-level accuracy of one (artifact, runtime) on a labelled set, and its top-1 drop against eager."""

    model: str
    format: str
    precision: str
    runtime: str
    status: str  # passed | accuracy_failed | runtime_failed | out_of_memory | skipped
    reason: str = ""
    dataset: str = ""
    videos: int = 0  # scored videos
    unreadable: int = 0  # videos that could not be decoded (listed in the evaluation log)
    clips: int = 0
    top1: float | None = None  # percent of videos, softmax averaged over their clips
    top5: float | None = None
    clip_top1: float | None = None  # percent of single clips
    clip_top5: float | None = None
    top1_drop: float | None = None  # eager top-1 minus this top-1, in points (positive: worse than eager)
    top1_drop_low: float | None = None  # 95 % paired interval of the drop
    top1_drop_high: float | None = None
    bound: float | None = None  # allowed drop for this precision, in points
    verdict: str = ""  # passed | failed | not enough videos | "" (eager itself, or no bound)
    confused: list[tuple[str, str, int]] = field(default_factory=list)  # (true, predicted, videos), most first
    predictions_path: str = ""  # npz: per-video probabilities, predictions and targets
    seconds: float = 0.0
    runtime_version: str = ""
    peak_mb: float | None = None  # resident peak of the scoring child

    def to_dict(self) -> dict:
        return asdict(self)


def record_from_dict(cls, d: dict):
    """A record from its to_dict() / JSON form: unknown keys dropped (older and newer files load), tuples restored."""
    kinds = {f.name: str(f.type) for f in fields(cls)}  # annotations are strings here (postponed evaluation)
    values = {}
    for k, v in d.items():
        if k not in kinds:
            continue
        if v is not None and kinds[k].startswith("tuple[TensorSpec"):
            v = tuple(TensorSpec.from_dict(t) for t in v)
        elif isinstance(v, list) and kinds[k].startswith("tuple"):
            v = tuple(v)
        values[k] = v
    return cls(**values)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary name beside `path`, then rename: never half a file."""
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            if tmp.is_dir():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


@dataclass
class RepairResult:
    """The repair of one failing reduced-precision file (docs/repair.md): what was tried and what came of it."""

    model: str
    format: str
    precision: str  # the failing file's precision; the repaired one is <precision>-mixed
    status: str  # repaired | not_needed | repair_failed | skipped
    reason: str = ""
    judge: str = ""  # parity | accuracy: the bound every trial was held to
    float_layers: tuple[str, ...] = ()  # the repaired file's layers kept in higher precision
    keep_in: str = ""
    trials: int = 0  # exports tried (a cached layer set counts once)
    candidates: int = 0  # layers the search could keep in float
    max_trials: int = 0
    seconds: float = 0.0
    trials_path: str = ""  # JSON: the ranking and every trial (layer set, verdict, figures, seconds)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunData:
    """Everything one run produced: what the reports and the history store are written from."""

    run_id: str
    started_at: str  # ISO 8601, UTC
    ended_at: str
    out_dir: str
    threads: int
    models: list[ModelRef] = field(default_factory=list)
    artifacts: list[Artifact] = field(default_factory=list)
    parity: list[ParityResult] = field(default_factory=list)
    latency: list[LatencyResult] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)  # the resolved PipelineConfig
    accuracy: list[AccuracyResult] = field(default_factory=list)
    peak: dict[str, Any] = field(default_factory=dict)  # this host's limit per precision (benchmarks.peak), {} when unmeasured
    repairs: list[RepairResult] = field(default_factory=list)
    host: dict[str, Any] = field(default_factory=dict)  # reports.runinfo.host_info() of the host that ran it
