"""The 2D-lowered form: 3D convolutions and pools rewritten as 2D ops on time folded into the batch.

From the first lowered op to the global mean the tensor is (N*T, C, H, W) (frame t of clip n at row
n*T + t), so converters see plain 2D graphs with no per-layer transposes. A Conv3d with temporal
kernel 1 is a Conv2d on that layout; one with kt > 1 is one Conv2d over its kt temporally shifted
frames concatenated on the channel axis (weights reshaped once, here). Modules are replaced where
they sit (same attribute path, so `layer2.0.conv1.0` names the same conv in both forms). Every
module learns its T statically from one forward pass at rewrite time; N stays dynamic. The rewrite
is checked against the 3D form on a random input and undone, with the reason, if they differ.
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from edgebench.catalogue import LOWERED, THREE_D
from edgebench.models.friendly import GlobalMean

NO_3D = "no 3D convolution or pool runs in the forward pass"
RTOL = 1e-4  # max |lowered - 3d| allowed, relative to max |3d output|: fp32 reordering is ~1e-7

_ROWS = [False]  # True inside rows_layout(): the static-batch path runs in eager too (the build-time check)


@contextlib.contextmanager
def rows_layout():
    """Run the static-batch (4D rows) path in eager, as torch.export with a static batch does."""
    _ROWS[0] = True
    try:
        yield
    finally:
        _ROWS[0] = False


def static_clips(x: torch.Tensor, frames: int) -> int | None:
    """N when it is a plain int in a non-strict torch.export (or in rows_layout()), else None (dynamic path).

    With N known, every temporal op works on 4D row slices and concatenations of the folded tensor,
    which litert-torch keeps in NHWC; the 5D view of the dynamic path costs a TRANSPOSE pair per op.
    """
    if torch.jit.is_tracing() or torch.compiler.is_dynamo_compiling():
        return None  # TorchScript keeps the batch dynamic; dynamo (strict export) shows a symbolic batch as an int
    n = x.shape[0]
    return n // frames if isinstance(n, int) and (_ROWS[0] or torch.compiler.is_exporting()) else None


def fold(x: torch.Tensor) -> torch.Tensor:
    """(N, C, T, H, W) -> (N*T, C, H, W); a tensor already folded passes through."""
    return x.transpose(1, 2).flatten(0, 1) if x.dim() == 5 else x


def unfold(x: torch.Tensor, frames: int) -> torch.Tensor:
    """(N*T, C, H, W) -> (N, C, T, H, W), T known statically."""
    return x.unflatten(0, (-1, frames)).transpose(1, 2)


def fold_constant(c: torch.Tensor) -> torch.Tensor:
    """A constant that broadcasts over N and T ((1, C, 1, H, W) or fewer dims) for the folded tensor."""
    return c.reshape((1,) * (5 - c.dim()) + tuple(c.shape)).squeeze(2)


def folded_mean(x: torch.Tensor, frames: int, keepdim: bool = True) -> torch.Tensor:
    """The mean over (T, H, W) of a folded tensor: (N, C, 1, 1, 1), or (N, C) without keepdim."""
    channels, n = x.shape[1], static_clips(x, frames)
    shape = (-1, channels, 1, 1, 1) if keepdim else (-1, channels)
    if n is None:
        return x.unflatten(0, (-1, frames)).mean(dim=(1, 3, 4)).reshape(shape)
    # the spatial mean first: a global average pool, which XNNPACK takes (ExecuTorch delegates it;
    # one mean over (frames, H, W) stayed on the portable kernels), then the mean over the clip's frames
    spatial = x.mean(dim=(2, 3), keepdim=True)
    return _joined([_clip(spatial, c, n, frames).mean(dim=0, keepdim=True) for c in range(n)]).reshape(shape)


def _triple(v) -> tuple[int, int, int]:
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v, v)


def _clip(x: torch.Tensor, c: int, n: int, frames: int) -> torch.Tensor:
    """Clip c of n in a folded tensor of `frames` rows per clip."""
    return x if n == 1 else x[c * frames:(c + 1) * frames]


def _joined(parts: list[torch.Tensor]) -> torch.Tensor:
    """Per-clip parts back in one folded tensor (no concatenation for a single clip)."""
    return parts[0] if len(parts) == 1 else torch.cat(parts)


def _rows(clip: torch.Tensor, start: int, count: int, step: int) -> torch.Tensor:
    """Rows start, start + step, ... (count of them): a slice, or 1-row slices concatenated (XNNPACK takes
    no STRIDED_SLICE with a stride > 1)."""
    if step == 1:
        return clip[start:start + count]
    return torch.cat([clip[i:i + 1] for i in range(start, start + count * step, step)])


def _padding_row(like: torch.Tensor) -> torch.Tensor:
    """One zero padding frame made from a row of the tensor (x * 0): no constant that litert-torch must lay out."""
    return like[:1] * 0.0


class _Temporal(nn.Module):
    """Shared by the lowered ops: the kt temporally shifted (strided) frame sets of a folded input."""

    def __init__(self, frames_in: int, frames_out: int, kt: int, st: int, pt: int, dt: int):
        super().__init__()
        self.frames_in, self.frames_out = frames_in, frames_out
        self.kt, self.st, self.pt, self.dt = kt, st, pt, dt

    def _trivial(self) -> bool:
        return self.kt == 1 and self.pt == 0 and self.st == 1 and self.frames_out == self.frames_in

    def _gathered(self, x: torch.Tensor, replicate: bool) -> torch.Tensor:
        """Dynamic batch: (N*T_out, kt, C, H, W), one gather of the padded (N, T, C, H, W) view (`replicate`:
        a padding frame repeats the clip's edge frame, gathered without padding)."""
        clips = x.unflatten(0, (-1, self.frames_in))
        pad = 0 if replicate else self.pt
        if pad:
            clips = F.pad(clips, (0, 0, 0, 0, 0, 0, pad, pad))
        index = [min(max(t * self.st + k * self.dt + pad - self.pt, 0), self.frames_in + 2 * pad - 1)
                 for t in range(self.frames_out) for k in range(self.kt)]
        # a gather gives a fresh tensor: flattening a strided slice would make torch.export guard on N == 1
        picked = clips.index_select(1, torch.tensor(index, device=x.device))
        return picked.reshape(-1, self.kt, *x.shape[1:])

    def _row_taps(self, x: torch.Tensor, n: int, replicate: bool) -> list[torch.Tensor]:
        """Static batch: the kt taps as 4D row slices and concatenations (litert-torch keeps them NHWC)."""
        taps: list[list[torch.Tensor]] = [[] for _ in range(self.kt)]
        for c in range(n):
            clip = _clip(x, c, n, self.frames_in)
            if self.pt:
                first, last = (clip[:1], clip[-1:]) if replicate else (_padding_row(clip),) * 2
                clip = torch.cat([first] * self.pt + [clip] + [last] * self.pt)
            for k in range(self.kt):
                taps[k].append(_rows(clip, k * self.dt, self.frames_out, self.st))
        return [_joined(t) for t in taps]

    def span(self, k: int) -> tuple[int, int, int]:
        """Tap k's (first output frame, count, first input frame): the output frames whose input is in the clip."""
        offset = k * self.dt - self.pt  # output frame t reads input frame t*st + offset
        first = max(0, -(offset // self.st))
        last = min(self.frames_out - 1, (self.frames_in - 1 - offset) // self.st)
        return first, last - first + 1, first * self.st + offset

    def frames(self, x: torch.Tensor, n: int | None, start: int, count: int) -> torch.Tensor:
        """Input frames start, start + st, ... (count of them) of every clip, folded."""
        if start == 0 and count == self.frames_in and self.st == 1:
            return x
        if n is None:  # a gather, as in _gathered: a fresh tensor keeps the batch free in torch.export
            index = torch.tensor(range(start, start + count * self.st, self.st), device=x.device)
            return x.unflatten(0, (-1, self.frames_in)).index_select(1, index).flatten(0, 1)
        rows = [_rows(_clip(x, c, n, self.frames_in), start, count, self.st) for c in range(n)]
        return _joined(rows)

    def placed(self, y: torch.Tensor, n: int | None, first: int, count: int) -> torch.Tensor:
        """y (count frames per clip) as output frames first .. first + count - 1, zero frames around it."""
        after = self.frames_out - first - count
        if first == 0 and after == 0:
            return y
        if n is None:
            return F.pad(y.unflatten(0, (-1, count)), (0, 0, 0, 0, 0, 0, first, after)).flatten(0, 1)
        clips = []
        for c in range(n):
            part = _clip(y, c, n, count)
            zero = _padding_row(part)
            clips.append(torch.cat([zero] * first + [part] + [zero] * after))
        return _joined(clips)

    def taps(self, x: torch.Tensor, replicate: bool = False) -> list[torch.Tensor]:
        """kt folded tensors (N*T_out, C, H, W): tap k holds input frame t*st - pt + k*dt for output frame t;
        a frame outside the clip is zero, or with `replicate` the nearest edge frame."""
        if self._trivial():
            return [x]
        n = static_clips(x, self.frames_in)
        if n is None:
            return list(self._gathered(x, replicate).unbind(1))
        return self._row_taps(x, n, replicate)

    def stacked(self, x: torch.Tensor) -> torch.Tensor:
        """(N*T_out, kt*C, H, W): the kt taps concatenated on channels (channel k*C + c is tap k's c)."""
        if self._trivial():
            return x
        n = static_clips(x, self.frames_in)
        if n is None:
            return self._gathered(x, False).flatten(1, 2)
        taps = self._row_taps(x, n, False)
        return taps[0] if self.kt == 1 else torch.cat(taps, dim=1)


STACK_BELOW_CHANNELS = 16  # stacking copies kt x the input: worth it for thin inputs only (docs/converters.md)


class FoldedConv3d(_Temporal):
    """A Conv3d as 2D convs: one over the kt shifted frames stacked on channels (thin inputs), else kt summed.

    Stacked: one deep Conv2d, the input copied kt times (cheap for a stem's 3 channels). Summed (wider
    inputs, groups > 1): tap k's Conv2d runs on just the input frames it reads, its output is put in
    place with zero frames, and the kt outputs are added: no input copy and no conv over padding frames.
    """

    def __init__(self, conv: nn.Conv3d, frames_in: int, frames_out: int):
        (kt, kh, kw), (st, sh, sw) = conv.kernel_size, conv.stride
        (pt, ph, pw), (dt, dh, dw) = (0, 0, 0) if conv.padding == "valid" else conv.padding, conv.dilation
        super().__init__(frames_in, frames_out, kt, st, pt, dt)
        self.stride2d, self.padding2d, self.dilation2d, self.groups = (sh, sw), (ph, pw), (dh, dw), conv.groups
        self.summed = kt > 1 and (conv.groups > 1 or conv.in_channels >= STACK_BELOW_CHANNELS)
        w = conv.weight.detach()  # (O, C/g, kt, kh, kw)
        if self.summed:  # one (O, C/g, kh, kw) parameter per tap: no indexing op left in the exported graph
            taps = [w[:, :, k].clone(memory_format=torch.contiguous_format) for k in range(kt)]
            self.weight = nn.ParameterList([nn.Parameter(t, requires_grad=False) for t in taps])
        else:  # tap k, channel c -> input channel k*C + c, as torch.cat lays them out
            w = w.permute(0, 2, 1, 3, 4).reshape(w.shape[0], kt * w.shape[1], kh, kw)
            self.weight = nn.Parameter(w.clone(), requires_grad=False)
        self.bias = None if conv.bias is None else nn.Parameter(conv.bias.detach().clone(), requires_grad=False)
        self.kind = "conv2d" if kt == 1 else (f"conv2d x{kt} summed" if self.summed else f"conv2d<-{kt} taps stacked")

    def _conv(self, x, weight, bias):
        return F.conv2d(x, weight, bias, self.stride2d, self.padding2d, self.dilation2d, self.groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = fold(x)
        if not self.summed:
            return self._conv(self.stacked(x), self.weight, self.bias)
        n, spans = static_clips(x, self.frames_in), [self.span(k) for k in range(self.kt)]
        full = next((k for k, (first, count, _) in enumerate(spans) if count == self.frames_out), None)
        out = None
        for k, (first, count, start) in enumerate(spans):
            if count > 0:
                y = self._conv(self.frames(x, n, start, count), self.weight[k], self.bias if k == full else None)
                y = self.placed(y, n, first, count)
                out = y if out is None else out + y
        if self.bias is not None and full is None:  # no tap covers every output frame: the bias on its own
            out = out + self.bias.reshape(1, -1, 1, 1)
        return out


class FoldedPool3d(_Temporal):
    """A MaxPool3d/AvgPool3d as an elementwise max/mean over the kt taps, then the 2D pool."""

    def __init__(self, pool: nn.MaxPool3d | nn.AvgPool3d, frames_in: int, frames_out: int):
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = (_triple(pool.kernel_size), _triple(pool.stride or pool.kernel_size),
                                                    _triple(pool.padding))
        self.is_max = isinstance(pool, nn.MaxPool3d)
        dt, dh, dw = _triple(pool.dilation) if self.is_max else (1, 1, 1)
        super().__init__(frames_in, frames_out, kt, st, pt, dt)
        self.kernel2d, self.stride2d, self.padding2d, self.dilation2d = (kh, kw), (sh, sw), (ph, pw), (dh, dw)
        self.ceil_mode = pool.ceil_mode
        self.count_include_pad = getattr(pool, "count_include_pad", True)
        self.kind = ("maxpool2d" if self.is_max else "avgpool2d") + (f"<-{kt} taps" if kt > 1 else "")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.is_max:
            # an edge frame for padding: every window holds a clip frame, so the max is the same, and no
            # -inf reaches int8 observers (an infinite scale: TFLite and ExecuTorch int8 refuse it)
            x = functools.reduce(torch.maximum, self.taps(fold(x), replicate=True))
            return F.max_pool2d(x, self.kernel2d, self.stride2d, self.padding2d, self.dilation2d, self.ceil_mode)
        taps = self.taps(fold(x))
        x = taps[0] if self.kt == 1 else sum(taps[1:], taps[0]) / self.kt
        return F.avg_pool2d(x, self.kernel2d, self.stride2d, self.padding2d, self.ceil_mode, self.count_include_pad)


class FoldedMean(GlobalMean):
    """The global mean over (T, H, W) of a folded tensor, back to the (N, C, 1, 1, 1) of the 3D form."""

    def __init__(self, frames: int):
        super().__init__(3)
        self.frames, self.kind = frames, "globalmean (folded)"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) if x.dim() == 5 else folded_mean(x, self.frames)


class Kept3d(nn.Module):
    """A 3D module the rewrite does not handle, run on its own 5D view of the folded tensor."""

    def __init__(self, module: nn.Module, frames_in: int, why: str):
        super().__init__()
        self.inner, self.frames_in, self.why, self.kind = module, frames_in, why, "kept 3d"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fold(self.inner(unfold(x, self.frames_in) if x.dim() == 4 else x))


def _conv_refusal(conv: nn.Conv3d) -> str | None:
    if isinstance(conv.padding, str):
        return f"padding='{conv.padding}'" if conv.padding != "valid" else None
    if conv.padding_mode != "zeros":
        return f"padding_mode='{conv.padding_mode}'"
    return None


def _pool_refusal(pool) -> str | None:
    kt, st, pt = _triple(pool.kernel_size)[0], _triple(pool.stride or pool.kernel_size)[0], _triple(pool.padding)[0]
    temporal = (kt, st, pt) != (1, 1, 0)
    if getattr(pool, "return_indices", False):
        return "return_indices=True"
    if pool.ceil_mode and temporal:
        return "ceil_mode=True with a temporal window"
    if isinstance(pool, nn.MaxPool3d) and _triple(pool.dilation)[0] > 1 and pt:
        return "temporal dilation with padding (a padding frame would be an edge frame outside the window)"
    if getattr(pool, "divisor_override", None):
        return "divisor_override"
    if not getattr(pool, "count_include_pad", True) and pt:
        return "count_include_pad=False with temporal padding"
    return None


def rewrite_module(module: nn.Module, t_in: int, t_out: int) -> tuple[nn.Module | None, str]:
    """(the lowered module, "") for one 3D module seen with T = t_in in and t_out out, or (None, why not)."""
    if isinstance(module, nn.Conv3d):
        why = _conv_refusal(module)
        return (None, why) if why else (FoldedConv3d(module, t_in, t_out), "")
    if isinstance(module, (nn.MaxPool3d, nn.AvgPool3d)):
        why = _pool_refusal(module)
        return (None, why) if why else (FoldedPool3d(module, t_in, t_out), "")
    if isinstance(module, nn.BatchNorm3d):  # per-channel on axis 1: a BatchNorm2d on the folded tensor
        bn = nn.BatchNorm2d(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
        bn.load_state_dict(module.state_dict())
        return bn.eval(), ""
    if isinstance(module, nn.AdaptiveAvgPool3d) and not all(s == 1 for s in _triple(module.output_size)):
        return None, f"output_size={module.output_size}"
    return FoldedMean(t_in), ""  # a global mean (or adaptive pool to 1) on the folded tensor


def targets(module: nn.Module) -> bool:
    """A module the lowering rewrites: a 3D conv, pool or batch norm, or a global mean over (T, H, W)."""
    if isinstance(module, GlobalMean):
        return len(module.dims) == 3
    return isinstance(module, (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d, nn.BatchNorm3d, nn.AdaptiveAvgPool3d))


@dataclass
class LoweringReport:
    """What the lowering did: the form, the 3D ops kept as they are (and why), the FLOPs that run lowered."""

    form: str = THREE_D
    reason: str = ""  # why the whole model stays 3D ("" when lowered)
    kept: dict[str, str] = field(default_factory=dict)  # 3D op (module path, or op and scope) -> why it stays 3D
    unfolded: dict[str, int] = field(default_factory=dict)  # op the lowering does not know -> times it got a 5-D view
    driver: str = ""  # "graph" (lowering_graph.py) or "modules" (module swap, when the model cannot be traced)
    driver_note: str = ""  # why the graph driver was not used
    flops_lowered: int = 0  # FLOPs (of the 3D form) of the ops that run on the folded tensor
    flops_total: int = 0
    max_abs_diff: float = 0.0  # lowered vs 3D on the check input
    rewrites: list[str] = field(default_factory=list)  # export-friendly rewrites for the format (models/rewrites.py)

    @property
    def lowered_share(self) -> float | None:
        """Fraction of the FLOPs that run lowered (None when the graph driver did not count them)."""
        return self.flops_lowered / self.flops_total if self.flops_total else None


def _frames(model: nn.Module, example: torch.Tensor) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
    """The 3D output and, per target module, (T in, T out) seen in one forward pass."""
    seen: dict[str, set] = {}
    hooks = [m.register_forward_hook(lambda m, a, out, n=name: seen.setdefault(n, set()).add((a[0].shape[2], out.shape[2])))
             for name, m in model.named_modules() if targets(m)]
    try:
        with torch.no_grad():
            out = model(example)
    finally:
        for h in hooks:
            h.remove()
    several = sorted(n for n, s in seen.items() if len(s) > 1)
    if several:
        raise ValueError(f"{several[0]} runs with several frame counts")
    return out, {n: next(iter(s)) for n, s in seen.items()}


def mismatch(got: torch.Tensor, want: torch.Tensor, rtol: float = RTOL,
             names: tuple[str, str] = ("lowered", "3d")) -> str | None:
    """Why `got` is not `want` within fp32 rounding (relative to max |want|), or None."""
    if got.shape != want.shape:
        return f"output shape {tuple(got.shape)} != {tuple(want.shape)}"
    diff, scale = (got - want).abs().max().item(), want.abs().max().item()
    if not diff <= rtol * max(scale, 1e-6):
        return f"max |{names[0]} - {names[1]}| = {diff:.3g} > {rtol:g} x max |{names[1]}| = {scale:.3g}"
    return None


def check_layouts(model: nn.Module, example: torch.Tensor, want: torch.Tensor) -> tuple[str | None, float]:
    """(why the lowered `model` differs from the 3D output `want` on either batch path or None, max |diff|)."""
    worst = 0.0
    for layout, context in (("dynamic batch", contextlib.nullcontext), ("static batch", rows_layout)):
        try:
            with torch.no_grad(), context():
                got = model(example)
            why = mismatch(got, want)
            if got.shape == want.shape:
                worst = max(worst, float((got - want).abs().max()))
        except Exception as e:  # noqa: BLE001 - e.g. a module outside the rewrite that needs the 5D layout
            why = f"forward failed: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        if why:
            return f"{layout} path: {why}", worst
    return None, worst


def lower_modules(model: nn.Module, example: torch.Tensor) -> LoweringReport:
    """The module swap: rewrite `model`'s 3D modules in place, the ops between them left as they are
    (right only when those ops do not care about the layout); undone unless it matches the 3D form."""
    try:
        want, frames = _frames(model, example)
    except Exception as e:  # noqa: BLE001 - a model we cannot trace shapes through stays 3D
        return LoweringReport(reason=f"shape pass failed: {type(e).__name__}: {e}")
    if not any(isinstance(model.get_submodule(n), (nn.Conv3d, nn.MaxPool3d, nn.AvgPool3d)) for n in frames):
        return LoweringReport(reason=NO_3D)
    undo, report = [], LoweringReport(form=LOWERED, driver="modules")
    for name, (t_in, t_out) in frames.items():
        parent_name, _, attr = name.rpartition(".")
        parent, old = model.get_submodule(parent_name), model.get_submodule(name)
        new, why = rewrite_module(old, t_in, t_out)
        if new is None:
            new, report.kept[name] = Kept3d(old, t_in, why), why
        setattr(parent, attr, new)
        undo.append((parent, attr, old))
    why, report.max_abs_diff = check_layouts(model, example, want)
    if why:
        for parent, attr, old in reversed(undo):
            setattr(parent, attr, old)
        return LoweringReport(reason=f"lowering undone, it differs from the 3D form ({why})")
    return report


_COMPUTE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool2d, nn.AvgPool3d, nn.Linear,
            GlobalMean, _Temporal)


def _kind(module: nn.Module) -> str:
    """A lowered op's own kind, else its torch class (torchvision's Conv3DSimple counts as conv3d)."""
    if hasattr(module, "kind"):
        return module.kind
    return next((c.__name__.lower() for c in _COMPUTE if isinstance(module, c)), type(module).__name__.lower())


def op_mix(model: nn.Module) -> dict[str, int]:
    """Compute modules by kind (`conv3d`, `conv2d`, `conv2d<-3 taps stacked`, `linear`...): the info output."""
    mix: dict[str, int] = {}
    for m in model.modules():
        if isinstance(m, _COMPUTE):
            mix[_kind(m)] = mix.get(_kind(m), 0) + 1
    return mix
