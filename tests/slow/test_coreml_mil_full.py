"""coreml-mil against PyTorch on the full 1x3x16x112x112 resnet_mixed: fp32 tight, fp16 within its tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from edgebench.config import ParityConfig, Tolerance
from edgebench.parity.check import check_parity, reference_outputs
from edgebench.parity.verdict import tolerance_for
from edgebench.records import PASSED
from tests import CONVS_3D

pytestmark = pytest.mark.slow

FP32_TIGHT = Tolerance(max_abs_err=1e-4, min_cosine=0.999999, min_top1_agree=1.0)


@pytest.fixture(scope="module")
def clips(full_ref):
    return {"video": np.random.default_rng(0).random((2, *full_ref.inputs[0].shape), dtype=np.float32)}


@pytest.fixture(scope="module")
def reference(full_ref, clips):
    return reference_outputs(full_ref, clips, threads=0)


def test_coreml_fp32_program_matches_torch_tightly(full_ref, artifacts, clips, reference):
    r = check_parity(artifacts[("coreml", "fp32")], "coreml-mil", full_ref, clips, reference,
                     FP32_TIGHT, threads=0)
    assert r.status == PASSED, r.reason
    assert r.runtime_options["op_census"]["conv"] == CONVS_3D


def test_coreml_fp16_program_passes_the_fp16_tolerance(full_ref, artifacts, clips, reference):
    r = check_parity(artifacts[("coreml", "fp16")], "coreml-mil", full_ref, clips, reference,
                     tolerance_for(ParityConfig(), "fp16"), threads=0)
    assert r.status == PASSED, r.reason
    assert r.max_abs_err > 1e-5  # the program really ran in fp16: its error is far above fp32's
