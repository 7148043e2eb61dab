"""The storage location that carries artifacts, inputs and results between machines."""

from __future__ import annotations

from edgebench.storage import Storage


def test_files_and_folders_round_trip(tmp_path):
    store = Storage(str(tmp_path / "store"))
    model = tmp_path / "model.onnx"
    model.write_bytes(b"onnx bytes")
    package = tmp_path / "model.mlpackage"
    (package / "Data").mkdir(parents=True)
    (package / "Data" / "weights.bin").write_bytes(b"w" * 100)
    (package / "Manifest.json").write_text("{}")

    url = store.put(model, "artifacts/key1/model.onnx")
    assert url == f"{tmp_path}/store/artifacts/key1/model.onnx"
    store.put(package, "artifacts/key2/model.mlpackage")
    got = store.get("artifacts/key1/model.onnx", tmp_path / "remote" / "model.onnx")
    assert got.read_bytes() == b"onnx bytes"
    folder = store.get("artifacts/key2/model.mlpackage", tmp_path / "remote" / "model.mlpackage")
    assert (folder / "Data" / "weights.bin").read_bytes() == b"w" * 100
    assert not list((tmp_path / "store").rglob("*.tmp*"))


def test_json_results(tmp_path):
    store = Storage(f"file://{tmp_path}/store")
    store.write_json("runs/r1/result.json", {"p50_ms": 12.5})
    assert store.read_json("runs/r1/result.json") == {"p50_ms": 12.5}
