"""The 2D-lowered form: equal to the 3D form on both batch paths, module names kept, refusals said aloud,
a wrong rewrite caught (negative controls), selectable in the config, and what the converters make of it."""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgebench.config import ExportFriendlyConfig, PreprocessConfig
from edgebench.models import lowering
from edgebench.models.friendly import make_export_friendly
from edgebench.models.lowering import LOWERED, THREE_D, FoldedConv3d, FoldedPool3d, mismatch, op_mix, rows_layout
from edgebench.models.lowering_graph import lower_3d
from tests.unit.test_models import _trained_like
from edgebench.models.source import build_module

SHAPE = (1, 3, 8, 32, 32)


def _both_paths(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs of the dynamic-batch path (5D gather) and of the static-batch path (4D rows, as torch.export takes)."""
    with torch.no_grad():
        dynamic = model(x)
        with rows_layout():
            rows = model(x)
    return [dynamic, rows]


def _reference(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("arch", ["mc3_18", "r3d_18", "r2plus1d_18"])
def test_lowered_torchvision_models_equal_the_3d_form(arch):
    model = make_export_friendly(_trained_like(arch), ExportFriendlyConfig(), PreprocessConfig(), input_rank=5)
    x = torch.rand((2,) + SHAPE[1:], generator=torch.Generator().manual_seed(3))  # N = 2: the batch stays free
    want = _reference(model, x)
    names = {name for name, _ in model.named_modules()}
    lowered, report = lower_3d(model, torch.rand(SHAPE))
    assert report.form == LOWERED and report.driver == "graph" and report.reason == "" and report.kept == {}
    assert report.unfolded == {} and report.lowered_share > 0.999  # all but the fc after the global mean
    assert not any(isinstance(m, nn.Conv3d) for m in lowered.modules())
    assert names <= {name for name, _ in lowered.named_modules()}  # every attribute path survives
    assert isinstance(lowered.get_submodule("model.layer2.0.downsample.0"), FoldedConv3d)
    assert any(isinstance(m, nn.Conv3d) for m in model.modules())  # the model itself is left as it was
    for got in _both_paths(lowered, x):
        assert mismatch(got, want) is None, mismatch(got, want)
        assert (got - want).abs().max() < 1e-5


class OddMix(nn.Module):
    """A user's model: even/odd temporal kernels, strides, dilation, groups, 'valid', pools, a reflect pad."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv3d(3, 16, (2, 3, 5), stride=(2, 1, 2), padding=(1, 1, 2))  # thin input: taps stacked
        self.bn = nn.BatchNorm3d(16)
        self.dilated = nn.Conv3d(16, 16, (3, 1, 1), dilation=(2, 1, 1), padding=(2, 0, 0))  # wide input: summed
        self.strided = nn.Conv3d(16, 16, (3, 3, 3), padding=(0, 1, 1))  # summed, no padding frames
        self.grouped = nn.Conv3d(16, 12, 3, stride=(2, 2, 1), padding=(1, 0, 1), groups=4)
        self.maxpool = nn.MaxPool3d((2, 3, 3), stride=(1, 2, 2), padding=(1, 1, 1))
        self.avgpool = nn.AvgPool3d((3, 2, 2), stride=(2, 1, 1), padding=(1, 0, 0))
        self.valid = nn.Conv3d(12, 6, (1, 3, 3), padding="valid", bias=False)
        self.reflect = nn.Conv3d(6, 6, 3, padding=1, padding_mode="reflect")
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.fc = nn.Linear(6, 5)
        self.bn.running_mean.uniform_(-0.3, 0.3)
        self.bn.running_var.uniform_(0.5, 1.5)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        x = self.strided(x + self.dilated(x))
        x = self.avgpool(self.maxpool(self.grouped(x)))
        x = self.reflect(self.valid(x))
        return self.fc(self.pool(x).flatten(1))


def _odd() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(5)
    model = OddMix().eval()
    x = torch.rand(2, 3, 11, 20, 20)
    return model, x, _reference(model, x)


def test_a_user_model_with_an_odd_mix_is_lowered_and_equal():
    model, x, want = _odd()
    lowered, report = lower_3d(model, torch.rand(1, 3, 11, 20, 20))
    assert report.form == LOWERED, report.reason
    assert report.kept == {"reflect": "padding_mode='reflect'"}  # refused, said, and still correct
    assert report.unfolded == {"reflect": 1}  # it runs on its 5-D view; the pool after it folds again
    assert isinstance(lowered.reflect, nn.Conv3d) and isinstance(lowered.bn, nn.BatchNorm2d)
    mix = op_mix(lowered)
    assert mix["conv2d<-2 taps stacked"] == 1 and mix["conv2d x3 summed"] == 3 and mix["conv3d"] == 1
    assert mix["maxpool2d<-2 taps"] == 1 and mix["avgpool2d<-3 taps"] == 1
    assert 0.5 < report.lowered_share < 1.0
    for got in _both_paths(lowered, x):
        assert mismatch(got, want) is None, mismatch(got, want)


def test_a_summed_conv_no_tap_of_which_covers_every_frame_keeps_its_bias():
    """kt = 2 with temporal padding 1: T + 1 output frames, each tap reaches T of them, so the bias is added apart."""
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv3d(16, 8, (2, 3, 3), padding=(1, 1, 1)), nn.AdaptiveAvgPool3d(1), nn.Flatten()).eval()
    x = torch.rand(2, 16, 5, 8, 8)
    want = _reference(model, x)
    lowered, report = lower_3d(model, x[:1])
    assert report.form == LOWERED and op_mix(lowered)["conv2d x2 summed"] == 1
    for got in _both_paths(lowered, x):
        assert mismatch(got, want) is None, mismatch(got, want)
    lowered.get_submodule("0").bias.data += 1.0  # the negative control: the bias does count
    for got in _both_paths(lowered, x):
        assert "max |lowered - 3d|" in mismatch(got, want)


def test_negative_control_a_wrongly_reshaped_weight_is_caught():
    model, x, want = _odd()
    lowered, _ = lower_3d(model, x[:1])
    o, c, kt, kh, kw = model.stem.weight.shape
    lowered.stem.weight.data = model.stem.weight.detach().reshape(o, kt * c, kh, kw)  # no (C, kt) -> (kt, C) permute
    for got in _both_paths(lowered, x):
        assert "max |lowered - 3d|" in mismatch(got, want)


def test_negative_control_a_wrong_temporal_padding_is_caught():
    model, x, want = _odd()
    lowered, _ = lower_3d(model, x[:1])
    lowered.dilated.pt += 1  # frames shifted by one: same shapes, wrong values
    for got in _both_paths(lowered, x):
        assert "max |lowered - 3d|" in mismatch(got, want)


class TimeCrop(nn.Module):
    """Drops the first frame with plain indexing on axis 2: time in the 5D layout, height once folded."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.after = nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0))
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x):
        return self.pool(self.after(self.conv(x)[:, :, 1:].flip(2))).flatten(1)


def test_an_op_the_lowering_does_not_know_gets_the_5d_view_and_the_rest_stays_lowered():
    torch.manual_seed(0)
    model = TimeCrop().eval()
    x = torch.rand(2, 3, 4, 8, 8)
    want = _reference(model, x)
    lowered, report = lower_3d(model, x[:1])
    assert report.form == LOWERED and report.driver == "graph", report.reason
    assert report.unfolded == {"getitem in forward": 1}  # the crop gets its 5-D view; the flip after it is 5-D too
    assert isinstance(lowered.conv, FoldedConv3d) and isinstance(lowered.after, FoldedConv3d)  # both sides lowered
    assert isinstance(lowered.pool, lowering.FoldedMean)
    for got in _both_paths(lowered, x):
        assert mismatch(got, want) is None, mismatch(got, want)


class TimeFlip(nn.Module):
    """Reverses time between two convs: `flip(2)` is time in the 5D layout, height once folded."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1))
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x):
        return self.pool(self.conv(x).flip(2)[:, :, :2]).flatten(1)


def test_negative_control_a_wrong_driver_is_caught_and_undone(monkeypatch):
    """Taking the time flip for an elementwise op flips height on the folded tensor: the check must refuse it."""
    from edgebench.models import lowering_graph

    torch.manual_seed(0)
    model = TimeFlip().eval()
    x = torch.rand(1, 3, 4, 8, 8)
    want = _reference(model, x)
    assert lower_3d(model, x)[1].unfolded == {"flip in forward": 1}  # right: the flip gets the 5-D view
    monkeypatch.setattr(lowering_graph, "_ELEMENTWISE_METHODS", lowering_graph._ELEMENTWISE_METHODS | {"flip"})
    lowered, report = lower_3d(model, x)
    assert "the graph driver's form differs from the 3D form" in report.driver_note
    assert report.form == THREE_D and "lowering undone, it differs from the 3D form" in report.reason  # modules too
    assert lowered is model and isinstance(model.conv, nn.Conv3d) and torch.equal(_reference(model, x), want)


class Untraceable(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it, the module swap still lowers it."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 4, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool3d(1)

    def forward(self, x):
        x = self.conv(x)
        if x.sum() > 0:
            x = torch.relu(x)
        return self.pool(x).flatten(1)


def test_a_model_fx_cannot_trace_gets_the_module_swap():
    torch.manual_seed(0)
    model = Untraceable().eval()
    x = torch.rand(1, 3, 4, 8, 8)
    want = _reference(model, x)
    lowered, report = lower_3d(model, x)
    assert report.form == LOWERED and report.driver == "modules" and "graph driver failed" in report.driver_note
    assert isinstance(lowered.conv, FoldedConv3d) and report.lowered_share is None  # no graph: no FLOPs counted
    assert mismatch(_reference(lowered, x), want) is None


class FunctionalTail(nn.Module):
    """S3D's shape in small: separable convs, an inception concat, functional pools, a conv classifier and
    `x.mean(dim=(2, 3, 4))` instead of a pooling module, as users write it."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv3d(3, 8, (3, 3, 3), stride=(1, 2, 2), padding=1)
        self.spatial = nn.Conv3d(8, 8, (1, 3, 3), padding=(0, 1, 1))
        self.temporal = nn.Conv3d(8, 8, (3, 1, 1), padding=(1, 0, 0))
        self.branch = nn.Conv3d(8, 8, 1)
        self.weight = nn.Parameter(torch.randn(16, 16, 3, 1, 1) * 0.1)
        self.classifier = nn.Conv3d(16, 5, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.cat([self.temporal(self.spatial(x)), self.branch(x)], 1)
        x = F.max_pool3d(x, (3, 3, 3), stride=(2, 2, 2), padding=1)
        x = F.relu(F.conv3d(x, self.weight, None, 1, (1, 0, 0)))
        x = self.classifier(F.avg_pool3d(x, (2, 2, 2), stride=1))
        return x.mean(dim=(2, 3, 4))


def test_functional_ops_and_a_functional_mean_are_lowered():
    torch.manual_seed(0)
    model = FunctionalTail().eval()
    x = torch.rand(2, 3, 8, 16, 16)
    want = _reference(model, x)
    lowered, report = lower_3d(model, x[:1])
    assert report.form == LOWERED and report.driver == "graph" and report.kept == {} and report.unfolded == {}
    assert report.lowered_share == 1.0
    lowered_ops = [m for m in lowered.modules() if isinstance(m, (FoldedConv3d, FoldedPool3d))]
    assert len(lowered_ops) == 8  # 5 modules, F.conv3d, F.max_pool3d, F.avg_pool3d
    assert not any(isinstance(m, nn.Conv3d) for m in lowered.modules())
    for got in _both_paths(lowered, x):
        assert mismatch(got, want) is None, mismatch(got, want)


def test_a_model_without_3d_ops_stays_as_it_is():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten()).eval()
    lowered, report = lower_3d(model, torch.rand(1, 3, 8, 8))
    assert lowered is model and report.form == THREE_D and "no 3D convolution" in report.reason


def _tiny_yaml(tmp_path: Path, lower: bool) -> Path:
    (tmp_path / "tiny.py").write_text(
        "import torch\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU(),\n"
        "        torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))\n")
    path = tmp_path / f"tiny_{lower}.yaml"
    path.write_text(
        f"name: tiny\nsource: tiny.py:build\ninputs: [{{name: video, shape: [1, 3, 4, 8, 8]}}]\n"
        f"outputs: [{{name: logits, shape: [1, 2]}}]\nexport_friendly: {{lower_3d: {str(lower).lower()}}}\n")
    return path


def test_both_forms_are_selectable_and_keyed(tmp_path):
    from edgebench.models.source import lowering_report, resolve_model

    on, off = (resolve_model(str(_tiny_yaml(tmp_path, flag))) for flag in (True, False))
    assert on.config_hash != off.config_hash  # the export cache key covers the config hash
    assert lowering_report(on).form == LOWERED and not any(isinstance(m, nn.Conv3d) for m in build_module(on, lowered=True).modules())
    assert lowering_report(off).form == THREE_D and "lower_3d is false" in lowering_report(off).reason
    assert any(isinstance(m, nn.Conv3d) for m in build_module(off, lowered=True).modules())
    x = torch.rand(1, 3, 4, 8, 8)
    assert mismatch(_reference(build_module(on, lowered=True), x), _reference(build_module(on), x)) is None


def test_eager_baseline_is_the_unlowered_form(small_ref):
    from edgebench.runtimes.torch_eager import TorchEagerRuntime, eager_artifact

    session = TorchEagerRuntime().load(eager_artifact(small_ref), small_ref, 1)
    assert any(isinstance(m, nn.Conv3d) for m in session.module.modules())
    assert not any(isinstance(m, nn.Conv3d) for m in build_module(small_ref, lowered=True).modules())


def test_lowering_source_is_in_the_converter_code_hash(tmp_path, monkeypatch):
    from edgebench.converters.export import _code_hash
    from edgebench.converters.registry import get_converter

    converter = get_converter("onnx")
    before = _code_hash(converter)
    changed = tmp_path / "lowering.py"
    changed.write_text(Path(inspect.getfile(lowering)).read_text() + "\n# changed\n")
    monkeypatch.setattr(lowering, "__file__", str(changed))
    assert _code_hash(converter) != before


@pytest.fixture(scope="module")
def lowered_exports(small_exports):
    """The session's fp32 exports of the formats whose converters export the 2D-lowered form."""
    return {fmt: small_exports[fmt] for fmt in ("tflite", "onnx")}


def conv2d_count(model: nn.Module) -> int:
    """Conv2d the lowered model runs: one per stacked or 2D conv, kt per summed one (plain Conv2d too)."""
    return sum(m.kt if m.summed else 1 for m in model.modules() if isinstance(m, FoldedConv3d)) + sum(
        isinstance(m, nn.Conv2d) for m in model.modules())


def test_tflite_has_no_conv3d_and_every_conv_in_xnnpack(lowered_exports, small_ref):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgebench.models.info import count_flops
    from edgebench.models.source import example_input
    from edgebench.runtimes.delegation import delegated_ops, op_flops

    a = lowered_exports["tflite"]
    convs = conv2d_count(build_module(small_ref, lowered=True))  # 28 for mc3_18: layer1's 4 convs summed over 3 taps
    assert a.form == LOWERED and "CONV_3D" not in a.op_census and a.op_census["CONV_2D"] == convs
    assert a.op_census.get("TRANSPOSE", 0) <= 2  # the input's NCTHW -> folded NHWC, and the pooled tail
    runs = {}
    for resolver in (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        interpreter = Interpreter(model_path=a.path, num_threads=1, experimental_op_resolver_type=resolver)
        interpreter.allocate_tensors()
        runs[resolver] = delegated_ops(interpreter)
    xnnpack, builtin = runs[OpResolverType.AUTO], runs[OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES]
    assert xnnpack["delegated"]["CONV_2D"] == convs and xnnpack["not_delegated"] == {}
    assert builtin["delegated"] == {} and builtin["not_delegated"]["CONV_2D"] == convs  # the counter can say "no"
    assert xnnpack["delegated_flops_pct"] == 100.0 and builtin["delegated_flops_pct"] == 0.0
    shapes = {d["index"]: tuple(int(x) for x in d["shape"]) for d in interpreter.get_tensor_details()}
    counted = sum(op_flops(o, shapes) for o in interpreter._get_ops_details() if o["op_name"] != "DELEGATE")
    torch_flops = count_flops(build_module(small_ref), example_input(small_ref))  # torch's count of the eager 3D model
    # The same MACs, less the summed taps' products with the zero padding frames (a large share at this small T),
    # plus the elementwise ops torch does not count.
    assert 0.85 < counted / torch_flops < 1.15, (counted, torch_flops)
    from edgebench.runtimes.litert import LiteRTRuntime

    with LiteRTRuntime().load(a, small_ref, 1) as session:  # rows record what XNNPACK left out
        assert session.options["not_delegated"] == {}


def test_onnx_lowered_has_2d_convs_a_free_batch_and_matches_eager(lowered_exports, small_ref):
    import onnx
    import onnxruntime as ort

    a = lowered_exports["onnx"]
    graph = onnx.load(a.path).graph
    weights = {t.name: len(t.dims) for t in graph.initializer}
    convs = conv2d_count(build_module(small_ref, lowered=True))
    assert [weights[n.input[1]] for n in graph.node if n.op_type == "Conv"] == [4] * convs  # weights as they are
    assert a.inputs[0].shape[0] == -1
    x = torch.rand((2,) + tuple(small_ref.inputs[0].shape[1:]), generator=torch.Generator().manual_seed(2))
    (got,) = ort.InferenceSession(a.path, providers=["CPUExecutionProvider"]).run(None, {"video": x.numpy()})
    assert mismatch(torch.from_numpy(np.asarray(got)), _reference(build_module(small_ref), x)) is None


@pytest.fixture(scope="module")
def mean_net(tmp_path_factory):
    """The evaluation tests' tiny net, trained on moving bars (tests/evaluation_fixture.py): its forward ends
    in `self.fc(x.mean(dim=(2, 3, 4)))`, a user's functional global mean instead of a pooling module."""
    from tests.evaluation_fixture import build_fixture

    return build_fixture(tmp_path_factory.mktemp("mean-net"))


def _int8_rows(mean_net, tmp_path: Path, lower: bool):
    """ExecuTorch and TFLite int8 of the trained net through the pipeline's steps: calibrated on its training
    videos, judged on clips of one evaluation video."""
    import yaml

    from edgebench import pipeline
    from edgebench.config import PipelineConfig

    spec = yaml.safe_load(mean_net.model_yaml.read_text())
    spec["export_friendly"]["lower_3d"] = lower
    model_yaml = tmp_path / f"mean_net_{lower}.yaml"
    model_yaml.write_text(yaml.safe_dump(spec))
    video = next(p for p in sorted(mean_net.dataset.rglob("*")) if p.is_file())
    config = PipelineConfig(formats={"executorch": ["int8"], "tflite": ["int8"]}, runtimes=["executorch", "litert"],
                            threads=1, parity={"random_clips": 0, "video": str(video), "video_clips": 2},
                            calibration={"videos": [str(mean_net.dataset.parent / "train")], "clips": 8})
    settings = pipeline.new_run(config, tmp_path / f"out-{lower}")
    return pipeline.run_model_sequential(str(model_yaml), settings, str(mean_net.weights), bench=False)


def test_a_functional_mean_gets_the_lowering_and_int8_passes(mean_net, tmp_path):
    """The issue's user model: with `x.mean(dim=(2, 3, 4))` in forward, ExecuTorch and TFLite int8 pass (the
    module swap had undone the whole lowering for it, so both failed: the negative control below)."""
    result = _int8_rows(mean_net, tmp_path, lower=True)
    assert [(a.format, a.status, a.form) for a in result.artifacts] == [
        ("executorch", "passed", LOWERED), ("tflite", "passed", LOWERED)], [a.reason for a in result.artifacts]
    assert all(a.compute_dtypes == {"int8": 3} for a in result.artifacts)  # two convs and the fc, all int8
    assert [(p.format, p.status) for p in result.parity] == [("executorch", "passed"), ("tflite", "passed")], \
        [p.reason for p in result.parity]
    unlowered = _int8_rows(mean_net, tmp_path, lower=False)
    reasons = {a.format: a.reason for a in unlowered.artifacts if a.status == "export_failed"}
    assert "2 3D convolutions left to the portable kernels" in reasons["executorch"]
    assert "mislabelled file: int8: 1 of 3 conv/matmul ops run int8" in reasons["tflite"]
