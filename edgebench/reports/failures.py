"""Why a row failed, as one class of a small fixed set, read from its records alone.

unsupported_op      a toolchain has no conversion or kernel for an op (which op, which toolchain)
partial_delegation  part of the model stays off the delegate or the precision asked for (which ops, % of FLOPs)
numerics            the artifact runs, but its outputs or its accuracy are off (parity or accuracy verdict)
timeout             a child hit its hard timeout (which step)
out_of_memory       a child went past its memory budget (which step, its peak)
toolchain_crash     anything else a converter or runtime raised or died of (which toolchain, its words)

A pure function of the records (the converter's and runtime's own words, statuses, censuses and options),
so a report rebuilt from run.json classifies exactly as the night did.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edgebench.records import (
    ACCURACY_FAILED,
    EXPORT_FAILED,
    OUT_OF_MEMORY,
    PARITY_FAILED,
    REPAIR_FAILED,
    RUNTIME_FAILED,
    AccuracyResult,
    Artifact,
    LatencyResult,
    ParityResult,
)

UNSUPPORTED_OP, PARTIAL_DELEGATION, NUMERICS = "unsupported_op", "partial_delegation", "numerics"
TIMEOUT, TOOLCHAIN_CRASH = "timeout", "toolchain_crash"
CLASSES = (UNSUPPORTED_OP, PARTIAL_DELEGATION, NUMERICS, TIMEOUT, OUT_OF_MEMORY, TOOLCHAIN_CRASH)

# The toolchain's own words naming an op it cannot convert or run; the first group is the op.
_UNSUPPORTED = [
    re.compile(r"convert function for op '([^']+)' not implemented"),  # coremltools (torch frontend)
    re.compile(r"failed to legalize operation '([^']+)'"),  # MLIR: TFLite through litert-torch
    re.compile(r"Could not find an implementation for (\w+\(\d+\))"),  # ONNX Runtime kernel registry
    re.compile(r"Unsupported FX nodes: \{'call_function': \['([^']+)'"),  # torch.onnx (dynamo)
    re.compile(r"Exporting the operator '?([\w:.]+)'? to ONNX opset version \d+ is not supported"),  # torch.onnx
    re.compile(r"Missing out variants: \{'([^']+)'"),  # ExecuTorch memory planning
    re.compile(r"Could not run '([\w:.]+)' with arguments from the '\w+' backend"),  # a torch dispatcher kernel
    re.compile(r"(?:No|no) (?:lowering|decomposition|converter|kernel|conversion) (?:registered |found )?for ([\w:.]+)"),
    re.compile(r"[Uu]nsupported (?:op|operator|operation)[: ]+'?([\w:.]+)"),
]
# Part of the model left off the delegate, or off the precision asked for.
_PORTABLE = re.compile(r"(\d+) 3D convolutions left to the portable kernels(?: \((\d+) % of the conv/matmul FLOPs "
                       r"delegated\))?")  # converters/executorch.py
_MISLABELLED = re.compile(r"mislabelled file: (\w+): (\d+) of (\d+) conv/matmul ops run (\w+) \(([^)]*)\)")  # export.py
_SIGNAL = re.compile(r"killed by (SIG\w+)|exited with code -?\d+ without a result")
_TIMEOUT = re.compile(r"timeout after [\d.]+ s")


@dataclass(frozen=True)
class Failure:
    """A failed row's class, the step it failed in, the toolchain and a short detail naming what went wrong."""

    kind: str
    step: str  # export | repair | parity | benchmark | accuracy
    toolchain: str
    detail: str
    op: str = ""  # the op an unsupported_op or partial_delegation names

    def text(self) -> str:
        return f"{self.kind.replace('_', ' ')}: {self.detail}"


def classify(art: Artifact | None, pr: ParityResult | None = None, lr: LatencyResult | None = None,
             ar: AccuracyResult | None = None) -> Failure | None:
    """The class of a row's decisive failure; None when no part of it failed (passed or skipped)."""
    parts = [("export", art, _toolchain_of_export(art)), ("parity", pr, pr and pr.runtime),
             ("benchmark", lr, lr and lr.runtime), ("accuracy", ar, ar and ar.runtime)]
    failed = [(step, rec, tool) for step, rec, tool in parts if rec is not None and rec.status in _FAILED]
    if not failed:
        return None
    # An export failure (or a failed repair: no file either) decides; then out of memory anywhere; then the order.
    step, rec, tool = min(failed, key=lambda f: (f[0] != "export", f[1].status != OUT_OF_MEMORY))
    reason = rec.reason or ""
    if rec.status == OUT_OF_MEMORY:
        return Failure(OUT_OF_MEMORY, step, tool or "", _first(reason.removeprefix("out of memory: ")))
    if _TIMEOUT.search(reason):
        return Failure(TIMEOUT, step, tool or "", f"{step} {_TIMEOUT.search(reason).group(0)}")
    if rec.status == PARITY_FAILED:
        return Failure(NUMERICS, step, tool or "", _parity_detail(rec))
    if rec.status == ACCURACY_FAILED:
        return Failure(NUMERICS, step, tool or "", _accuracy_detail(rec))
    if rec.status == REPAIR_FAILED:  # no small float layer set makes the file pass: its numerics, beyond repair
        return Failure(NUMERICS, "repair", tool or "", _first(reason.removeprefix("repair_failed: ").split("; tried")[0]))
    return _from_words(step, tool or "", reason)


_FAILED = (EXPORT_FAILED, OUT_OF_MEMORY, REPAIR_FAILED, PARITY_FAILED, RUNTIME_FAILED, ACCURACY_FAILED)


def _from_words(step: str, tool: str, reason: str) -> Failure:
    """unsupported_op, partial_delegation or toolchain_crash from what the toolchain said."""
    if m := _PORTABLE.search(reason):
        share = f", {m.group(2)} % of the conv/matmul FLOPs delegated" if m.group(2) else ""
        return Failure(PARTIAL_DELEGATION, step, tool, f"{m.group(1)} 3D convolutions off the XNNPACK delegate{share} "
                       "(portable kernels take 3-D/4-D input only)", op="aten.convolution (5-D)")
    if m := _MISLABELLED.search(reason):
        precision, good, total, dtype, census = m.groups()
        return Failure(PARTIAL_DELEGATION, step, tool, f"{int(total) - int(good)} of {total} conv/matmul ops stay "
                       f"out of {precision} ({census})", op="conv/matmul")
    for pattern in _UNSUPPORTED:
        if m := pattern.search(reason):
            return Failure(UNSUPPORTED_OP, step, tool, f"{m.group(1)} in {tool}", op=m.group(1))
    if m := _SIGNAL.search(reason):
        return Failure(TOOLCHAIN_CRASH, step, tool, f"{tool} {m.group(0)}")
    return Failure(TOOLCHAIN_CRASH, step, tool, f"{tool}: {_first(reason)}")


def _toolchain_of_export(art: Artifact | None) -> str:
    """The converter's library, from the versions the artifact records (torch only when nothing else)."""
    if art is None:
        return ""
    others = [k for k in art.versions if k not in ("torch", "torchvision", "numpy", "python")]
    return others[0] if others else ("torch" if art.versions else art.format)


def _parity_detail(pr: ParityResult) -> str:
    figures = [f"cosine {pr.cosine:.4f}" if pr.cosine is not None else "",
               f"PSNR {pr.psnr_db:.1f} dB" if pr.psnr_db is not None else "",
               f"top-1 agree {pr.top1_agree:.0%}" if pr.top1_agree is not None else ""]
    where = f"; diverges at {pr.first_divergent_layer}" if pr.first_divergent_layer else ""
    return f"parity on {pr.runtime}: " + ", ".join(f for f in figures if f) + where


def _accuracy_detail(ar: AccuracyResult) -> str:
    drop = f"top-1 drop {ar.top1_drop:+.1f} points" if ar.top1_drop is not None else "accuracy"
    bound = f" over the {ar.bound:g} bound" if ar.bound is not None else ""
    return f"{drop}{bound} on {ar.runtime}"


def _first(reason: str, limit: int = 160) -> str:
    """The reason's first clause, short enough for a cell's title."""
    text = reason.split(" | ")[0].split(" (log: ")[0].strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
