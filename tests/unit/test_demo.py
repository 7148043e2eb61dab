"""The video demo: top-5 Kinetics-400 labels from PyTorch or from an exported artifact."""

from __future__ import annotations

import re
import sys

import pytest

from edgebench.cli import main
from edgebench.demo import artifact_from_path, classify
from edgebench.errors import UserError


def test_demo_prints_five_labels_and_warns_about_random_weights(monkeypatch, capsys, bikes):
    monkeypatch.setattr(sys, "argv", ["edgebench", "demo", str(bikes)])
    main()
    out, err = capsys.readouterr()
    lines = [line for line in out.splitlines() if re.match(r"\s+\d+\.\d\d%\s+\S", line)]
    assert len(lines) == 5, out
    assert "via torch" in out
    assert "random weights" in err and "meaningless" in err


def test_demo_probabilities_are_sorted_and_sum_below_one(bikes):
    result = classify(bikes, top=5)
    probs = [p for _, p in result.top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0
    assert all(label in result_labels() for label, _ in result.top)


def result_labels() -> set[str]:
    from torchvision.models.video import MC3_18_Weights

    return set(MC3_18_Weights.KINETICS400_V1.meta["categories"])


def test_artifact_with_unknown_suffix(tmp_path, small_ref):
    path = tmp_path / "model.xyz"
    path.write_text("?")
    with pytest.raises(UserError, match="unknown suffix '.xyz'"):
        artifact_from_path(path, small_ref)


def test_missing_artifact(tmp_path, small_ref):
    with pytest.raises(UserError, match="no such file"):
        artifact_from_path(tmp_path / "model.onnx", small_ref)
