"""Reading (and rewriting) a saved .pte: its `forward` plan, its instructions, and each XNNPACK payload's
XNNGraph as JSON and back (flatc with the schema shipped in the executorch package)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from edgebench.runtimes.executorch import XNNPACK_BACKEND

_NON_FINITE = {"inf": "Infinity", "nan": "NaN"}
SCOPES_SUFFIX = ".scopes.json"  # beside model.pte: debug handles -> module paths (converters/executorch.py)


def scopes_path(pte: str | Path) -> Path:
    """Where the converter writes the program's scopes file."""
    return Path(str(pte) + SCOPES_SUFFIX)


def read_pte(path: str | Path):
    """The whole file as executorch's PTEFile (program, delegate payloads inlined, named data)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    return deserialize_pte_binary(Path(path).read_bytes())


def forward_plan(program):
    """The `forward` execution plan of a deserialized program."""
    plans = [p for p in program.execution_plan if p.name == "forward"]
    if not plans:
        raise ValueError(f"no forward method (methods: {', '.join(p.name for p in program.execution_plan)})")
    return plans[0]


def read_plan(path: str | Path):
    """The `forward` execution plan of the saved .pte and the payload bytes of each of its delegates."""
    program = read_pte(path).program
    plan = forward_plan(program)
    return plan, [(d.id, program.backend_delegate_data[d.processed.index].data) for d in plan.delegates]


def instructions(plan, with_args: bool = False):
    """("delegate", backend id) or ("kernel", operator name) per instruction of every chain."""
    for chain in plan.chains:
        for instruction in chain.instructions:
            call = instruction.instr_args
            if hasattr(call, "delegate_index"):
                row = ("delegate", plan.delegates[call.delegate_index].id, list(call.args))
            elif hasattr(call, "op_index"):
                row = ("kernel", plan.operators[call.op_index].name, list(call.args))
            else:
                continue  # moves, jumps, frees: no compute
            yield row if with_args else row[:2]


def _schema() -> Path:
    from executorch.backends.xnnpack.serialization import xnnpack_graph_serialize

    return Path(xnnpack_graph_serialize.__file__).with_name("schema.fbs")


def split_payload(blob: bytes) -> tuple[bytes, bytes]:
    """An XNNPACK payload's (XNNGraph flatbuffer, constant data) after its XNNHeader."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    header = XNNHeader.from_bytes(blob[:XNNHeader.EXPECTED_LENGTH])
    return (blob[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size],
            blob[header.constant_data_offset:header.constant_data_offset + header.constant_data_size])


def xnnpack_graphs(payloads: list[tuple[str, bytes]]) -> list[dict]:
    """Each XNNPACK payload's XNNGraph as JSON (one flatc run for all of them)."""
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    blobs = [data for backend, data in payloads if backend == XNNPACK_BACKEND]
    if not blobs:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        bins = []
        for i, blob in enumerate(blobs):
            path = Path(tmp) / f"g{i}.bin"
            path.write_bytes(split_payload(blob)[0])
            bins.append(str(path))
        subprocess.run([_get_flatc_path(), "--json", "--strict-json", "--defaults-json", "--raw-binary", "-o", tmp,
                        str(_schema()), "--", *bins], check=True, capture_output=True)
        # flatc writes non-finite floats (a clamp's output_max) as bare inf/nan, which JSON lacks
        texts = [Path(b).with_suffix(".json").read_text() for b in bins]
        return [json.loads(re.sub(r"\b(inf|nan)\b", lambda m: _NON_FINITE[m[1]], t)) for t in texts]


def xnnpack_payload(graph: dict, constants: bytes) -> bytes:
    """An XNNGraph (JSON, as xnnpack_graphs gives it) and its constant data as a payload the backend loads."""
    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import (
        CONSTANT_TENSOR_ALIGNMENT,
        XNNHeader,
        _aligned_size,
        _pad_to,
    )
    from executorch.exir._serialize._flatbuffer import _flatc_compile

    with tempfile.TemporaryDirectory() as tmp:
        schema = Path(tmp) / "schema.fbs"
        shutil.copy(_schema(), schema)
        source = Path(tmp) / "graph.json"
        source.write_text(json.dumps(graph))
        _flatc_compile(tmp, str(schema), str(source))  # the same call the XNNPACK serializer makes
        flatbuffer = source.with_suffix(".bin").read_bytes()
    head = _aligned_size(XNNHeader.EXPECTED_LENGTH, CONSTANT_TENSOR_ALIGNMENT)
    body = _aligned_size(len(flatbuffer), CONSTANT_TENSOR_ALIGNMENT)
    header = XNNHeader(flatbuffer_offset=head, flatbuffer_size=len(flatbuffer), constant_data_offset=head + body,
                       constant_data_size=len(constants)).to_bytes()
    return _pad_to(header, head) + _pad_to(flatbuffer, body) + constants


def tensor_dtype(tensor) -> str:
    """numpy-style name of an ExecuTorch schema Tensor's scalar type (FLOAT -> float32, CHAR -> int8)."""
    from executorch.exir.scalar_type import ScalarType

    names = {ScalarType.FLOAT: "float32", ScalarType.HALF: "float16", ScalarType.DOUBLE: "float64",
             ScalarType.CHAR: "int8", ScalarType.BYTE: "uint8", ScalarType.INT: "int32", ScalarType.LONG: "int64",
             ScalarType.BOOL: "bool", ScalarType.BFLOAT16: "bfloat16"}
    return names.get(ScalarType(tensor.scalar_type), str(tensor.scalar_type))
