"""The per-layer verdicts on plain numbers: each layer against its own floor, growth (the jump), the culprit a
failing row is blamed on, and a passing row failed by a layer that jumps (negative controls: rounding growth,
a correct file, a floor that nothing crosses)."""

from __future__ import annotations

import json
import math

import numpy as np

from edgebench.config import LocalizeConfig
from edgebench.parity.layers import FLOOR, JUMP, LARGEST, LayerRow, culprit, judge_layers, layer_errors, sqnr_db
from edgebench.parity.localize import Localization, attach_localization
from edgebench.records import PARITY_FAILED, PASSED, Artifact, ParityResult


def rows_of(errors: list[float], floor: float, factor: float = 10.0) -> list[LayerRow]:
    rows = [{"depth": i, "name": f"l{i}", "kind": "conv", "op": "Conv", "tensor": f"t{i}", "mapping": "scope",
             "shape": [1], "note": "", "max_abs_err": e, "rel_err": e, "cosine": 1.0, "sqnr_db": sqnr_db(e)}
            for i, e in enumerate(errors)]
    judge_layers(rows, floor, factor)
    return [LayerRow.from_dict(r) for r in rows]


def test_fp32_rounding_growth_is_not_divergence():
    rows = rows_of([3e-7 * 1.3**i for i in range(40)], floor=1e-4)  # 1.3x per layer: 8e-3 at the end, past the floor
    assert culprit(rows, failed=False) == ("", "")
    assert culprit(rows, failed=True)[1] == FLOOR  # past its floor: a failing row still names a layer


def test_a_jump_is_divergence_even_below_earlier_levels_growth():
    rows = rows_of([1e-7, 2e-7, 3e-2, 5e-2, 4e-2], floor=1e-4)
    assert culprit(rows, failed=False) == ("l2", JUMP)  # a passing row is blamed on it too: it will fail
    assert not rows[2].within_floor and rows[1].within_floor


def test_int8_level_errors_need_their_own_floor():
    errors = [0.02, 0.03, 0.04, 0.35, 0.3]
    assert culprit(rows_of(errors, floor=0.1, factor=5), failed=False) == ("l3", JUMP)  # 0.35 > 0.1 and 8.75x before
    assert culprit(rows_of(errors, floor=1e-4), failed=False) == ("l0", JUMP)  # an fp32 floor flags the first layer


def test_a_failing_file_without_a_jump_is_blamed_on_its_first_layer_under_the_floor():
    """The TFLite int8 collapse shape: error grows to 100 % in steps under 10x; no jump, still a culprit."""
    rows = rows_of([0.05, 0.12, 0.3, 0.7, 1.0], floor=0.1)
    assert culprit(rows, failed=False) == ("", "")  # nothing jumps: a passing row stays passed
    assert culprit(rows, failed=True) == ("l1", FLOOR)


def test_a_failing_file_within_every_floor_names_the_largest_jump():
    rows = rows_of([0.01, 0.012, 0.05, 0.06], floor=0.1)
    assert culprit(rows, failed=True) == ("l2", LARGEST)


def test_layer_errors_give_sqnr_and_cosine():
    ref = np.arange(1, 101, dtype=np.float32)
    e = layer_errors(ref * 1.01, ref)
    assert math.isclose(e["rel_err"], 0.01, rel_tol=1e-5) and math.isclose(e["sqnr_db"], 40.0, rel_tol=1e-5)
    assert e["cosine"] > 1 - 1e-12  # a pure scale error: cosine sees nothing, SQNR does
    assert layer_errors(ref, ref)["sqnr_db"] == math.inf


def _localization(errors: list[float], floor: float, precision: str = "fp32") -> Localization:
    rows = rows_of(errors, floor)
    name, rule = culprit(rows, failed=True)
    return Localization(model="m", format="onnx", precision=precision, reference_form="3d", mapping={"scope": len(rows)},
                        unmatched=[], layers=rows, culprit=name, culprit_rule=rule, rel_floor=floor, jump_factor=10.0)


def _row(status: str, reason: str = "") -> ParityResult:
    return ParityResult(model="m", format="onnx", precision="fp32", runtime="onnxruntime", status=status,
                        reason=reason, max_abs_err=1e-5)


def _attach(row: ParityResult, loc: Localization, tmp_path) -> ParityResult:
    path = tmp_path / "loc.json"
    path.write_text(json.dumps(loc.to_dict()))  # attach reads a saved table (one per artifact)
    artifact = Artifact(model="m", format="onnx", precision="fp32", status=PASSED, path="m.onnx")
    attach_localization(row, artifact, None, {}, LocalizeConfig(), path)
    return row


def test_a_layer_that_jumps_fails_a_row_whose_outputs_pass(tmp_path):
    row = _attach(_row(PASSED), _localization([1e-7, 2e-7, 6e-3, 5e-3], floor=1e-4), tmp_path)
    assert row.status == PARITY_FAILED and row.first_divergent_layer == "l2"
    assert row.reason.startswith("outputs within bounds, but first divergent layer l2 (conv")


def test_negative_control_a_correct_table_leaves_a_passing_row_passed(tmp_path):
    row = _attach(_row(PASSED), _localization([1e-7, 2e-7, 4e-7, 1e-6], floor=1e-4), tmp_path)
    assert row.status == PASSED and row.first_divergent_layer == "" and row.reason == ""


def test_a_failing_row_always_names_a_layer(tmp_path):
    loc = _localization([1e-7, 2e-7, 4e-7, 1e-6], floor=1e-4)  # even a table that looks correct (a runtime-only bug)
    row = _attach(_row(PARITY_FAILED, "psnr_db 70 < 80"), loc, tmp_path)
    assert row.first_divergent_layer == "l3" and "the largest jump" in row.reason


def test_localization_round_trips_its_rows(tmp_path):
    loc = _localization([1e-7, 3e-2], floor=1e-4)
    path = tmp_path / "l.json"
    path.write_text(json.dumps(loc.to_dict()))
    again = Localization.load(path)
    assert again.layers == loc.layers and isinstance(again.layers[0], LayerRow)
    assert again.floor_db == 80.0


def test_passing_rows_are_localized_only_with_all_rows():
    from edgebench.parity.localize import should_localize

    passed, failed = _row(PASSED), _row(PARITY_FAILED)
    assert should_localize(failed, LocalizeConfig()) and not should_localize(passed, LocalizeConfig())
    assert should_localize(passed, LocalizeConfig(all_rows=True))
    assert not should_localize(passed, LocalizeConfig(all_rows=True, auto=False))


def test_a_table_that_paired_nothing_says_so():
    loc = _localization([], floor=1e-4)
    loc.unmatched = ["model.stem.0", "model.fc"]
    assert loc.blame(failed=True) == ("", "")
    assert loc.summary() == "no reference layer paired with an artifact tensor (2 unmatched)"
