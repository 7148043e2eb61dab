"""Repair logic without toolchains: the search on layer sets judged by a rule, its budgets, the ranking of an
outlier channel's layers, the float_layers option and its refusals, the mixed census and the rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgebench.config import PipelineConfig, base_precision, mixed_precision
from edgebench.converters.export import mislabelled
from edgebench.converters.registry import converters, get_converter
from edgebench.errors import UserError
from edgebench.records import PASSED, REPAIR_FAILED, Artifact, LatencyResult, ParityResult, RunData
from edgebench.repair.run import repair_config
from edgebench.repair.search import Trial, default_max_float, default_max_trials, find_float_layers
from edgebench.repair.sensitivity import Sensitivity, order_for_search
from tests.synthetic_runs import model_ref

LAYERS = [f"model.layer{i}" for i in range(21)]  # resnet_mixed has 21 conv/linear layers


def rule_judge(needed: set[str], calls: list):
    """A judge whose verdict is a rule: a set passes when it holds every needed layer."""
    def judge(layers: tuple[str, ...]) -> Trial:
        assert len(set(layers)) < len(LAYERS), "the all-float set is never tried"
        calls.append(layers)
        passed = needed <= set(layers)
        return Trial(layers, passed, PASSED if passed else "parity_failed")
    return judge


# (positions of the needed layers in the ranking, the trials it takes): one needed layer anywhere, or two ranked
# near the top, stay within 2 log2(21) + 4 = 12.8; two that the ranking put far apart cost a little more.
CASES = [((0,), 1), ((1,), 3), ((0, 1), 3), ((1, 0), 3), ((3,), 7), ((20,), 9), ((5, 6), 12), ((2, 17), 13),
         ((19, 20), 12)]


@pytest.mark.parametrize("needed_at, most", CASES)
def test_search_finds_the_needed_layers_in_few_trials(needed_at, most):
    needed = {LAYERS[i] for i in needed_at}
    calls: list = []
    found = find_float_layers(LAYERS, rule_judge(needed, calls), max_float=4, max_trials=100, budget_s=60)
    assert found.layers is not None and set(found.layers) == needed, found
    assert len(calls) == len(set(map(frozenset, calls))) == len(found.trials)  # every layer set tried once
    assert len(calls) <= most, [len(c) for c in calls]


def test_nothing_repairs_garbage():
    """Negative control: a file no small layer set repairs. Every other layer in float fails without each of the
    least sensitive ones: five layers that must stay float, past the limit of four, found in 11 trials."""
    calls: list = []
    found = find_float_layers(LAYERS, rule_judge({"not a layer"}, calls), max_float=4, max_trials=100, budget_s=60)
    assert found.layers is None and not any(t.passed for t in found.trials) and len(calls) == 11
    assert found.reason == (", ".join(reversed(LAYERS[16:])) + " must each stay in float (every other layer in float "
                            "fails without it): more than repair.max_float_layers (4)")
    found = find_float_layers(LAYERS, rule_judge(set(LAYERS[:5]), []), max_float=4, max_trials=100, budget_s=60)
    assert found.layers is None and "are needed and still fail: more than repair.max_float_layers (4)" in found.reason


def test_earlier_trials_count_and_are_not_repeated():
    calls: list = []
    judge = rule_judge({LAYERS[1]}, calls)
    first = judge((LAYERS[5],))
    found = find_float_layers(LAYERS, judge, max_float=4, max_trials=100, budget_s=60, tried=[first])
    assert found.layers == (LAYERS[1],) and found.trials[0] is first and len(set(map(frozenset, calls))) == len(calls)


def test_budgets_stop_the_search():
    calls: list = []
    found = find_float_layers(LAYERS, rule_judge({LAYERS[20]}, calls), max_float=4, max_trials=2, budget_s=60)
    assert found.layers is None and found.reason == "the budget of 2 trials is spent" and len(calls) == 2
    found = find_float_layers(LAYERS, rule_judge({LAYERS[20]}, []), max_float=4, max_trials=50, budget_s=-1)
    assert found.layers is None and "time budget of -1 s" in found.reason


def test_default_budgets():
    assert [default_max_trials(n) for n in (1, 6, 21, 64)] == [6, 10, 13, 16]  # ceil(2 log2(layers) + 4)
    assert [default_max_float(n) for n in (1, 6, 9, 21, 64)] == [1, 2, 3, 4, 4]  # a third, at most 4


def test_search_order_puts_divergent_layers_first():
    ranked = [Sensitivity("b", 0.5), Sensitivity("a", 0.4), Sensitivity("c", 0.1)]
    assert order_for_search(ranked, []) == ["b", "a", "c"]
    assert order_for_search(ranked, ["c", "model.relu", "a"]) == ["c", "a", "b"]  # unknown names ignored


def test_ranking_names_the_two_layers_around_an_outlier_channel():
    """Single-layer quantization error, simulated in torch: with the outlier the layers producing and consuming it
    lead, 50x worse than without it (the control: the same net before the outlier); the others do not move."""
    import torch

    from edgebench.repair.sensitivity import rank_layers
    from tests.outlier_model import NEXT_LAYER, OUTLIER_LAYER, add_outlier, outlier_net

    torch.manual_seed(0)
    plain = outlier_net().eval()
    clips = list(np.random.default_rng(0).random((4, 1, 3, 4, 16, 16), dtype=np.float32))
    before = {s.layer: s.error for s in rank_layers(plain, "int8", clips)}
    with_outlier = add_outlier(plain, torch.from_numpy(np.concatenate(clips)))
    after = rank_layers(with_outlier, "int8", clips)
    assert [s.layer for s in after[:2]] == [NEXT_LAYER, OUTLIER_LAYER]
    assert all(s.error > 50 * before[s.layer] for s in after[:2])
    assert all(s.error == pytest.approx(before[s.layer], rel=0.01) for s in after[2:])
    assert rank_layers(with_outlier, "w8", clips)[0].layer == NEXT_LAYER  # weights only: the consumer's tiny weights


# ---------------------------------------------------------------- the converter option


def test_float_layers_options_are_normalized_and_keep_plain_options_unchanged():
    onnx = get_converter("onnx")
    assert "float_layers" not in onnx.merge_options({}) and "float_layers" not in onnx.merge_options({"float_layers": []})
    merged = onnx.merge_options({"float_layers": ["b", "a", "b"]})
    assert merged["float_layers"] == ["a", "b"] and merged["keep_in"] == "fp32"
    with pytest.raises(UserError, match="float_layers must be a list of layer names"):
        onnx.merge_options({"float_layers": "model.fc"})
    with pytest.raises(UserError, match=r"unknown converter option\(s\) bogus .*float_layers"):
        onnx.merge_options({"bogus": 1})


@pytest.mark.parametrize("fmt", list(converters()))
def test_every_converter_keeps_layers_or_says_why_not(fmt):
    converter = get_converter(fmt)
    for precision in converter.precisions:
        why = converter.refusal(precision, converter.merge_options({"float_layers": ["model.fc"]}))
        assert (why is None) == (precision in converter.mixable), (precision, why)
        if why:
            assert why.startswith(f"{fmt} {precision}: cannot keep layers") and "\n" not in why
    for keep_in in ("fp16", "w8a16"):
        for precision in converter.mixable:
            if keep_in not in converter.keep_in:
                assert f"cannot keep layers in {keep_in}" in converter.mix_refusal(precision, keep_in)


def test_mixed_census_needs_both_dtypes():
    assert mislabelled("int8", {"int8": 6, "float32": 2}, "fp32") is None
    assert "int8-mixed" in mislabelled("int8", {"int8": 8}, "fp32")  # the converter quantized the kept layer anyway
    assert "int8-mixed" in mislabelled("int8", {"float32": 8}, "fp32")  # a float file is no int8-mixed file
    assert mislabelled("int8", {"int8": 6, "float32": 2})  # without keep_in: a plain int8 file must be all int8
    assert mixed_precision("int8") == mixed_precision("int8-mixed") == "int8-mixed" and base_precision("int8-mixed") == "int8"


def test_repair_config_narrows_to_formats_that_keep_layers():
    cfg = repair_config(PipelineConfig(), None, "int8")
    assert cfg.repair.enabled and cfg.formats == {f: ["fp32", "int8"] for f in ("onnx", "tflite", "executorch")}
    assert repair_config(PipelineConfig(), None, "w8").formats == {"coreml": ["fp32", "w8"]}
    with pytest.raises(UserError, match="--formats: torchscript int8: cannot keep layers"):
        repair_config(PipelineConfig(), ["torchscript"], "int8")
    with pytest.raises(UserError, match="--precision: 'fp32' is not a reduced precision"):
        repair_config(PipelineConfig(), None, "fp32")
    with pytest.raises(UserError, match="cannot keep layers in fp16"):
        repair_config(PipelineConfig(repair={"keep_in": "fp16"}), ["onnx"], "int8")


# ---------------------------------------------------------------- rows


def _art(precision, status=PASSED, **kw) -> Artifact:
    return Artifact("m", "onnx", precision, status, path=f"/x/{precision}.onnx", size_bytes=2**20, **kw)


def _lat(precision, p50) -> LatencyResult:
    return LatencyResult("m", "onnx", precision, "onnxruntime", "local", PASSED, p50_ms=p50)


def test_rows_carry_float_layers_and_both_speedups():
    from edgebench.reports.rows import flatten

    run = RunData("r", "t0", "t1", "/o", 2, [model_ref("m", "random:seed=0")],
                  [_art("fp32"), _art("int8"), _art("int8-mixed", float_layers=("model.a", "model.b"))],
                  [ParityResult("m", "onnx", p, "onnxruntime", PASSED) for p in ("fp32", "int8", "int8-mixed")],
                  [_lat("fp32", 100.0), _lat("int8", 25.0), _lat("int8-mixed", 40.0)],
                  config={"formats": {"onnx": ["fp32", "int8"]}})
    rows = flatten(run).set_index("precision")
    assert rows.loc["int8-mixed", "float_layers"] == "model.a;model.b" and rows.loc["int8", "float_layers"] == ""
    assert rows.loc["int8-mixed", "speedup_vs_fp32"] == 2.5 and rows.loc["int8-mixed", "speedup_vs_quantized"] == 0.625
    assert np.isnan(rows.loc["int8", "speedup_vs_quantized"]) and rows.loc["int8", "speedup_vs_fp32"] == 4.0


def test_a_failed_repair_is_its_own_failed_row():
    from edgebench.reports.rows import flatten

    failed = Artifact("m", "onnx", "int8-mixed", REPAIR_FAILED, reason="repair_failed: tried 5 sets")
    run = RunData("r", "t0", "t1", "/o", 2, [model_ref("m", "random:seed=0")], [failed],
                  config={"formats": {"onnx": ["int8"]}})
    row = flatten(run, runtimes_for={"onnx": ["onnxruntime"]}).iloc[0]
    assert (row["status"], row["precision"], row["failure"]) == (REPAIR_FAILED, "int8-mixed", "numerics")
    assert row["reason"] == "export: repair_failed: tried 5 sets" and np.isnan(row["size_mb"])
