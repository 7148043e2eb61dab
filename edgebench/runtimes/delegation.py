"""Which ops of a loaded LiteRT interpreter run inside a delegate (XNNPACK), read from its node graph.

After `allocate_tensors()`, `_get_ops_details()` lists the model's original nodes followed by one
DELEGATE node per delegated partition; a partition's inputs and outputs are the tensors crossing its
border. An original node belongs to a partition when it produces one of the partition's outputs, or a
tensor that another node of the partition consumes and that is not a partition input.
"""

from __future__ import annotations

from collections import Counter


def delegated_ops(interpreter) -> dict[str, dict[str, int]]:
    """{"delegated": op -> count, "not_delegated": op -> count, "partitions": {"DELEGATE": n}}."""
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
    return {
        "delegated": dict(Counter(nodes[i]["op_name"] for i in sorted(inside))),
        "not_delegated": dict(Counter(o["op_name"] for i, o in enumerate(nodes) if i not in inside)),
        "partitions": {"DELEGATE": len(partitions)},
    }
