"""`coreml-mil`: executes the saved .mlpackage's MIL program op by op with torch reference kernels.

It evaluates the semantics of the converted program (the ops, weights, shapes and fp16 casts that
coremltools wrote), not Apple's runtime: it runs on any OS, catches conversion bugs (a wrong
weight, a wrong pad, a lost op), and says nothing about Core ML's own kernels or their speed.
fp16 programs: every op whose output is fp16 is computed in float32 from fp16 values and its
result rounded to float16 (fp16 storage, fp32 accumulation, as GPUs and the Neural Engine do).
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from edgebench.records import Artifact, ModelRef
from edgebench.runtimes.base import NotSupported, Runtime, Session, resolve_threads

OpFn = Callable[["_Op"], Any]
OPS: dict[str, OpFn] = {}  # MIL op type -> reference implementation


def supported_ops() -> list[str]:
    """The MIL op types coreml-mil can execute (const included)."""
    return sorted({"const", *OPS})


def _op(*names: str):
    def register(fn: OpFn) -> OpFn:
        for n in names:
            OPS[n] = fn
        return fn

    return register


class _Op:
    """One MIL operation bound to the current values: tensors as torch tensors, params as Python values."""

    def __init__(self, op, env: dict[str, Any]):
        self.op = op
        self.env = env

    def has(self, name: str) -> bool:
        return self.op.inputs.get(name) is not None

    def t(self, name: str):
        """Input `name` as a torch tensor."""
        import torch

        v = self.env[self.op.inputs[name].name]
        return v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))

    def ts(self, name: str) -> list:
        """A variadic input (concat's `values`) as a list of torch tensors."""
        import torch

        out = []
        for var in self.op.inputs[name]:
            v = self.env[var.name]
            out.append(v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v)))
        return out

    def p(self, name: str, default: Any = None) -> Any:
        """Input `name` as a Python value (list, number, str, bool), or `default` when absent."""
        var = self.op.inputs.get(name)
        if var is None:
            return default
        v = self.env[var.name]
        return v.tolist() if hasattr(v, "tolist") else v


# ---------------------------------------------------------------- elementwise


@_op("add", "sub", "mul", "real_div", "maximum", "minimum", "pow")
def _binary(o: _Op):
    import torch

    fn = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "real_div": torch.div,
          "maximum": torch.maximum, "minimum": torch.minimum, "pow": torch.pow}[o.op.op_type]
    x, y = o.t("x"), o.t("y")
    if x.dtype != y.dtype:
        x, y = x.float(), y.float()
    return fn(x, y)


@_op("relu", "sigmoid", "tanh", "exp", "sqrt", "abs", "square")
def _unary(o: _Op):
    import torch

    fn = {"relu": torch.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh, "exp": torch.exp,
          "sqrt": torch.sqrt, "abs": torch.abs, "square": torch.square}[o.op.op_type]
    return fn(o.t("x"))


@_op("rsqrt")
def _rsqrt(o: _Op):
    return 1.0 / (o.t("x") + o.p("epsilon", 1e-12)).sqrt()


@_op("clip")
def _clip(o: _Op):
    return o.t("x").clamp(o.p("alpha"), o.p("beta"))


@_op("relu6")
def _relu6(o: _Op):
    return o.t("x").clamp(0.0, 6.0)


@_op("leaky_relu")
def _leaky_relu(o: _Op):
    import torch.nn.functional as F

    return F.leaky_relu(o.t("x"), o.p("alpha", 0.01))


@_op("gelu")
def _gelu(o: _Op):
    import torch
    import torch.nn.functional as F

    mode = o.p("mode", "EXACT")
    x = o.t("x")
    if mode == "EXACT":
        return F.gelu(x)
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh")
    return x * torch.sigmoid(1.702 * x)  # SIGMOID_APPROXIMATION


@_op("cast")
def _cast(o: _Op):
    import torch

    dtype = {"fp16": torch.float16, "fp32": torch.float32, "fp64": torch.float64, "int32": torch.int32,
             "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8, "bool": torch.bool}[o.p("dtype")]
    x = o.t("x")
    if dtype == torch.float16:
        return x.to(torch.float16).float()  # fp16 values, kept in float32 for the kernels
    if not dtype.is_floating_point and dtype != torch.bool and x.is_floating_point():
        x = x.trunc()
    return x.to(dtype)


# ---------------------------------------------------------------- reductions, normalization


def _axes(o: _Op, rank: int) -> list[int] | None:
    axes = o.p("axes")
    return None if axes is None else [a % rank for a in (axes if isinstance(axes, list) else [axes])]


@_op("reduce_mean", "reduce_sum", "reduce_max", "reduce_min")
def _reduce(o: _Op):
    x = o.t("x")
    axes = _axes(o, x.dim()) or list(range(x.dim()))
    keep = bool(o.p("keep_dims", False))
    kind = o.op.op_type
    if kind == "reduce_mean":
        return x.mean(dim=axes, keepdim=keep)
    if kind == "reduce_sum":
        return x.sum(dim=axes, keepdim=keep)
    out = x
    for a in sorted(axes, reverse=True):
        out = (out.amax if kind == "reduce_max" else out.amin)(dim=a, keepdim=keep)
    return out


@_op("softmax")
def _softmax(o: _Op):
    return o.t("x").softmax(dim=o.p("axis", -1))


@_op("batch_norm")
def _batch_norm(o: _Op):
    x = o.t("x")
    shape = (1, -1) + (1,) * (x.dim() - 2)
    mean, var = o.t("mean").reshape(shape), o.t("variance").reshape(shape)
    y = (x - mean) / (var + o.p("epsilon", 1e-5)).sqrt()
    if o.has("gamma"):
        y = y * o.t("gamma").reshape(shape)
    if o.has("beta"):
        y = y + o.t("beta").reshape(shape)
    return y


@_op("layer_norm")
def _layer_norm(o: _Op):
    x = o.t("x")
    axes = _axes(o, x.dim()) or list(range(x.dim()))
    mean = x.mean(dim=axes, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=axes, keepdim=True)
    y = (x - mean) / (var + o.p("epsilon", 1e-5)).sqrt()
    if o.has("gamma"):
        y = y * o.t("gamma")
    if o.has("beta"):
        y = y + o.t("beta")
    return y


# ---------------------------------------------------------------- linear algebra, convolution, pooling


@_op("linear")
def _linear(o: _Op):
    import torch.nn.functional as F

    return F.linear(o.t("x"), o.t("weight"), o.t("bias") if o.has("bias") else None)


@_op("matmul")
def _matmul(o: _Op):
    x, y = o.t("x"), o.t("y")
    if o.p("transpose_x", False):
        x = x.transpose(-1, -2)
    if o.p("transpose_y", False):
        y = y.transpose(-1, -2)
    return x @ y


def _pads(o: _Op, spatial: list[int], kernel: list[int], strides: list[int], dilations: list[int]) -> list[int]:
    """[begin0, end0, begin1, end1, ...] for the op's pad_type, as MIL defines it."""
    pad_type = o.p("pad_type", "valid")
    n = len(spatial)
    if pad_type == "valid":
        return [0] * (2 * n)
    if pad_type == "custom":
        return [int(v) for v in o.p("pad", [0] * (2 * n))]
    if pad_type in ("same", "same_lower"):
        pads = []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            pads += [small, big] if pad_type == "same" else [big, small]
        return pads
    raise NotSupported(f"MIL op '{o.op.op_type}' with pad_type '{pad_type}'")


def _torch_pad(pads: list[int]) -> list[int]:
    """MIL's begin/end per spatial dim, first dim first -> F.pad's order (last dim first)."""
    out: list[int] = []
    for i in reversed(range(len(pads) // 2)):
        out += [pads[2 * i], pads[2 * i + 1]]
    return out


@_op("conv")
def _conv(o: _Op):
    import torch.nn.functional as F

    x, w = o.t("x"), o.t("weight")
    n = x.dim() - 2
    if n not in (1, 2, 3):
        raise NotSupported(f"MIL conv with {n} spatial dims")
    strides = o.p("strides") or [1] * n
    dilations = o.p("dilations") or [1] * n
    pads = _pads(o, list(x.shape[2:]), list(w.shape[2:]), strides, dilations)
    if any(pads):
        x = F.pad(x, _torch_pad(pads))
    conv = (F.conv1d, F.conv2d, F.conv3d)[n - 1]
    return conv(x, w, o.t("bias") if o.has("bias") else None, stride=strides, dilation=dilations,
                groups=int(o.p("groups", 1)))


@_op("avg_pool", "max_pool")
def _pool(o: _Op):
    import torch
    import torch.nn.functional as F

    x = o.t("x")
    n = x.dim() - 2
    kernel = o.p("kernel_sizes")
    strides = o.p("strides") or [1] * n
    pads = _pads(o, list(x.shape[2:]), kernel, strides, [1] * n)
    ceil_mode = bool(o.p("ceil_mode", False))
    if o.op.op_type == "max_pool":
        x = F.pad(x, _torch_pad(pads), value=-math.inf) if any(pads) else x
        return (F.max_pool1d, F.max_pool2d, F.max_pool3d)[n - 1](x, kernel, strides, ceil_mode=ceil_mode)
    avg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[n - 1]
    if not any(pads):
        return avg(x, kernel, strides, ceil_mode=ceil_mode)
    xp = F.pad(x, _torch_pad(pads))
    if not o.p("exclude_padding_from_average", False):
        return avg(xp, kernel, strides, ceil_mode=ceil_mode)
    ones = F.pad(torch.ones_like(x[:1, :1]), _torch_pad(pads))
    return avg(xp, kernel, strides, ceil_mode=ceil_mode) / avg(ones, kernel, strides, ceil_mode=ceil_mode)


@_op("pad")
def _pad(o: _Op):
    import torch.nn.functional as F

    x = o.t("x")
    pads = [int(v) for v in o.p("pad")]
    mode = o.p("mode", "constant")
    torch_mode = {"constant": "constant", "reflect": "reflect", "replicate": "replicate"}.get(mode)
    if torch_mode is None:
        raise NotSupported(f"MIL op 'pad' with mode '{mode}'")
    flat = _torch_pad(pads)  # MIL pads the last len(pad)/2 dims, begin/end each
    if torch_mode == "constant":
        return F.pad(x, flat, value=float(o.p("constant_val", 0.0)))
    return F.pad(x, flat, mode=torch_mode)


# ---------------------------------------------------------------- shapes


@_op("reshape")
def _reshape(o: _Op):
    x = o.t("x")
    shape = [int(s) for s in o.p("shape")]
    if len(shape) == x.dim():
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return x.reshape(shape)


@_op("transpose")
def _transpose(o: _Op):
    return o.t("x").permute(*[int(p) for p in o.p("perm")])


@_op("squeeze")
def _squeeze(o: _Op):
    x = o.t("x")
    axes = _axes(o, x.dim())
    if axes is None:
        return x.squeeze()
    return x.squeeze(dim=tuple(axes))


@_op("expand_dims")
def _expand_dims(o: _Op):
    x = o.t("x")
    rank = x.dim() + len(o.p("axes"))
    for a in sorted(a % rank for a in o.p("axes")):
        x = x.unsqueeze(a)
    return x


@_op("concat")
def _concat(o: _Op):
    import torch

    if o.p("interleave", False):
        raise NotSupported("MIL op 'concat' with interleave=True")
    return torch.cat(o.ts("values"), dim=o.p("axis"))


@_op("identity")
def _identity(o: _Op):
    return o.t("x")


# ---------------------------------------------------------------- compressed weights (evaluated once, at load)


def _along(v, axis: int, rank: int):
    """A per-axis vector (or a scalar) shaped to broadcast along `axis` of a rank-`rank` tensor."""
    v = v.double()
    if v.dim() == 0:
        return v
    shape = [1] * rank
    shape[axis % rank] = -1
    return v.reshape(shape)


@_op("constexpr_affine_dequantize")
def _affine_dequantize(o: _Op):
    """iOS16: scale * (quantized_data - zero_point), scale and zero point per `axis` (or scalars)."""
    q = o.t("quantized_data")
    axis, rank = int(o.p("axis", 0)), q.dim()
    return ((q.double() - _along(o.t("zero_point"), axis, rank)) * _along(o.t("scale"), axis, rank)).float()


def _blocks(v, shape):
    """Repeat each element of `v` over its block: block size = shape[i] / v.shape[i] on every axis."""
    for axis, (n, m) in enumerate(zip(shape, v.shape)):
        if n % m:
            raise NotSupported(f"constexpr_blockwise_shift_scale: {m} scales do not divide axis {axis} of size {n}")
        v = v.repeat_interleave(n // m, dim=axis)
    return v


@_op("constexpr_blockwise_shift_scale")
def _blockwise_shift_scale(o: _Op):
    """iOS18: scale * (data - offset), scale and offset per block of data."""
    data = o.t("data")
    shifted = data.double() - (_blocks(o.t("offset").double(), data.shape) if o.has("offset") else 0.0)
    return (shifted * _blocks(o.t("scale").double(), data.shape)).float()


# ---------------------------------------------------------------- program loading and execution


def load_program(path: str):
    """The pymil Program stored in a saved .mlpackage (coremltools' own milproto loader)."""
    import coremltools as ct
    from coremltools.converters.mil.frontend.milproto.load import load as milproto_to_pymil

    model = ct.models.MLModel(path, skip_model_load=True)
    spec = model.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise NotSupported(f"coreml-mil runs ML programs only, this model is a {spec.WhichOneof('Type')}")
    program = milproto_to_pymil(spec, spec.specificationVersion, file_weights_dir=model.weights_dir or "")
    return program, spec


def unsupported_ops(function) -> list[str]:
    """Op types in the function that coreml-mil has no implementation for (nested blocks count as such)."""
    missing = set()
    for op in function.operations:
        if op.op_type != "const" and op.op_type not in OPS:
            missing.add(op.op_type)
        elif op.blocks:
            missing.add(op.op_type)
    return sorted(missing)


def _is_fp16(var) -> bool:
    from coremltools.converters.mil.mil import types

    return var.dtype == types.fp16


def _const_value(var):
    """A const's value: float tensors as torch float32 (fp16 values are exact in it), the rest as is."""
    import torch

    val = var.val
    if isinstance(val, np.ndarray) and val.dtype.kind == "f":
        return torch.from_numpy(np.ascontiguousarray(val, dtype=np.float32))
    if isinstance(val, np.generic) and val.dtype.kind == "f":
        return torch.tensor(float(val), dtype=torch.float32)
    return val


class MilSession(Session):
    """The program's main function, its consts evaluated once, run op by op per call."""

    def __init__(self, program, spec, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.function = program.functions["main"]
        missing = unsupported_ops(self.function)
        if missing:
            raise NotSupported(f"coreml-mil has no reference implementation of MIL op {', '.join(repr(m) for m in missing)}")
        self.consts = {op.outputs[0].name: _const_value(op.outputs[0])
                       for op in self.function.operations if op.op_type == "const"}
        for op in self.function.operations:  # compressed weights: decompressed once, as Core ML does at load
            if op.op_type.startswith("constexpr_"):
                value = OPS[op.op_type](_Op(op, self.consts))
                self.consts[op.outputs[0].name] = value.half().float() if _is_fp16(op.outputs[0]) else value
        self.ops = [op for op in self.function.operations
                    if op.op_type != "const" and not op.op_type.startswith("constexpr_")]
        self.inputs = dict(self.function.inputs)  # model input name -> Var
        described = [o.name for o in spec.description.output]
        self.outputs = list(zip(described, self.function.outputs))  # model output name -> Var
        census: dict[str, int] = {}
        for op in self.ops:
            census[op.op_type] = census.get(op.op_type, 0) + 1
        self.fp16 = any(_is_fp16(v) for op in self.ops for v in op.outputs)
        self.options = {"threads": threads, "executor": "torch reference kernels", "op_census": census,
                        "fp16_rounding": self.fp16}

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        env = self._execute(inputs)
        out = {}
        for name, var in self.outputs:
            value = env[var.name].numpy()
            out[name] = value.astype(np.float16) if _is_fp16(var) else value
        return out

    def intermediates(self, inputs: dict[str, np.ndarray]) -> list[tuple[Any, np.ndarray]]:
        """(op, value) for every tensor output of every non-const op, in program order (for localization)."""
        import torch

        env = self._execute(inputs)
        return [(op, env[var.name].numpy()) for op in self.ops for var in op.outputs
                if isinstance(env.get(var.name), torch.Tensor)]

    def _execute(self, inputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Every op once, in program order: var name -> value."""
        import torch

        env: dict[str, Any] = dict(self.consts)
        for name, var in self.inputs.items():
            x = np.asarray(inputs[name])
            if _is_fp16(var):
                x = x.astype(np.float16)
            env[var.name] = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32 if x.dtype.kind == "f" else None))
        with torch.inference_mode():
            for op in self.ops:
                result = OPS[op.op_type](_Op(op, env))
                results = result if isinstance(result, (tuple, list)) else (result,)
                for var, value in zip(op.outputs, results):
                    if _is_fp16(var) and isinstance(value, torch.Tensor):
                        value = value.to(torch.float16).float()
                    env[var.name] = value
        return env


class CoreMLMilRuntime(Runtime):
    """`coreml-mil`: the converted MIL program on torch reference kernels, any OS."""

    name = "coreml-mil"
    library = "coremltools"
    measures_speed = False  # torch kernels standing in for Core ML's: no latency worth reporting

    def unavailable_reason(self) -> str | None:
        try:
            from coremltools.converters.mil.frontend.milproto.load import load  # noqa: F401
        except ImportError as e:
            return f"coremltools' MIL loader cannot be imported ({e})"
        return None

    def describe(self) -> dict[str, Any]:
        return {"semantics": "converted MIL program, not Apple's runtime"}

    def load(self, artifact: Artifact, ref: ModelRef, threads: int) -> Session:
        program, spec = load_program(artifact.path)
        return MilSession(program, spec, resolve_threads(threads))
