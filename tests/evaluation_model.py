"""A tiny 3D CNN that tells which way bright bars move: the user model of the evaluation tests."""

from __future__ import annotations

from torch import nn

DIRECTIONS = ("moving right", "moving left", "moving down", "moving up")
BLINKS = ("blinking fast", "blinking slow", "steady")  # the classes of tests/sampling_fixture.py


class TinyVideoNet(nn.Module):
    """Two 3x3x3 convolutions (motion-selective), a global mean, one linear layer."""

    def __init__(self, classes: int = len(DIRECTIONS)):
        super().__init__()
        self.features = nn.Sequential(nn.Conv3d(3, 8, 3, stride=(1, 2, 2), padding=1), nn.ReLU(),
                                      nn.Conv3d(8, 8, 3, stride=(1, 2, 2), padding=1), nn.ReLU())
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(self.features(x).mean(dim=(2, 3, 4)))


def tiny_video_net() -> nn.Module:
    return TinyVideoNet()


def blink_net() -> nn.Module:
    """The same net for the three blinking-disk classes (tests/sampling_fixture.py)."""
    return TinyVideoNet(len(BLINKS))
