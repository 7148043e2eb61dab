"""Parity metrics and the verdict's order of checks, on hand-made arrays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebench.config import Tolerance
from edgebench.parity.metrics import compare, cosine_per_clip, psnr_per_clip, topk_agreement
from edgebench.parity.verdict import check_finite, check_structure, judge
from edgebench.records import PARITY_FAILED, PASSED

TOL = Tolerance(max_abs_err=1e-3, min_cosine=0.999, min_psnr_db=30.0, min_top1_agree=1.0)


def _ref(clips=3, classes=10, seed=0):
    return np.random.default_rng(seed).normal(size=(clips, 1, classes)).astype(np.float32)


def test_identical_outputs():
    ref = _ref()
    m = compare("logits", ref.copy(), ref)
    assert m.max_abs_err == m.mean_abs_err == m.max_rel_err == m.min_passing_atol == 0.0
    assert m.cosine == pytest.approx(1.0) and m.psnr_db > 150
    assert m.top1_agree == m.top5_agree == 1.0 and m.clips == 3


def test_worst_element_index_and_errors():
    ref = _ref()
    out = ref.copy()
    out[2, 0, 7] += 0.25
    out[0, 0, 1] -= 0.125
    m = compare("logits", out, ref)
    assert m.max_abs_index == (2, 0, 7)
    assert m.max_abs_err == pytest.approx(0.25, abs=1e-6)
    assert m.mean_abs_err == pytest.approx(0.375 / ref.size, rel=1e-5)
    rel = np.abs(out.astype(np.float64) - ref) / np.maximum(np.abs(ref), 1e-6)
    assert m.max_rel_err == pytest.approx(rel.max())


def test_min_passing_atol_is_what_allclose_needs_at_rtol_1e_3():
    ref = _ref()
    out = ref + np.float32(0.01)
    m = compare("logits", out, ref)
    assert np.allclose(out, ref, rtol=1e-3, atol=m.min_passing_atol * (1 + 1e-6))
    assert not np.allclose(out, ref, rtol=1e-3, atol=m.min_passing_atol * 0.99)


def test_psnr_follows_ai_hub_definition():
    ref = _ref(clips=1)
    out = ref + 0.01
    rmse = 0.01
    expected = 20 * math.log10((np.abs(ref).max() + 1e-5) / (rmse + 1e-10))
    assert psnr_per_clip(out, ref)[0] == pytest.approx(expected, abs=1e-3)


def test_cosine_and_psnr_report_the_worst_clip():
    ref = _ref(clips=3)
    out = ref.copy()
    out[1] = -out[1]  # one clip flipped
    m = compare("logits", out, ref)
    assert m.cosine == pytest.approx(-1.0)
    assert cosine_per_clip(out, ref)[[0, 2]] == pytest.approx([1.0, 1.0])
    assert m.psnr_db < 10


def test_cosine_of_zero_vectors():
    z = np.zeros((2, 1, 4))
    assert cosine_per_clip(z, z).tolist() == [1.0, 1.0]
    assert cosine_per_clip(z + [[[1, 0, 0, 0]]], z).tolist() == [0.0, 0.0]


def test_topk_agreement():
    ref = np.array([[[5, 4, 3, 2, 1, 0, -1]], [[0, 1, 2, 3, 4, 5, 6]]], dtype=np.float32)
    out = ref.copy()
    out[0, 0, 6] = 10  # clip 0: new top-1, the old 5th (index 4) drops out of the top 5
    assert topk_agreement(out, ref, 1) == 0.5
    assert topk_agreement(out, ref, 5) == pytest.approx((4 / 5 + 1) / 2)
    assert topk_agreement(np.zeros((2, 1)), np.zeros((2, 1)), 1) is None  # one class: no ranking


def test_structure_mismatches_name_both_sides():
    ref = {"logits": np.zeros((2, 1, 400), np.float32)}
    assert check_structure({"logits": np.zeros((2, 1, 400), np.float32)}, ref, "fp32") is None
    assert check_structure({}, ref, "fp32") == "output count 0 () != reference 1 (logits)"
    assert check_structure({"output_0": np.zeros((2, 1, 400), np.float32)}, ref, "fp32") == \
        "output names ['output_0'] != reference ['logits']"
    assert check_structure({"logits": np.zeros((2, 1, 401), np.float32)}, ref, "fp32") == \
        "output 'logits' shape (1, 401) != reference (1, 400)"
    assert check_structure({"logits": np.zeros((2, 1, 400), np.float64)}, ref, "fp32") == \
        "output 'logits' dtype float64 != reference float32"
    half = {"logits": np.zeros((2, 1, 400), np.float16)}
    assert check_structure(half, ref, "fp16") is None
    assert check_structure(half, ref, "fp32") == "output 'logits' dtype float16 != reference float32"


def test_nan_and_inf_are_counted():
    out = np.zeros((2, 1, 4), np.float32)
    out[0, 0, 1] = np.nan
    out[1, 0, 2] = -np.inf
    assert check_finite({"logits": out}) == "output 'logits' has 1 NaN and 1 Inf values"
    assert check_finite({"logits": np.zeros(3)}) is None


def test_judge_checks_structure_then_finiteness_then_values():
    ref = {"logits": _ref()}
    wrong_shape_and_nan = {"logits": np.full((3, 1, 11), np.nan, np.float32)}
    assert "shape" in judge(wrong_shape_and_nan, ref, "fp32", TOL).reason
    nan = {"logits": np.full((3, 1, 10), np.nan, np.float32)}
    assert "NaN" in judge(nan, ref, "fp32", TOL).reason
    v = judge({"logits": ref["logits"] + np.float32(2e-3)}, ref, "fp32", TOL)
    assert v.status == PARITY_FAILED and v.reason.startswith("max_abs_err 0.002 > 0.001 on 'logits' at (")
    ok = judge({"logits": ref["logits"] + np.float32(1e-4)}, ref, "fp32", TOL)
    assert ok.status == PASSED and ok.reason == "" and ok.metrics[0].name == "logits"


def test_judge_reports_every_broken_bound():
    ref = {"logits": _ref()}
    flipped = {"logits": -ref["logits"]}
    v = judge(flipped, ref, "fp32", TOL)
    metrics = [part.split()[0] for part in v.reason.split("; ")]
    assert metrics == ["max_abs_err", "cosine", "psnr_db", "top1_agree"]
    assert "top1_agree 0.000 < 1 on 'logits'" in v.reason


def test_bounds_left_unset_are_not_checked():
    ref = {"logits": _ref()}
    v = judge({"logits": ref["logits"] + np.float32(0.5)}, ref, "fp16", Tolerance(min_top1_agree=1.0))
    assert v.status == PASSED


def _at_psnr(ref: np.ndarray, db: float) -> np.ndarray:
    """`ref` plus noise whose per-clip PSNR (max|ref| peak, rmse) is `db`."""
    noise = np.random.default_rng(1).standard_normal(ref.shape)
    noise /= np.sqrt((noise**2).reshape(len(ref), -1).mean(axis=1)).reshape(-1, 1, 1)
    peak = np.abs(ref).reshape(len(ref), -1).max(axis=1).reshape(-1, 1, 1)
    return (ref + noise * peak * 10 ** (-db / 20)).astype(np.float32)


def test_default_fp32_bound_fails_the_one_weight_defect_that_80_db_passed():
    """Issue 23: a wrong weight measured 90 dB at the output; correct files measure 129 dB and up."""
    from edgebench.config import ParityConfig

    tol = ParityConfig().tolerances["fp32"]
    ref = {"logits": _ref()}  # logits of a few units: the max abs cap (1e-3) is not what decides
    assert judge({"logits": _at_psnr(ref["logits"], 129)}, ref, "fp32", tol).status == PASSED
    v = judge({"logits": _at_psnr(ref["logits"], 90)}, ref, "fp32", tol)
    assert v.status == PARITY_FAILED and v.reason.startswith("psnr_db 90.0 < 100"), v.reason
