"""FLOPs of TFLite ops from their tensors' shapes: what the share of FLOPs on the delegate is made of."""

from __future__ import annotations

import pytest

from edgebench.runtimes.delegation import op_flops

SHAPES = {0: (1, 8, 8, 4), 1: (16, 3, 3, 4), 2: (1, 8, 8, 16), 3: (3, 3, 3, 4, 16), 4: (1, 4, 8, 8, 16),
          5: (10, 16), 6: (1, 10), 7: (1, 3, 3, 16), 8: (2, 5, 7), 9: (2, 5, 3)}


@pytest.mark.parametrize("name, inputs, output, flops", [
    ("CONV_2D", [0, 1, -1], 2, 2 * (8 * 8 * 16) * (3 * 3 * 4)),
    ("CONV_3D", [0, 3, -1], 4, 2 * (4 * 8 * 8 * 16) * (3 * 3 * 3 * 4)),
    ("FULLY_CONNECTED", [2, 5, -1], 6, 2 * 10 * 16),
    ("DEPTHWISE_CONV_2D", [2, 7], 2, 2 * (8 * 8 * 16) * 9),
    ("BATCH_MATMUL", [8, 9], 9, 2 * (2 * 5 * 3) * 7),
    ("ADD", [2, 2], 2, 8 * 8 * 16),  # elementwise: one per output element
])
def test_flops_per_op(name, inputs, output, flops):
    assert op_flops({"op_name": name, "inputs": inputs, "outputs": [output]}, SHAPES) == flops
