"""TorchScript taps: a copy of the saved graph, mutation removed (relu_ -> relu), that returns every
aten op's tensor output as one tuple, called on the loaded module.

Scope: none after freezing (the frozen graph drops the modules), so taps map by kind, shape and order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.parity.taps.base import ArtifactTap


def torchscript_taps(path: str | Path, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """Every tensor-valued aten op output of the forward graph, for one input, in graph order."""
    import torch

    module = torch.jit.load(str(path), map_location="cpu").eval()
    graph = module.inlined_graph  # a fresh copy; a submodule's calls become its ops
    torch._C._jit_pass_remove_mutation(graph)  # noqa: SLF001 - in-place ops would overwrite earlier taps
    nodes = [n for n in graph.nodes() if n.kind().startswith("aten::") and n.outputsSize() == 1
             and isinstance(n.outputsAt(0).type(), torch._C.TensorType)]  # noqa: SLF001
    values = [n.outputsAt(0) for n in nodes]
    pack = graph.create("prim::TupleConstruct", values)
    pack.insertBefore(graph.return_node())
    pack.output().setType(torch._C.TupleType([v.type() for v in values]))  # noqa: SLF001
    graph.eraseOutput(0)
    graph.registerOutput(pack.output())
    fn = torch._C._create_function_from_graph("edgebench_taps", graph)  # noqa: SLF001
    with torch.no_grad():
        outs = fn(module._c, *(torch.from_numpy(np.ascontiguousarray(v)) for v in inputs.values()))  # noqa: SLF001
    return [ArtifactTap(v.debugName(), n.kind(), o.numpy().copy(), "") for n, v, o in zip(nodes, values, outs)
            if o.is_floating_point()]
