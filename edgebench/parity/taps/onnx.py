"""ONNX taps: every node output marked as a graph output (Polygraphy's "mark all"), run on ONNX Runtime.

Scope: the dynamo exporter's node metadata `pkg.torch.onnx.name_scopes`, a list of module paths ending
with the node's own name; the deepest module path is the tap's scope.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

from edgebench.parity.taps.base import ArtifactTap

SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def node_scope(node) -> str:
    """The deepest module path the dynamo exporter recorded for a node (\"\" when none)."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta[SCOPES_KEY])
    except (KeyError, ValueError, SyntaxError):
        return ""
    modules = [s for s in scopes[:-1] if s]  # the last entry names the node itself
    return modules[-1] if modules else ""


def onnx_taps(path: str | Path, inputs: dict[str, np.ndarray]) -> list[ArtifactTap]:
    """Every float node output of the graph, for one input, in node order."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    marked = {o.name for o in model.graph.output}
    producers = {}
    for node in model.graph.node:
        for out in node.output:
            if out:
                producers[out] = node
                if out not in marked:
                    model.graph.output.append(onnx.ValueInfoProto(name=out))
                    marked.add(out)
    so = ort.SessionOptions()
    so.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"])
    feeds = {i.name: np.ascontiguousarray(inputs[i.name]) for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    values = dict(zip(names, session.run(names, feeds)))
    taps = []
    for out, node in producers.items():
        value = np.asarray(values.get(out))
        if value.dtype.kind == "f":
            taps.append(ArtifactTap(out, node.op_type, value, node_scope(node)))
    return taps
