"""The lowering's graph driver: the model's traced ops, each one it knows run on the folded tensor.

torch.fx traces the export-friendly module with the 3D modules as leaves; one forward pass of the 3D
form gives every value's shape and every op's FLOPs. Walking the ops in order, a value is either folded
((N*T, C, H, W), frame t of clip n at row n*T + t) or in its own layout. Known ops run folded: the 3D
convs, pools and batch norms (as models/lowering.py's lowered modules, at the same module path),
their functional forms with constant arguments, elementwise ops, concatenation on channels or space,
and the global mean (`x.mean(dim=(2, 3, 4))` too). Any other op gets its 5-D view back
(`lowering.unfold`) and runs as it is, so one unknown op costs a view, not the model's lowering.
"""

from __future__ import annotations

import inspect
import operator
from collections import Counter

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils.flop_counter import FlopCounterMode

from edgebench.models import lowering
from edgebench.models.friendly import GlobalMean
from edgebench.models.lowering import LoweringReport

_ELEMENTWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU, nn.Sigmoid, nn.Tanh,
                        nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Mish, nn.Softplus, nn.Identity,
                        nn.Dropout, nn.Dropout3d, nn.AlphaDropout)  # eval mode: dropouts are identities
_ELEMENTWISE_FUNCTIONS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.neg, torch.add,
                          torch.sub, torch.mul, torch.div, torch.relu, torch.sigmoid, torch.tanh, torch.clamp,
                          F.relu, F.relu6, F.gelu, F.silu, F.hardswish, F.hardsigmoid, F.hardtanh, F.leaky_relu,
                          F.elu, F.mish, F.dropout, F.dropout3d}
_ELEMENTWISE_METHODS = {"add", "sub", "mul", "div", "neg", "relu", "sigmoid", "tanh", "clamp", "contiguous",
                        "add_", "sub_", "mul_", "div_", "relu_", "sigmoid_", "clamp_"}
_CATS = {torch.cat, torch.concat, torch.concatenate}
_MEANS = {torch.mean, "mean"}


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with every module the lowering rewrites as a leaf (torchvision subclasses Conv3d)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return lowering.targets(m) or super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """The model as an fx.GraphModule: leaf modules keep their paths (`layer2.0.conv1.0`)."""
    return fx.GraphModule(model, _Tracer().trace(model), class_name=type(model).__name__)


class _ShapePass(fx.Interpreter):
    """One forward pass of the 3D form: each node's output shape (None: not one tensor) and FLOPs."""

    def __init__(self, gm: fx.GraphModule):
        super().__init__(gm)
        self.shapes: dict[fx.Node, tuple | None] = {}
        self.numbers: set[fx.Node] = set()  # nodes whose value is a Python number (broadcast like a scalar)
        self.values: dict[fx.Node, object] = {}  # nodes whose value is plain data: numbers and sequences of them
        self.flops: dict[fx.Node, int] = {}

    def call_function(self, target, args, kwargs):
        return super().call_function(target, _mutable(args), _mutable(kwargs))  # as the generated code passes them

    def run_node(self, n: fx.Node):
        with FlopCounterMode(display=False) as counter:
            out = super().run_node(n)
        self.shapes[n] = tuple(out.shape) if isinstance(out, torch.Tensor) else None
        if isinstance(out, (int, float, bool)):
            self.numbers.add(n)
        if _plain(out):
            self.values[n] = tuple(out) if isinstance(out, torch.Size) else out
        self.flops[n] = int(counter.get_total_flops())
        return out


def _plain(value) -> bool:
    """A number, or a (nested) sequence of numbers: a value a graph can hold as a constant."""
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    return isinstance(value, (int, float, bool))


def shape_values(gm: fx.GraphModule, example: torch.Tensor) -> dict[fx.Node, object]:
    """The plain-data value (numbers, sequences of them) of every node that has one, for `example`."""
    seen = _ShapePass(gm)
    with torch.no_grad():
        seen.run(example)
    return seen.values


def _mutable(a):
    """fx's immutable argument lists and dicts as plain ones (swin3d's helpers write into their list arguments)."""
    if isinstance(a, dict):
        return {k: _mutable(v) for k, v in a.items()}
    if isinstance(a, (list, tuple)) and not hasattr(a, "_fields"):
        return (list if isinstance(a, list) else tuple)(_mutable(v) for v in a)
    return a


def describe(node: fx.Node) -> str:
    """A node for people: a module path, else the op and the class of the module it sits in (`permute in
    PatchEmbed3d`: the same op of every block counts once)."""
    if node.op == "call_module":
        return str(node.target)
    op = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", str(node.target))
    stack = node.meta.get("nn_module_stack") or {}
    cls = next(reversed(stack.values()))[1] if stack else None
    return f"{op} in {getattr(cls, '__name__', str(cls).rsplit('.', 1)[-1])}" if cls else f"{op} in forward"


def _arg(node: fx.Node, index: int, name: str, default=None):
    """Argument `name` of a call, given by position `index` (counting the input) or by keyword."""
    return node.args[index] if len(node.args) > index else node.kwargs.get(name, default)


def _dims(dim, rank: int) -> set[int] | None:
    if dim is None or not all(isinstance(d, int) for d in (dim if isinstance(dim, (tuple, list)) else [dim])):
        return None
    return {d % rank for d in (dim if isinstance(dim, (tuple, list)) else [dim])}


def _fresh_lists(graph: fx.Graph) -> None:
    """Give every Python function a list argument of its own at run time: torch.export runs a root GraphModule
    through fx.Interpreter, which passes the graph's immutable lists, and a function traced as a leaf may
    write into its arguments (swin3d's `_get_window_and_shift_size` does)."""
    for node in list(graph.nodes):
        if node.op == "call_function" and inspect.isfunction(node.target):
            with graph.inserting_before(node):
                fresh = lambda a: graph.call_function(list, (a,)) if isinstance(a, list) else a  # noqa: E731
                node.args = tuple(fresh(a) for a in node.args)
                node.kwargs = {k: fresh(v) for k, v in node.kwargs.items()}


def _mutates(node: fx.Node) -> bool:
    """An in-place op: a `relu_`-style method or an `inplace=True` call (its inputs' folded copies go stale)."""
    return (node.op == "call_method" and str(node.target).endswith("_")) or bool(node.kwargs.get("inplace"))


def _functional_module(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    """The nn module a functional 3D conv/pool call stands for, when its arguments are constants."""
    if node.target is F.max_pool3d:
        return nn.MaxPool3d(_arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0),
                            _arg(node, 4, "dilation", 1), _arg(node, 6, "return_indices", False),
                            _arg(node, 5, "ceil_mode", False))
    if node.target is F.avg_pool3d:
        return nn.AvgPool3d(_arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0),
                            _arg(node, 4, "ceil_mode", False), _arg(node, 5, "count_include_pad", True),
                            _arg(node, 6, "divisor_override"))
    if node.target is F.conv3d:
        weight, bias = _arg(node, 1, "weight"), _arg(node, 2, "bias")
        if not all(a is None or (isinstance(a, fx.Node) and a.op == "get_attr") for a in (weight, bias)):
            return None
        w = gm.get_parameter(weight.target) if weight.target in dict(gm.named_parameters()) else None
        if w is None:
            return None
        conv = nn.Conv3d(w.shape[1] * _arg(node, 6, "groups", 1), w.shape[0], tuple(w.shape[2:]),
                         _arg(node, 3, "stride", 1), _arg(node, 4, "padding", 0), _arg(node, 5, "dilation", 1),
                         _arg(node, 6, "groups", 1), bias=bias is not None)
        conv.weight = w
        if bias is not None:
            conv.bias = gm.get_parameter(bias.target)
        return conv
    return None


class _Builder:
    """Copies the traced graph op by op, each known op on folded values, views inserted where layouts change."""

    def __init__(self, gm: fx.GraphModule, seen: _ShapePass, inputs: set[fx.Node]):
        self.gm, self.shapes, self.numbers, self.flops, self.inputs = gm, seen.shapes, seen.numbers, seen.flops, inputs
        self.graph = fx.Graph()
        self.env: dict[fx.Node, fx.Node] = {}
        self.folded: set[fx.Node] = set()  # old nodes whose new value is folded
        self.views: dict[tuple[fx.Node, str], fx.Node] = {}
        self.kept: dict[str, str] = {}  # 3D ops that run as they are -> why
        self.unfolded: Counter = Counter()  # ops that needed the 5-D view back
        self.lowered_flops = 0
        self.frames = self._frames_per_module()

    def _frames_per_module(self) -> dict[str, set]:
        seen: dict[str, set] = {}
        for n in self.gm.graph.nodes:
            if n.op == "call_module" and lowering.targets(self.gm.get_submodule(n.target)) and self._is5d(n.args[0]):
                seen.setdefault(n.target, set()).add((self.shapes[n.args[0]][2], self.shapes[n][2]))
        return seen

    def _is5d(self, a) -> bool:
        return isinstance(a, fx.Node) and self.shapes.get(a) is not None and len(self.shapes[a]) == 5

    # ------------------------------------------------------------ values in either layout

    def plain(self, a):
        """The new value of old node `a` in its own layout."""
        if not isinstance(a, fx.Node) or a not in self.folded:
            return self.env[a] if isinstance(a, fx.Node) else a
        if (a, "unfold") not in self.views:
            self.views[a, "unfold"] = self.graph.call_function(lowering.unfold, (self.env[a], self.shapes[a][2]))
        return self.views[a, "unfold"]

    def as_folded(self, a):
        """The new value of old node `a` (a 5-D tensor) folded."""
        if a in self.folded:
            return self.env[a]
        if (a, "fold") not in self.views:
            self.views[a, "fold"] = self.graph.call_function(lowering.fold, (self.env[a],))
        return self.views[a, "fold"]

    def _copy(self, node: fx.Node, transform) -> fx.Node:
        return self.graph.node_copy(node, lambda a: transform(a))

    # ------------------------------------------------------------ the walk

    def build(self) -> fx.GraphModule:
        for node in self.gm.graph.nodes:
            self.env[node] = self._lower(node)
            if _mutates(node):  # a folded copy taken before an in-place op would be stale
                for a in node.all_input_nodes:
                    self.views.pop((a, "fold"), None)
        _fresh_lists(self.graph)
        self.graph.lint()
        return fx.GraphModule(self.gm, self.graph, class_name=self.gm.__class__.__name__)

    def _lower(self, node: fx.Node) -> fx.Node:
        if node.op in ("placeholder", "get_attr", "output") or not any(a in self.folded or self._is5d(a)
                                                                        for a in node.all_input_nodes):
            return self._copy(node, self.plain)  # nothing video-shaped comes in: as it is
        made = (self._module(node) if node.op == "call_module" else None) or self._functional(node) \
            or self._elementwise(node) or self._concat(node) or self._mean(node)
        if made is not None:
            self.lowered_flops += self.flops.get(node, 0)
            return made
        if any(a in self.folded for a in node.all_input_nodes):
            self.unfolded[describe(node)] += 1
        return self._copy(node, self.plain)

    def _run_folded(self, node: fx.Node, transform, output_folded: bool = True) -> fx.Node:
        made = self._copy(node, transform)
        if output_folded:
            self.folded.add(node)
        return made

    def _module(self, node: fx.Node) -> fx.Node | None:
        module = self.gm.get_submodule(node.target)
        if not lowering.targets(module) or not self._is5d(node.args[0]):
            return None
        if isinstance(module, (GlobalMean, nn.AdaptiveAvgPool3d)) and node.args[0] not in self.folded:
            return None  # a global mean of a 5-D tensor is one reduce op in every format: nothing to lower
        frames = self.frames[node.target]
        if len(frames) > 1:
            self.kept[node.target] = "runs with several frame counts"
            return None
        new, why = lowering.rewrite_module(module, *next(iter(frames)))
        if new is None:
            self.kept[node.target] = why
            return None
        parent, _, attr = node.target.rpartition(".")
        setattr(self.gm.get_submodule(parent), attr, new)
        return self._run_folded(node, self._folded_first(node), output_folded=not isinstance(new, lowering.FoldedMean))

    def _functional(self, node: fx.Node) -> fx.Node | None:
        if node.op != "call_function" or node.target not in (F.max_pool3d, F.avg_pool3d, F.conv3d, F.adaptive_avg_pool3d):
            return None
        t_in, t_out = self.shapes[node.args[0]][2], self.shapes[node][2]
        if node.target is F.adaptive_avg_pool3d:
            if node.args[0] not in self.folded or _arg(node, 1, "output_size") not in (1, (1, 1, 1), [1, 1, 1]):
                return None
            new, why = lowering.FoldedMean(t_in), ""
        else:
            module = _functional_module(self.gm, node)
            new, why = lowering.rewrite_module(module, t_in, t_out) if module else (None, "arguments not constant")
        if new is None:
            self.kept[describe(node)] = why
            return None
        name = f"lowered_{node.name}"
        self.gm.add_submodule(name, new)
        made = self.graph.call_module(name, (self.as_folded(node.args[0]),))
        made.meta = dict(node.meta)
        if not isinstance(new, lowering.FoldedMean):
            self.folded.add(node)
        return made

    def _folded_first(self, node: fx.Node):
        return lambda a: self.as_folded(a) if a is node.args[0] else self.plain(a)

    def _is_elementwise(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            return isinstance(self.gm.get_submodule(node.target), _ELEMENTWISE_MODULES)
        if node.op == "call_method":
            return node.target in _ELEMENTWISE_METHODS
        return node.target in _ELEMENTWISE_FUNCTIONS

    def _elementwise(self, node: fx.Node) -> fx.Node | None:
        """An elementwise op with a folded input: every other tensor input folded, or a constant broadcast."""
        out = self.shapes.get(node)
        if not self._is_elementwise(node) or out is None or len(out) != 5:
            return None
        if not any(a in self.folded for a in node.all_input_nodes):
            return None
        for a in node.all_input_nodes:
            if not (self.shapes.get(a) == out or a in self.numbers or self._constant_broadcast(a)):
                return None

        def transform(a):
            if a in self.numbers:
                return self.env[a]
            if self.shapes.get(a) == out:
                return self.as_folded(a)
            return self.graph.call_function(lowering.fold_constant, (self.env[a],))

        return self._run_folded(node, transform)

    def _constant_broadcast(self, a: fx.Node) -> bool:
        """A tensor not computed from the input that broadcasts over N and T (shape (1, C, 1, H, W) or fewer dims)."""
        shape = self.shapes.get(a)
        if a in self.inputs or shape is None or len(shape) > 5:
            return False
        full = (1,) * (5 - len(shape)) + shape
        return full[0] == 1 and full[2] == 1

    def _concat(self, node: fx.Node) -> fx.Node | None:
        """torch.cat of folded tensors on channels or space (axis 1, 3, 4 of N, C, T, H, W)."""
        if node.op != "call_function" or node.target not in _CATS or not isinstance(node.args[0], (list, tuple)):
            return None
        parts, dim = node.args[0], _arg(node, 1, "dim", 0)
        if not isinstance(dim, int) or dim % 5 not in (1, 3, 4) or not all(self._is5d(p) for p in parts):
            return None
        if not any(p in self.folded for p in parts):
            return None
        folded_dim = {1: 1, 3: 2, 4: 3}[dim % 5]
        made = self.graph.call_function(node.target, ([self.as_folded(p) for p in parts], folded_dim))
        made.meta = dict(node.meta)
        self.folded.add(node)
        return made

    def _mean(self, node: fx.Node) -> fx.Node | None:
        """A mean over (T, H, W) of a folded tensor: lowering.FoldedMean's reduction, 5-D (or 2-D) out."""
        if node.target not in _MEANS or node.op not in ("call_method", "call_function"):
            return None
        x = node.args[0]
        if x not in self.folded or _arg(node, 3, "dtype") is not None or _dims(_arg(node, 1, "dim"), 5) != {2, 3, 4}:
            return None
        keepdim = bool(_arg(node, 2, "keepdim", False))
        made = self.graph.call_function(lowering.folded_mean, (self.env[x], self.shapes[x][2], keepdim))
        made.meta = dict(node.meta)
        return made


def lower_graph(model: nn.Module, example: torch.Tensor):
    """(lowered GraphModule, the 3D output, report facts): the graph driver's rewrite of `model` (not modified)."""
    gm = trace(model)
    shape_pass = _ShapePass(gm)
    with torch.no_grad():
        want = shape_pass.run(example)
    inputs = _input_dependent(gm)
    builder = _Builder(gm, shape_pass, inputs)
    lowered = builder.build()
    facts = {"kept": builder.kept, "unfolded": dict(builder.unfolded), "flops_lowered": builder.lowered_flops,
             "flops_total": sum(shape_pass.flops.values())}
    return lowered, want, facts


def _input_dependent(gm: fx.GraphModule) -> set[fx.Node]:
    """Nodes computed from a placeholder (the rest are constants of the model)."""
    seen: set[fx.Node] = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder" or any(a in seen for a in n.all_input_nodes):
            seen.add(n)
    return seen


def lower_3d(model: nn.Module, example: torch.Tensor) -> tuple[nn.Module, LoweringReport]:
    """The 2D-lowered form of `model` and what was done: the graph driver's, else (a model torch.fx cannot
    trace) the module swap's; `model` as it is when neither matches the 3D form (the report says why)."""
    try:
        lowered, want, facts = lower_graph(model, example)
    except Exception as e:  # noqa: BLE001 - data-dependent control flow and the like: try the module swap
        note = f"graph driver failed: {type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
    else:
        if not any(isinstance(m, (lowering.FoldedConv3d, lowering.FoldedPool3d)) for m in lowered.modules()):
            kept = "; ".join(f"{k} kept: {why}" for k, why in facts["kept"].items())
            return model, LoweringReport(reason=lowering.NO_3D + (f" lowered ({kept})" if kept else ""))
        why, diff = lowering.check_layouts(lowered, example, want)
        if why is None:
            return lowered.eval(), LoweringReport(form=lowering.LOWERED, driver="graph", max_abs_diff=diff, **facts)
        note = f"the graph driver's form differs from the 3D form ({why})"
    report = lowering.lower_modules(model, example)
    report.driver_note = note
    return model, report
