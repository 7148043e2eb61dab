"""Export one (model, format, precision) into the artifact cache, in an isolated child process.

Cache layout: <cache_dir>/<model>/<format>-<precision>-<key[:12]>/ holding the artifact
(model.pt, model.onnx, model.mlpackage/, model.tflite), artifact.json and export.log. The key
covers everything that decides the bytes: model config and weights, input shapes, format,
precision, options, tool versions and the converter's own source.
"""

from __future__ import annotations

import fcntl
import hashlib
import inspect
import logging
import os
import shutil
import time
import uuid
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterator

from rich.table import Table

from edgebench.config import CalibrationConfig, PipelineConfig, mixed_precision, stable_hash
from edgebench.converters.base import Converter
from edgebench.converters.registry import get_converter
from edgebench.hashing import file_sha256, update_with_file
from edgebench.isolation import Stopped, run_child, stopping
from edgebench.liveness import pid_alive
from edgebench.models.calibration import CalibrationSet, make_calibration
from edgebench.records import EXPORT_FAILED, PASSED, SKIPPED, Artifact, ModelRef, TensorSpec
from edgebench.tables import status_cell

log = logging.getLogger(__name__)

RECORD = "artifact.json"
LOG = "export.log"
# The compute dtype every conv/matmul-class op of an artifact of this precision must report (compute_dtypes).
COMPUTE_DTYPE = {"fp32": "float32", "fp16": "float16", "int8": "int8", "w8": "w8", "w8a16": "w8a16"}


class ArtifactError(RuntimeError):
    """The converter returned, but what it wrote is missing, empty, unreadable or misnamed."""


# ---------------------------------------------------------------- cache keys and hashes


def _code_hash(converter: Converter) -> str:
    """sha256 of the converter's module and the export-friendly rewrites: new code, new key."""
    from edgebench.models import friendly, lowering, lowering_graph, rewrite_ops, rewrites

    h = hashlib.sha256()
    for module in (type(converter), friendly, lowering, lowering_graph, rewrites, rewrite_ops):
        h.update(Path(inspect.getfile(module)).read_bytes())
    return h.hexdigest()


def cache_key(ref: ModelRef, fmt: str, precision: str, options: dict[str, Any], converter: Converter,
              calibration: CalibrationSet | None = None) -> str:
    extra = {"calibration": [calibration.sha256, calibration.method]} if calibration else {}
    return stable_hash({
        **extra,
        "config": ref.config_hash,
        "weights": ref.weights_sha256,
        "inputs": [(t.name, list(t.shape), t.dtype) for t in ref.inputs],
        "format": fmt,
        "precision": precision,
        "options": options,
        "versions": converter.versions(),
        "code": _code_hash(converter),
    })


def files_sha256(files: list[Path], root: Path) -> str:
    """One file: its plain sha256. Several (a folder): sha256 over sorted relative paths and bytes."""
    if len(files) == 1 and files[0].parent == root:
        return file_sha256(files[0])
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        update_with_file(h, path)
    return h.hexdigest()


def cached_artifact(folder: Path, key: str, converter: Converter) -> Artifact | None:
    """The saved record if it passed, has this key and its files still hash to the recorded sha256.

    The files are looked for in `folder` itself, wherever the cache was copied or restored to (a record
    written before paths were relative names another folder). A damaged entry (unreadable record,
    missing or changed files) is a miss with a one-line warning: the caller exports it again.
    """
    record = folder / RECORD
    if not record.exists():
        return None
    try:
        artifact = Artifact.load(record)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return _damaged(folder, f"unreadable {RECORD} ({type(e).__name__})")
    if artifact.status != PASSED or artifact.cache_key != key:
        return None  # a failed export or another key's record: an ordinary miss
    path = folder / Path(artifact.path).name
    try:
        files = converter.files(path) if path.exists() else []
        if not files:
            return _damaged(folder, f"{path.name} is missing")
        if files_sha256(files, folder) != artifact.sha256:
            return _damaged(folder, f"{path.name} changed since its export (sha256 differs)")
    except Exception as e:  # noqa: BLE001 - a damaged file may fail in the converter's reader: a miss, never a crash
        return _damaged(folder, f"{path.name} unreadable ({type(e).__name__})")
    return replace(artifact, path=str(path), log_path=str(folder / LOG), cached=True)


def _damaged(folder: Path, why: str) -> None:
    log.warning("artifact cache: %s: %s; exporting it again", folder, why)
    return None


# ---------------------------------------------------------------- the child


def _match_io(converter: Converter, ref: ModelRef, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]):
    """The artifact must name its inputs and outputs as the model config does (or keep their count)."""
    for kind, read, want in (("input", inputs, ref.inputs), ("output", outputs, ref.outputs)):
        if converter.keeps_io_names:
            if [t.name for t in read] != [t.name for t in want]:
                raise ArtifactError(f"{kind} names {[t.name for t in read]} != {[t.name for t in want]}")
        elif len(read) != len(want):
            raise ArtifactError(f"{len(read)} {kind}s in the artifact, the model has {len(want)}")
    if converter.keeps_io_names:
        return inputs, outputs
    return ref.inputs, ref.outputs


def mislabelled(precision: str, compute_dtypes: dict[str, int], keep_in: str | None = None) -> str | None:
    """Why a census does not hold up the precision's name (None: every conv/matmul op runs in its dtype).

    With `keep_in` (a file keeping some layers in higher precision), ops run in the precision's dtype and in
    keep_in's, and both are there: a file whose every op runs float is no int8-mixed file.
    """
    want = COMPUTE_DTYPE[precision]
    if not compute_dtypes:
        return None if precision in ("fp32", "fp16") else f"{precision}: no compute dtype census read back"
    total = sum(compute_dtypes.values())
    if keep_in is None:
        if compute_dtypes.get(want, 0) == total:
            return None
        return (f"{precision}: {compute_dtypes.get(want, 0)} of {total} conv/matmul ops run {want} "
                f"({_census_text(compute_dtypes)})")
    kept = COMPUTE_DTYPE[keep_in]
    if compute_dtypes.get(want, 0) and compute_dtypes.get(kept, 0) and compute_dtypes[want] + compute_dtypes[kept] == total:
        return None
    return (f"{mixed_precision(precision)}: the conv/matmul ops must run {want} or, in the kept layers, {kept} "
            f"({_census_text(compute_dtypes)})")


def _census_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def _export_job(converter: Converter, ref: ModelRef, precision: str, options: dict[str, Any], out: str,
                calibration: CalibrationSet | None = None) -> dict:
    """Runs in the child: build, export, then read census and io specs back from the saved file."""
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"edgebench: exporting {ref.name} to {converter.format} {precision} with {options}", flush=True)
    from edgebench.models.source import build_module, lowering_report

    model = build_module(ref, lowered=converter.lowered_form, fmt=converter.format)
    form = lowering_report(ref, converter.lowered_form, converter.format)
    print(f"edgebench: exporting the {form.form} form{f' ({form.reason})' if form.reason else ''}", flush=True)
    if form.rewrites:
        print(f"edgebench: export-friendly rewrites: {', '.join(form.rewrites)}", flush=True)
    start = time.perf_counter()
    if calibration is None:
        converter.export(model, ref, precision, options, out_path)
    else:
        print(f"edgebench: calibrating on {calibration.label} ({calibration.path})", flush=True)
        converter.export(model, ref, precision, options, out_path, calibration=calibration.load(ref))
    export_s = time.perf_counter() - start
    print(f"edgebench: {converter.format} export took {export_s:.1f} s", flush=True)
    if not out_path.exists():
        raise ArtifactError(f"the converter wrote no {out_path.name}")
    files = converter.files(out_path)
    empty = [p.name for p in files if not p.exists() or p.stat().st_size == 0]
    if not files or empty:
        raise ArtifactError(f"empty or missing output: {', '.join(empty) or out_path.name}")
    try:
        census = converter.op_census(out_path)
        dtypes = converter.compute_dtypes(out_path)
        inputs, outputs = converter.io_specs(out_path)
    except Exception as e:  # noqa: BLE001 - any failure to read it back makes the artifact unusable
        first = (str(e).strip().splitlines() or [""])[0]
        raise ArtifactError(f"{out_path.name} cannot be read back ({type(e).__name__}: {first})") from e
    print(f"edgebench: compute dtypes {_census_text(dtypes) or 'not read'}", flush=True)
    if why := mislabelled(precision, dtypes, options.get("keep_in")):
        raise ArtifactError(f"mislabelled file: {why}")
    inputs, outputs = _match_io(converter, ref, inputs, outputs)
    return {"export_s": export_s, "op_census": census, "compute_dtypes": dtypes, "inputs": inputs, "outputs": outputs,
            "files": [p.relative_to(out_path.parent).as_posix() for p in files], "form": form.form,
            "rewrites": tuple(form.rewrites)}


# ---------------------------------------------------------------- the parent


def _move_into(work: Path, folder: Path) -> None:
    """Rename every top-level entry the child wrote from the temporary folder into the cache folder."""
    for entry in sorted(work.iterdir()):
        target = folder / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(entry, target)


def refusal(converter: Converter, precision: str, options: dict[str, Any], calibration: CalibrationConfig) -> str | None:
    """One line why this (format, precision) cannot be made here: the converter's own, or its calibration method."""
    if why := converter.refusal(precision, options):
        return why
    if precision in converter.calibrated and calibration.method not in converter.calibration_methods:
        return (f"{converter.format} {precision}: calibration method {calibration.method} is not offered "
                f"(offered: {', '.join(sorted(converter.calibration_methods))})")
    return None


def export_artifact(ref: ModelRef, fmt: str, precision: str, options: dict[str, Any] | None, cache_dir: Path,
                    timeout_s: float, use_cache: bool = True, converter: Converter | None = None,
                    calibration: CalibrationConfig | None = None) -> Artifact:
    """The cached artifact, or a fresh export in a child; failures come back as export_failed records.

    A precision the converter cannot produce comes back at once as a `skipped` record with its reason.
    """
    converter = converter or get_converter(fmt)
    merged = converter.merge_options(options)
    calibration = calibration or CalibrationConfig()
    layers = tuple(merged.get("float_layers", ()))
    row_precision = mixed_precision(precision) if layers else precision  # int8 with float layers: int8-mixed
    if why := refusal(converter, precision, merged, calibration):
        return Artifact(model=ref.name, format=fmt, precision=row_precision, status=SKIPPED, reason=why,
                        versions=converter.versions(), options=merged, float_layers=layers)
    clips = None
    if precision in converter.calibrated:
        clips = make_calibration(ref, calibration, cache_dir)
        merged = {**merged, "calibration_method": calibration.method}  # the child's export reads it; the row shows it
    key = cache_key(ref, fmt, precision, merged, converter, clips)
    folder = Path(cache_dir) / ref.name / f"{fmt}-{row_precision}-{key[:12]}"
    with key_lock(folder):  # one exporter per key at a time, across runs: a second one waits, then takes the hit
        if use_cache and (hit := cached_artifact(folder, key, converter)) is not None:
            return hit

        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD).unlink(missing_ok=True)  # from here until the new record, nothing here is a hit
        log_path = folder / LOG
        base = Artifact(model=ref.name, format=fmt, precision=row_precision, status=EXPORT_FAILED,
                        versions=converter.versions(), options=merged, log_path=str(log_path), cache_key=key,
                        calibration=clips.label if clips else "", float_layers=layers)
        name = converter.filename(merged)
        work = folder / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            done = run_child(_export_job, (converter, ref, precision, merged, str(work / name), clips), timeout_s,
                             log_path)
            if done.failure:
                artifact = replace(base, status=done.failure.status(EXPORT_FAILED), reason=done.failure.reason,
                                   export_s=round(done.failure.seconds, 3))
            else:
                artifact = _finish(base, done.value, work, folder, name)
            artifact.peak_mb = done.memory.peak_mb
        finally:
            shutil.rmtree(work, ignore_errors=True)
        artifact.save(folder / RECORD)
        return artifact


@contextmanager
def key_lock(folder: Path, poll_s: float = 0.2) -> Iterator[None]:
    """An exclusive flock on `<folder>.lock` beside the cache folder; waiting gives up when the run stops."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "a+") as f:
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if stopping():
                    raise Stopped("the run is stopping") from None
                time.sleep(poll_s)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def sweep_temporary(cache_dir: Path) -> list[Path]:
    """Remove the `.tmp-<pid>-*` folders of exports whose process is gone (killed runs); returns them."""
    swept = []
    for tmp in Path(cache_dir).glob("*/*/.tmp-*"):
        pid = tmp.name.split("-")[1]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            swept.append(tmp)
    return swept


def _finish(base: Artifact, result: dict, work: Path, folder: Path, name: str) -> Artifact:
    """Check the child's files in the parent too, move them into place and describe them."""
    written = [work / rel for rel in result["files"]]
    missing = [p.name for p in written if not p.exists() or (p.is_file() and p.stat().st_size == 0)]
    if missing or not written:
        return replace(base, reason=f"ArtifactError: empty or missing output: {', '.join(missing) or name}")
    _move_into(work, folder)
    files = [folder / rel for rel in result["files"]]
    return replace(
        base, status=PASSED, path=str(folder / name), size_bytes=sum(p.stat().st_size for p in files),
        sha256=files_sha256(files, folder), export_s=round(result["export_s"], 3),
        inputs=tuple(result["inputs"]), outputs=tuple(result["outputs"]), op_census=dict(result["op_census"]),
        compute_dtypes=dict(result["compute_dtypes"]), form=result.get("form", ""), rewrites=result.get("rewrites", ()))


# ---------------------------------------------------------------- planning and the table


def plan_artifacts(cfg: PipelineConfig) -> list[tuple[str, str, dict]]:
    """(format, precision, merged options) for every configured artifact, in config order (names were checked
    when the config was read). A precision the converter cannot produce stays in the plan: export_artifact
    turns it into a `skipped` record."""
    plan = []
    for fmt, precisions in cfg.formats.items():
        options = get_converter(fmt).merge_options(cfg.converter_options.get(fmt))
        plan += [(fmt, precision, dict(options)) for precision in dict.fromkeys(precisions)]
    return plan


def export_table(artifacts: list[Artifact]):
    """A rich table, one row per artifact: what was exported, how big, how long, and why not."""

    table = Table(title="Exports")
    for column, justify in (("format", "left"), ("precision", "left"), ("status", "left"), ("size MB", "right"),
                            ("seconds", "right"), ("ops", "right"), ("cached", "left"), ("reason", "left")):
        table.add_column(column, justify=justify)
    for a in artifacts:
        table.add_row(a.format, a.precision, status_cell(a.status), f"{a.size_bytes / 1e6:.1f}" if a.ok else "",
                      f"{a.export_s:.1f}", str(sum(a.op_census.values())) if a.op_census else "",
                      "yes" if a.cached else "", a.reason)
    return table
