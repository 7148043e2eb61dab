"""Shared test constants."""

# Conv/matmul operators of resnet_mixed (mc3_18): 20 convs + the fc in the 3D form; in the 2D-lowered form
# layer1's four 3x3x3 convs run as 3 summed Conv2d each (models/lowering.py): 28 convs + the fc.
CONVS_3D, CONVS_LOWERED = 20, 28
