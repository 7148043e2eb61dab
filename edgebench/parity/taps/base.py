"""One intermediate tensor read out of an artifact: what the per-format tap modules return."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Op type (lower-cased, any format's spelling) -> the layer kind the name mapping compares.
KINDS = {
    "conv": "conv", "conv3d": "conv", "conv_2d": "conv", "conv_3d": "conv", "depthwise_conv_2d": "conv",
    "aten::_convolution": "conv", "aten::conv2d": "conv", "aten::conv3d": "conv", "qlinearconv": "conv",
    "gemm": "linear", "matmul": "linear", "linear": "linear", "fully_connected": "linear", "aten::linear": "linear",
    "aten::addmm": "linear",
    "relu": "relu", "aten::relu": "relu", "aten::relu_": "relu",
    "add": "add", "aten::add": "add", "aten::add_": "add",
    "reducemean": "pool", "reduce_mean": "pool", "mean": "pool", "aten::mean": "pool", "globalaveragepool": "pool",
    "averagepool": "pool", "avg_pool": "pool", "average_pool_2d": "pool", "maxpool": "pool", "max_pool": "pool",
    "max_pool_2d": "pool", "aten::max_pool3d": "pool", "aten::avg_pool3d": "pool",
    # XNNPACK nodes inside an ExecuTorch delegate
    "xnnconv2d": "conv", "xnndepthwiseconv2d": "conv", "xnnfullyconnected": "linear", "xnnadd": "add",
    "xnnglobalavgpooling2d": "pool", "xnnavgpooling2d": "pool", "xnnmaxpooling2d": "pool",
}


def kind_of(op_type: str) -> str:
    """The layer kind of an op type ("conv", "relu", ...), or "other"."""
    return KINDS.get(op_type.lower(), "other")


@dataclass
class ArtifactTap:
    """An artifact tensor: its name in the file, the op that made it, its value, and the module path the
    exporter recorded for it ("" when the file keeps none); taps come in topological order."""

    name: str
    op_type: str
    value: np.ndarray
    scope: str = ""
    fused: str = ""  # an activation fused into the op (TFLite ADD/CONV with RELU): its output is post-activation

    @property
    def kind(self) -> str:
        return kind_of(self.op_type)

    @property
    def kinds(self) -> set[str]:
        """What the tensor stands for: the op's kind, and a fused activation's (a CONV_2D with RELU is both)."""
        return {self.kind, self.fused} - {""}
