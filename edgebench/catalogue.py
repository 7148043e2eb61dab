"""The format catalogue: one entry per format naming every part a complete format needs (Optimum's
TasksManager style), the eager baseline's identity, and the device kinds.

Parts are lazy "module:attr" references: the config checks every format, runtime and device name
against this module without importing a converter, a runtime or a backend. A part a format lacks is
an explicit `none("because ...")`, so a missing tapper or sniffer is a decision anyone can read, not an
oversight (tests/unit/test_catalogue.py walks every entry). Formats from elsewhere (a plugin, a test)
join through `$EDGEBENCH_FORMATS`, which child processes inherit.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from typing import Any

from edgebench.errors import UserError

LOWERED, THREE_D = "2d-lowered", "3d"  # export forms (models/lowering.py): time folded into the batch, or as is
PLUGINS_ENV = "EDGEBENCH_FORMATS"  # comma-separated "module:attr" references to more FormatEntry objects


@dataclass(frozen=True)
class Ref:
    """A lazy reference to a part ("package.module:attr"), or its explicit absence with the reason."""

    target: str = ""
    none: str = ""  # why there is no such part ("none, because ...")

    def __bool__(self) -> bool:
        return bool(self.target)

    def load(self) -> Any:
        """Import the module and return the attribute (the only place a part's module is imported)."""
        if not self.target:
            raise LookupError(f"no such part: {self.none}")
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


def none(because: str) -> Ref:
    """A part a format does not have, and why."""
    return Ref(none=because)


@dataclass(frozen=True)
class FormatEntry:
    """Everything a complete format has: the parts each pipeline step looks up, and the names config checks."""

    name: str
    converter: Ref  # a converters.base.Converter subclass
    runtimes: dict[str, Ref]  # runtime name -> runtimes.base.Runtime subclass, in report order
    precisions: tuple[str, ...]  # what the converter can make (others: a skipped row saying why)
    default_precisions: tuple[str, ...]  # what configs/pipeline.yaml exports
    export_form: str  # LOWERED or THREE_D: the form of the model the converter exports when the model lowers
    suffixes: tuple[str, ...]  # the file (or folder) name ends: the converter's own first, then option-chosen ones
    tapper: Ref  # fn(path, one input) -> [parity.taps.base.ArtifactTap]: the intermediate tensors, for localization
    sniffer: Ref  # fn(path) -> bool: the file's content is of this format (a file from elsewhere, no known suffix)
    # fn mapping float_layers (module paths) onto the toolchain's own per-layer mechanism (docs/repair.md); the
    # converter's `mixable` / `keep_in` say which precisions and float kinds it offers
    float_layers: Ref = field(default_factory=lambda: none("the converter takes no float_layers option yet"))
    why_form: str = ""  # why this export form


FORMATS: tuple[FormatEntry, ...] = (
    FormatEntry(
        name="torchscript",
        converter=Ref("edgebench.converters.torchscript:TorchScriptConverter"),
        runtimes={"torchscript": Ref("edgebench.runtimes.torchscript:TorchScriptRuntime")},
        precisions=("fp32",), default_precisions=("fp32",), export_form=THREE_D, suffixes=(".pt", ".ptl"),
        tapper=Ref("edgebench.parity.taps.torchscript:torchscript_taps"),
        sniffer=Ref("edgebench.converters.sniffers:is_torchscript"),
        float_layers=none("fp32 only: every layer is float already"),
        why_form="TorchScript runs PyTorch's own kernels, where Conv3d beats the 2D-lowered graph "
                 "(gather + concatenation + Conv2d), as in eager (docs/converters.md)"),
    FormatEntry(
        name="onnx",
        converter=Ref("edgebench.converters.onnx:OnnxConverter"),
        runtimes={"onnxruntime": Ref("edgebench.runtimes.onnxruntime:OnnxRuntimeRuntime")},
        precisions=("fp32", "int8", "w8a16"), default_precisions=("fp32", "int8"), export_form=LOWERED,
        suffixes=(".onnx",), tapper=Ref("edgebench.parity.taps.onnx:onnx_taps"),
        sniffer=Ref("edgebench.converters.sniffers:is_onnx"),
        float_layers=Ref("edgebench.converters.onnx:layer_nodes"),  # -> quantize_static's nodes_to_exclude
        why_form="ONNX Runtime's 2D convolutions beat its 3D ones (0.91, 0.74, 0.68 of the 3d time for mc3_18, "
                 "r3d_18, r2plus1d_18: docs/converters.md)"),
    FormatEntry(
        name="coreml",
        converter=Ref("edgebench.converters.coreml:CoreMLConverter"),
        runtimes={"coreml": Ref("edgebench.runtimes.coreml:CoreMLRuntime"),
                  "coreml-mil": Ref("edgebench.runtimes.coreml_mil:CoreMLMilRuntime")},
        precisions=("fp32", "fp16", "w8"), default_precisions=("fp32", "fp16", "w8"), export_form=THREE_D,
        suffixes=(".mlpackage",), tapper=Ref("edgebench.parity.taps.coreml:coreml_taps"),
        sniffer=Ref("edgebench.converters.sniffers:is_mlpackage"),
        float_layers=Ref("edgebench.converters.coreml:layer_weights"),  # -> linear_quantize_weights' op_name_configs
        why_form="MIL's conv takes rank-5 input as is, and the Neural Engine cannot be measured here (no Mac); "
                 "the lowered form would add a 5D gather and a reshape per temporal conv (docs/converters.md)"),
    FormatEntry(
        name="tflite",
        converter=Ref("edgebench.converters.tflite:TFLiteConverter"),
        runtimes={"litert": Ref("edgebench.runtimes.litert:LiteRTRuntime")},
        precisions=("fp32", "int8"), default_precisions=("fp32", "int8"), export_form=LOWERED,
        suffixes=(".tflite",), tapper=Ref("edgebench.parity.taps.tflite:tflite_taps"),
        sniffer=Ref("edgebench.converters.sniffers:is_tflite"),
        float_layers=Ref("edgebench.converters.base:outside_layers"),  # -> the PT2E quantizer's annotation filter
        why_form="XNNPACK has no 3D convolution and LiteRT's builtin CONV_3D is float only: lowered, every conv "
                 "runs in XNNPACK (0.50 of the 3d time for mc3_18) and int8 exists"),
    FormatEntry(
        name="executorch",
        converter=Ref("edgebench.converters.executorch:ExecuTorchConverter"),
        runtimes={"executorch": Ref("edgebench.runtimes.executorch:ExecuTorchRuntime")},
        precisions=("fp32", "int8"), default_precisions=("fp32", "int8"), export_form=LOWERED,
        suffixes=(".pte",),
        tapper=Ref("edgebench.parity.taps.executorch:executorch_taps"),
        sniffer=Ref("edgebench.converters.sniffers:is_pte"),
        float_layers=Ref("edgebench.converters.base:outside_layers"),  # -> XNNPACKQuantizer.set_filter_function
        why_form="ExecuTorch's XNNPACK partitioner takes 1D/2D convs only and the portable kernels no 5-D convolution"),
)


@dataclass(frozen=True)
class Eager:
    """The baseline every artifact is judged and timed against: the export-friendly module in PyTorch."""

    format: str = "pytorch"  # the pseudo-format of its rows (no file)
    runtime: str = "torch"
    label: str = "pytorch eager"  # how reports name its rows
    runtime_ref: Ref = Ref("edgebench.runtimes.torch_eager:TorchEagerRuntime")


EAGER = Eager()


@dataclass(frozen=True)
class DeviceKind:
    """A kind of device (`local`, `aihub:<name>`, ...): its backend, how its devices are written, its settings."""

    name: str
    backend: Ref  # a devices.base.Backend subclass
    named: bool = True  # devices of this kind are "<kind>:<name>"; False: the bare kind ("local")
    example: str = "<name>"  # shown in the error for a malformed device string
    settings: str = ""  # top-level pipeline YAML key of its settings, validated by the backend's settings_model


DEVICE_KINDS: tuple[DeviceKind, ...] = (
    DeviceKind("local", Ref("edgebench.devices.local:LocalBackend"), named=False),
    DeviceKind("aihub", Ref("edgebench.devices.aihub:AIHubBackend"), example="<device name>", settings="aihub"),
    DeviceKind("queue", Ref("edgebench.devices.queue:QueueBackend"), example="<work queue name>"),
)


# ---------------------------------------------------------------- lookups


def formats() -> dict[str, FormatEntry]:
    """Every format, in catalogue order: the built-in ones, then those `$EDGEBENCH_FORMATS` names."""
    found = {e.name: e for e in FORMATS}
    for text in filter(None, (t.strip() for t in os.environ.get(PLUGINS_ENV, "").split(","))):
        entry = Ref(text).load()
        if not isinstance(entry, FormatEntry):
            raise UserError(f"${PLUGINS_ENV}: {text} is a {type(entry).__name__}, not a FormatEntry")
        found[entry.name] = entry
    return found


def format_entry(name: str) -> FormatEntry:
    """The entry of one format; an unknown name is a UserError listing the known ones."""
    known = formats()
    if name not in known:
        raise UserError(f"unknown format '{name}'; known formats: {', '.join(known)}")
    return known[name]


def runtime_refs() -> dict[str, Ref]:
    """Every runtime name -> its class reference: the eager baseline first, then each format's, in catalogue order."""
    refs = {EAGER.runtime: EAGER.runtime_ref}
    for entry in formats().values():
        for name, ref in entry.runtimes.items():
            refs.setdefault(name, ref)
    return refs


def runtime_class(name: str) -> type:
    """The class of a catalogued runtime (its module imported now); an unknown name is a UserError listing them."""
    refs = runtime_refs()
    if name not in refs:
        raise UserError(f"unknown runtime '{name}'; known runtimes: {', '.join(refs)}")
    return refs[name].load()


SLOWED = Ref("edgebench.runtimes.slowed:SlowedRuntime")  # wraps any runtime given the option `slowdown`


def configured_runtime(name: str, options: dict[str, Any]) -> Any:
    """A new instance of the runtime with `options` (e.g. {"xnnpack": False}); an unknown option is a UserError.

    The option every runtime takes, `slowdown` (a fraction, e.g. 0.1), makes each run that much slower
    (runtimes/slowed.py: how the regression finder's detection rate is measured)."""
    options = dict(options)
    slowdown = options.pop("slowdown", 0)
    if not isinstance(slowdown, (int, float)) or isinstance(slowdown, bool) or not 0 <= slowdown <= 10:
        raise UserError(f"runtime '{name}': option slowdown must be a fraction between 0 and 10, got {slowdown!r}")
    try:
        runtime = runtime_class(name)(**options)
    except TypeError:
        raise UserError(f"runtime '{name}': unknown option(s) {', '.join(sorted(options))}") from None
    return SLOWED.load()(runtime, float(slowdown)) if slowdown else runtime


def formats_run_by(runtime: str) -> frozenset[str]:
    """The formats whose entry lists this runtime (the eager runtime: the eager pseudo-format)."""
    found = {e.name for e in formats().values() if runtime in e.runtimes}
    return frozenset(found | ({EAGER.format} if runtime == EAGER.runtime else set()))


def default_formats() -> dict[str, list[str]]:
    """format -> precisions: the `formats:` default of the pipeline config."""
    return {e.name: list(e.default_precisions) for e in formats().values()}


def device_kinds() -> dict[str, DeviceKind]:
    return {k.name: k for k in DEVICE_KINDS}


def shown_device(device: str, before: str = " @ ") -> str:
    """`before` + the device, for tables and labels; "" for a device of a bare kind (`local`) or none."""
    if not isinstance(device, str) or not device:
        return ""
    kind = device_kinds().get(device.partition(":")[0])
    return "" if kind is not None and not kind.named else f"{before}{device}"


def split_device(text: str) -> tuple[str, str]:
    """(kind, name) of a device string ("aihub:Galaxy S24", "local"); an unknown kind, a missing or an extra
    name is a one-line UserError."""
    kind, _, name = str(text).strip().partition(":")
    kind, name = kind.strip().lower(), name.strip()
    known = device_kinds().get(kind)
    if known is None:
        forms = ", ".join(f"'{k.name}:{k.example}'" if k.named else f"'{k.name}'" for k in DEVICE_KINDS)
        raise UserError(f"device '{text}': unknown device kind; expected {forms}")
    if known.named and not name:
        raise UserError(f"device '{kind}': missing the name after '{kind}:'")
    if not known.named and name:
        raise UserError(f"device '{kind}:{name}': '{kind}' takes no name")
    return kind, name
