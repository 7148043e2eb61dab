"""Which ops of a loaded LiteRT interpreter run inside a delegate (XNNPACK), read from its node graph.

After `allocate_tensors()`, `_get_ops_details()` lists the model's original nodes followed by one
DELEGATE node per delegated partition; a partition's inputs and outputs are the tensors crossing its
border. An original node belongs to a partition when it produces one of the partition's outputs, or a
tensor that another node of the partition consumes and that is not a partition input.
"""

from __future__ import annotations

from collections import Counter
from math import prod


def delegated_ops(interpreter) -> dict:
    """{"delegated": op -> count, "not_delegated": op -> count, "partitions": {"DELEGATE": n},
    "delegated_flops_pct": share of the model's FLOPs inside delegate partitions (op_flops)}."""
    ops = interpreter._get_ops_details()  # noqa: SLF001 - the only view LiteRT's Python API gives of delegation
    nodes = [o for o in ops if o["op_name"] != "DELEGATE"]
    partitions = [o for o in ops if o["op_name"] == "DELEGATE"]
    producer = {int(t): i for i, o in enumerate(nodes) for t in o["outputs"]}
    inside: set[int] = set()
    for part in partitions:
        border = {int(t) for t in part["inputs"]}
        todo = [producer[int(t)] for t in part["outputs"] if int(t) in producer]
        while todo:
            i = todo.pop()
            if i in inside:
                continue
            inside.add(i)
            todo.extend(producer[int(t)] for t in nodes[i]["inputs"]
                        if int(t) >= 0 and int(t) not in border and int(t) in producer)
    shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}
    flops = [op_flops(o, shapes) for o in nodes]
    total = sum(flops)
    return {
        "delegated": dict(Counter(nodes[i]["op_name"] for i in sorted(inside))),
        "not_delegated": dict(Counter(o["op_name"] for i, o in enumerate(nodes) if i not in inside)),
        "partitions": {"DELEGATE": len(partitions)},
        "delegated_flops_pct": round(100.0 * sum(flops[i] for i in inside) / total, 1) if total else None,
    }


def op_flops(op: dict, shapes: dict[int, tuple[int, ...]]) -> int:
    """FLOPs of one TFLite op from its tensors' shapes: 2 per multiply-add for convolutions and matrix products
    (their filter's reduction size per output), one per output element for anything else."""
    out = prod(shapes.get(int(op["outputs"][0]), ())) if len(op["outputs"]) else 0
    ins = [shapes.get(int(t), ()) for t in op["inputs"] if int(t) >= 0]
    name = op["op_name"]
    if name in ("CONV_2D", "CONV_3D", "FULLY_CONNECTED") and len(ins) > 1 and ins[1]:
        w = ins[1]  # CONV_2D [Cout, kh, kw, Cin], FULLY_CONNECTED [Cout, Cin], CONV_3D [kd, kh, kw, Cin, Cout]
        return 2 * out * (prod(w[:-1]) if name == "CONV_3D" else prod(w[1:]))
    if name == "DEPTHWISE_CONV_2D" and len(ins) > 1 and ins[1]:
        return 2 * out * prod(ins[1][1:3])  # filter [1, kh, kw, Cout]
    if name == "BATCH_MATMUL" and ins and ins[0]:
        return 2 * out * ins[0][-1]
    return out
