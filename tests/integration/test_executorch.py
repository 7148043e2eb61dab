"""ExecuTorch on small_ref through the real export path (child process, cache, read-back): fp32 and int8 .pte
files, their op census and compute dtypes, the runtime's threads, parity, and negative controls (altered
weights in the .pte, a truncated file, int8 judged at the fp32 tolerance, int8 without calibration, a Conv3d
left to the portable kernels), and localization on the .pte's own tensors (an altered weight and a wrong int8
scale named, correct files on none)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from edgebench.config import CalibrationConfig, ParityConfig
from edgebench.converters.export import export_artifact
from edgebench.converters.registry import get_converter
from edgebench.errors import UserError
from edgebench.parity.check import check_parity
from edgebench.parity.verdict import tolerance_for
from edgebench.records import PARITY_FAILED, PASSED, RUNTIME_FAILED
from edgebench.runtimes.registry import get_runtime, runtimes_for
from tests.integration.artifact_helpers import scratch_dir
from tests.integration.test_runtimes import inputs, reference  # noqa: F401 - the same parity clips, as fixtures
from tests import CONVS_LOWERED
from edgebench.models.source import build_module

FMT = "executorch"
CONVERTER = get_converter(FMT)
RUNTIME = runtimes_for(FMT)[0].name


@pytest.fixture(scope="module")
def exported(small_ref, tmp_path_factory):
    """fp32 and int8 through export_artifact, as the pipeline makes them (int8 on 4 seeded random clips),
    both at once (each in its own child: the lowering is single-threaded Python)."""
    cache = tmp_path_factory.mktemp("executorch-cache")
    calibration = CalibrationConfig(clips=4)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {p: pool.submit(export_artifact, small_ref, FMT, p, None, cache, 600, calibration=calibration)
                   for p in ("fp32", "int8")}
    out = {p: f.result() for p, f in futures.items()}
    for precision, a in out.items():
        assert a.ok, (precision, a.reason)
    return out


def _check(artifact, ref, inputs, reference, precision=None, threads=1):
    tol = tolerance_for(ParityConfig(), precision or artifact.precision)
    return check_parity(artifact, RUNTIME, ref, inputs, reference, tol, threads=threads)


def test_registered_and_usable_here():
    assert CONVERTER.suffix == ".pte" and CONVERTER.lowered_form and CONVERTER.calibrated == {"int8"}
    assert get_runtime(RUNTIME).unavailable_reason() is None


def test_fp32_artifact_is_delegated_to_xnnpack(exported, small_ref):
    a = exported["fp32"]
    census = a.op_census
    assert a.form == "2d-lowered" and a.size_bytes > 4 * 11_000_000  # 11.7 M float32 weights inside
    assert census["delegate_calls"] >= 1 and census["xnnpack_delegated_nodes"] > 20
    assert census["xnnpack:XNNConv2d"] == CONVS_LOWERED and census["xnnpack:XNNFullyConnected"] == 1
    assert "aten::convolution" not in census  # every conv went to XNNPACK
    assert a.compute_dtypes == {"float32": CONVS_LOWERED + 1}
    assert [t.shape for t in a.inputs] == [t.shape for t in small_ref.inputs]  # the ref's names: a .pte has none


def test_fp32_parity_passes_and_threads_take_effect(exported, small_ref, inputs, reference):
    one = _check(exported["fp32"], small_ref, inputs, reference, threads=1)
    two = _check(exported["fp32"], small_ref, inputs, reference, threads=2)
    assert one.status == two.status == PASSED, (one.reason, two.reason)
    assert one.max_abs_err < 1e-4 and one.top1_agree == 1.0
    # the pool size read back from the runtime after the reset, not just what was asked for
    assert (one.runtime_options["threads"], one.runtime_options["threadpool_threads"]) == (1, 1)
    assert (two.runtime_options["threads"], two.runtime_options["threadpool_threads"]) == (2, 2)
    assert "XnnpackBackend" in one.runtime_options["backends"]


def test_int8_artifact_is_int8_and_passes_the_int8_tolerance(exported, small_ref, inputs, reference):
    a = exported["int8"]
    assert a.compute_dtypes == {"int8": CONVS_LOWERED + 1} and a.calibration.startswith("random")
    assert a.op_census["xnnpack:XNNConv2d"] == CONVS_LOWERED
    assert a.size_bytes < exported["fp32"].size_bytes / 3
    r = _check(a, small_ref, inputs, reference)
    assert r.status == PASSED, r.reason
    assert r.cosine > 0.99 and r.top5_agree >= 0.8


def test_int8_fails_the_fp32_tolerance(exported, small_ref, inputs, reference):
    r = _check(exported["int8"], small_ref, inputs, reference, precision="fp32")
    assert r.status == PARITY_FAILED and "max_abs_err" in r.reason


def test_altered_weights_in_the_pte_fail_parity(exported, small_ref, inputs, reference):
    data = bytearray(open(exported["fp32"].path, "rb").read())
    middle = len(data) // 2  # the file is almost all weights: a block in its middle is inside some conv's
    data[middle:middle + 4096] = b"\x3f" * 4096  # floats of about 0.75 where weights were
    path = scratch_dir() / "altered.pte"
    path.write_bytes(bytes(data))
    r = _check(replace(exported["fp32"], path=str(path)), small_ref, inputs, reference)
    assert r.status == PARITY_FAILED, r


def test_truncated_pte_is_a_runtime_failure(exported, small_ref, inputs, reference):
    path = scratch_dir() / "truncated.pte"
    path.write_bytes(open(exported["fp32"].path, "rb").read()[:4096])
    r = _check(replace(exported["fp32"], path=str(path)), small_ref, inputs, reference)
    assert r.status == RUNTIME_FAILED and r.reason.startswith("load failed"), r


def test_int8_without_calibration_is_a_clear_error(small_ref, tmp_path):
    with pytest.raises(UserError, match="executorch int8: no calibration clips"):
        CONVERTER.export(build_module(small_ref, lowered=True), small_ref, "int8", {}, tmp_path / "m.pte", calibration=None)


def test_a_3d_convolution_left_to_the_portable_kernels_is_refused(small_ref, tmp_path):
    import torch

    with pytest.raises(ValueError, match=r"1 3D convolutions left to the portable kernels \(0 % of the conv/matmul "
                                         r"FLOPs delegated\)"):
        CONVERTER.export(torch.nn.Conv3d(3, 2, 1).eval(), small_ref, "fp32", {}, tmp_path / "m.pte")
    assert not (tmp_path / "m.pte").exists()


def test_other_calibration_methods_are_refused_at_planning():
    from edgebench.converters.export import refusal

    assert refusal(CONVERTER, "int8", {}, CalibrationConfig(method="minmax")) is None
    why = refusal(CONVERTER, "int8", {}, CalibrationConfig(method="entropy"))
    assert why == "executorch int8: calibration method entropy is not offered (offered: minmax)"
    assert CONVERTER.refusal("w8a16", {}).startswith("executorch w8a16: ")


# ---------------------------------------------------------------- localization: the .pte's own tensors


def _paired_mostly_by_scope(loc) -> bool:
    """Every layer paired, by scope but for relus fused into the conv before them."""
    by_order = [r for r in loc.layers if r.mapping != "scope"]
    return not loc.unmatched and all(r.kind == "relu" and r.mapping == "order" for r in by_order) \
        and len(by_order) < len(loc.layers) / 4


def test_every_layer_of_the_pte_is_tapped_and_named_by_scope(exported, small_ref, inputs):
    """The tapped copy runs on the ExecuTorch runtime; the scopes file names the tensors: nothing unpaired (a relu
    that XNNPACK fused into its conv shares the conv's tensor, whose scope names the conv, so it is paired by
    order), and the correct file's layers sit at fp32 rounding (negative control: no culprit for a passing row)."""
    from edgebench.config import LocalizeConfig
    from edgebench.parity.localize import first_clip, localize

    loc = localize(exported["fp32"], small_ref, first_clip(inputs), LocalizeConfig())
    assert _paired_mostly_by_scope(loc), (loc.mapping, loc.unmatched)
    assert {r.kind for r in loc.layers} == {"conv", "relu", "pool", "linear"}
    assert max(r.rel_err for r in loc.layers) < 1e-5 and loc.blame(failed=False) == ("", "")


def test_an_altered_weight_in_the_pte_is_named(exported, small_ref, inputs, tmp_path):
    from edgebench.config import LocalizeConfig
    from edgebench.parity.localize import first_clip, localize
    from tests import weight_edits
    from tests.integration.test_localize import K, conv_names

    module = build_module(small_ref, lowered=True)
    name = conv_names(module)[K]
    altered = weight_edits.altered_copy(exported["fp32"].path, FMT, module, name, tmp_path / "altered")
    loc = localize(replace(exported["fp32"], path=str(altered)), small_ref, first_clip(inputs), LocalizeConfig())
    assert loc.blame(failed=False) == (name, "jump"), loc.summary(failed=False)


def test_a_wrong_int8_scale_in_the_pte_is_blamed_on_its_layer(exported, small_ref, inputs, reference, tmp_path):
    """One XNNPACK conv's filter scales x2 (tests/quant_bugs.py): parity fails, and localization of the int8
    tensors (dequantized from the XNNPACK values) names that conv; the correct int8 file names none."""
    from edgebench.config import LocalizeConfig
    from edgebench.parity.localize import first_clip, localize
    from tests import quant_bugs

    path = tmp_path / "scaled.pte"
    name = quant_bugs.executorch_wrong_scale(Path(exported["int8"].path), path, conv_index=16)
    scaled = replace(exported["int8"], path=str(path))
    assert _check(scaled, small_ref, inputs, reference).status == PARITY_FAILED
    good = localize(exported["int8"], small_ref, first_clip(inputs), LocalizeConfig())
    bad = localize(scaled, small_ref, first_clip(inputs), LocalizeConfig())
    assert good.mapping == bad.mapping and _paired_mostly_by_scope(good)
    assert good.blame(failed=False) == ("", "") and all(r.within_floor for r in good.layers)
    assert bad.blame(failed=True) == (name, "jump"), bad.summary()
