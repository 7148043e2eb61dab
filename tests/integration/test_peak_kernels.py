"""The kernels the host's limit is timed on: each computes a real product, and the best per precision wins."""

from __future__ import annotations

import numpy as np

from edgebench.benchmarks import peak
from edgebench.benchmarks.tflite_ops import fully_connected_tflite


def test_litert_fully_connected_computes_the_product():
    """The LiteRT model the int8/fp32 peak is timed on is a real x @ w.T (fp32 checked against numpy)."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.interpreter import Interpreter

    blob = fully_connected_tflite(32, quantized=False)
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(blob, 0))
    w = np.frombuffer(model.buffers[1].data.tobytes(), dtype=np.float32).reshape(32, 32)
    interpreter = Interpreter(model_content=blob, num_threads=1)
    interpreter.allocate_tensors()
    x = np.random.default_rng(1).standard_normal((32, 32), dtype=np.float32)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
    np.testing.assert_allclose(got, x @ w.T, rtol=1e-4, atol=1e-4)
    q = Interpreter(model_content=fully_connected_tflite(32, quantized=True), num_threads=1)
    q.allocate_tensors()
    assert q.get_output_details()[0]["dtype"] == np.int8


def test_measure_takes_the_best_kernel_per_precision():
    """Every kernel runs on a small product; each precision's peak is its fastest candidate, named."""
    result = peak.measure(threads=1, size=64, min_seconds=0.01)
    rates = {}
    for c in result["candidates"]:
        assert "gmacs" in c, c  # no kernel failed on this host
        rates.setdefault(c["precision"], []).append((c["gmacs"], c["kernel"]))
    assert {"fp32", "int8"} <= set(result["peaks"])
    for precision, best in result["peaks"].items():
        assert (best["gmacs"], best["kernel"]) == max(rates[precision])


def test_litert_int8_conv_computes_the_convolution():
    """The one-conv int8 TFLite file benchmarks/int8_conv_kernels.py times is a real convolution: its output is
    numpy's requantized conv of the same int8 tensors (within one step of rounding)."""
    from ai_edge_litert import schema_py_generated as s
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.benchmarks.tflite_ops import conv2d_tflite

    blob = conv2d_tflite(2, (6, 6), 8, 16, (3, 3), 2, same_padding=True)
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(blob, 0))
    x_t, w_t, b_t, y_t = model.subgraphs[0].tensors
    w = np.frombuffer(model.buffers[1].data.tobytes(), dtype=np.int8).reshape(16, 3, 3, 8).astype(np.int64)
    b = np.frombuffer(model.buffers[2].data.tobytes(), dtype=np.int32)
    interpreter = Interpreter(model_content=blob, num_threads=1)
    interpreter.allocate_tensors()
    x = np.random.default_rng(1).integers(-128, 128, (2, 6, 6, 8), dtype=np.int8)
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    got = interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).astype(np.int64)
    padded = np.pad(x.astype(np.int64), ((0, 0), (0, 1), (0, 1), (0, 0)))  # SAME at stride 2: pad 0 before, 1 after
    acc = np.zeros((2, 3, 3, 16), np.int64)
    for i in range(3):
        for j in range(3):
            patch = padded[:, i:i + 6:2, j:j + 6:2, :]
            acc += np.einsum("nhwc,oc->nhwo", patch, w[:, i, j, :])
    scale = np.array(x_t.quantization.scale[0]) * np.array(w_t.quantization.scale) / y_t.quantization.scale[0]
    want = np.clip(np.round((acc + b) * scale), -128, 127)
    assert got.shape == want.shape and np.abs(got - want).max() <= 1
