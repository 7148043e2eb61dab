"""How LiteRT sessions feed inputs: a float clip into a quantized input tensor is quantized, never cast."""

from __future__ import annotations

import numpy as np

from edgebench.runtimes.litert import fed


def test_a_float_clip_is_quantized_at_the_input_scale_and_zero_point():
    got = fed(np.array([0.0, 0.5, 1.0, -1.0], dtype=np.float32), {"dtype": np.int8, "quantization": (1 / 256, -128)})
    assert got.dtype == np.int8 and got.tolist() == [-128, 0, 127, -128]  # 1.0 and -1.0 clipped to int8's range
    halves = fed(np.array([0.25, -0.25, 0.75]), {"dtype": np.int8, "quantization": (0.5, 0)})
    assert halves.tolist() == [1, -1, 2]  # half away from zero, as TFLite's QUANTIZE (numpy's round gives 0, 0, 2)


def test_float_and_unscaled_integer_inputs_are_cast():
    assert fed(np.array([0.25, 0.75]), {"dtype": np.float32, "quantization": (0.0, 0)}).dtype == np.float32
    assert fed(np.array([3, 4]), {"dtype": np.int32, "quantization": (0.0, 0)}).tolist() == [3, 4]  # ids: no scale
