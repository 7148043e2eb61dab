"""The model source: export-friendly form, weights resolution, registry, info."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from edgebench.config import ExportFriendlyConfig, PreprocessConfig
from edgebench.errors import UserError
from edgebench.models.friendly import GlobalMean, make_export_friendly
from edgebench.models.info import count_flops
from edgebench.models.registry import known_models, load_model_config
from edgebench.models.source import build_module, resolve_model

PRE = PreprocessConfig()


def _normalize(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(PRE.mean).reshape(1, 3, 1, 1, 1)
    std = torch.tensor(PRE.std).reshape(1, 3, 1, 1, 1)
    return (x - mean) / std


def _trained_like(arch: str) -> torch.nn.Module:
    """A torchvision video model with non-trivial batch-norm statistics, as trained weights have."""
    torch.manual_seed(1)
    model = getattr(torchvision.models.video, arch)()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("arch", ["mc3_18", "r3d_18", "r2plus1d_18"])
def test_export_friendly_equals_torchvision(arch):
    reference = _trained_like(arch)
    friendly = make_export_friendly(_trained_like(arch), ExportFriendlyConfig(), PRE, input_rank=5)
    x = torch.rand(2, 3, 4, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = reference(_normalize(x))
        got = friendly(x)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    kinds = {type(m) for m in friendly.modules()}
    assert torch.nn.BatchNorm3d not in kinds and torch.nn.AdaptiveAvgPool3d not in kinds
    assert GlobalMean in kinds


def test_export_friendly_negative_control():
    """The equality check above can fail: without normalization inside, outputs differ."""
    reference = _trained_like("mc3_18")
    friendly = make_export_friendly(_trained_like("mc3_18"), ExportFriendlyConfig(normalize_inside=False), PRE, 5)
    x = torch.rand(1, 3, 4, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(friendly(x), reference(_normalize(x)), atol=1e-3)


ZOO = {"resnet_mixed", "r3d_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s", "swin3d_t", "swin3d_s", "swin3d_b"}


def test_registry_has_every_torchvision_video_classifier():
    import torchvision.models.video as tv

    assert ZOO <= set(known_models())
    sources = {load_model_config(name).source.partition(":")[2] for name in known_models()}
    assert set(torchvision.models.list_models(module=tv)) <= sources  # every video model torchvision ships


def test_unknown_model_lists_known_ones():
    with pytest.raises(UserError, match="unknown model 'nope'; known models: .*resnet_mixed"):
        resolve_model("nope")


def test_random_weights_are_seeded_and_said(small_ref, caplog):
    assert small_ref.provenance == "random:seed=0"
    assert small_ref.random_weights
    again = resolve_model("resnet_mixed", input_shape=(1, 3, 4, 32, 32))
    assert again.weights_sha256 == small_ref.weights_sha256
    assert "random weights" in caplog.text
    assert len(small_ref.labels) == 400 and small_ref.labels[0] == "abseiling"


def test_weights_file_is_loaded_and_hashed(tmp_path, small_ref):
    model = torchvision.models.video.mc3_18()
    path = tmp_path / "w.pt"
    torch.save(model.state_dict(), path)
    ref = resolve_model("resnet_mixed", str(path), input_shape=(1, 3, 4, 32, 32))
    assert ref.provenance.startswith("file:") and len(ref.provenance) == len("file:") + 12
    assert ref.weights_sha256 != small_ref.weights_sha256


def test_torchvision_file_in_hub_cache_is_used(tmp_path, monkeypatch):
    from torchvision.models.video import MC3_18_Weights

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    target = Path(torch.hub.get_dir()) / "checkpoints" / MC3_18_Weights.KINETICS400_V1.url.rsplit("/", 1)[-1]
    target.parent.mkdir(parents=True)
    torch.save(torchvision.models.video.mc3_18().state_dict(), target)
    assert resolve_model("resnet_mixed", input_shape=(1, 3, 4, 32, 32)).provenance == "kinetics400_v1"


def test_weights_that_do_not_match_name_the_keys(tmp_path):
    state = torchvision.models.video.mc3_18().state_dict()
    state.pop("fc.bias")
    state["stem.0.weight"] = torch.zeros(1, 2, 3)
    state["extra.thing"] = torch.zeros(1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    with pytest.raises(UserError) as err:
        resolve_model("resnet_mixed", str(path))
    msg = str(err.value)
    assert "missing keys fc.bias" in msg and "unexpected keys extra.thing" in msg and "stem.0.weight" in msg


def test_weights_file_that_is_not_a_state_dict(tmp_path):
    path = tmp_path / "junk.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a loadable state dict"):
        resolve_model("resnet_mixed", str(path))


def test_flops_are_counted_not_typed():
    model = torch.nn.Conv3d(3, 8, 3, padding=1, bias=False)
    x = torch.rand(1, 3, 4, 8, 8)
    assert count_flops(model, x) == 2 * 8 * 4 * 8 * 8 * 3 * 27


def test_user_model_from_a_python_file(tmp_path):
    (tmp_path / "tiny.py").write_text(
        "from __future__ import annotations\n"
        "import dataclasses\n"
        "import torch\n"
        "@dataclasses.dataclass\n"  # a dataclass resolves its string annotations through sys.modules
        "class Settings:\n"
        "    width: int = 4\n"
        "def build():\n"
        "    return torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3), torch.nn.BatchNorm3d(4),\n"
        "        torch.nn.AdaptiveAvgPool3d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))\n")
    (tmp_path / "tiny.yaml").write_text(
        "name: tiny\nsource: tiny.py:build\ninputs: [{name: video, shape: [1, 3, 4, 8, 8]}]\n"
        "outputs: [{name: logits, shape: [1, 2]}]\nlabels: [cat, dog]\n")
    ref = resolve_model(str(tmp_path / "tiny.yaml"))
    assert ref.labels == ("cat", "dog")
    assert build_module(ref)(torch.rand(1, 3, 4, 8, 8)).shape == (1, 2)


DEEP_NET = """
import torch
from torch import nn

def build():
    layers = [nn.Conv3d(3, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU()]
    for _ in range(11):
        layers += [nn.Conv3d(8, 8, 3, padding=1, bias=False), nn.BatchNorm3d(8), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten(), nn.Linear(8, 4))
"""


@pytest.mark.parametrize("batchnorm", ["init", "measured"])
def test_measured_batchnorm_statistics_keep_random_outputs_alive(tmp_path, batchnorm):
    """A deep random net with BatchNorm: with the init statistics (mean 0, var 1) each layer shrinks the signal
    and the output ignores the input (S3D's case: the negative control); measured on a seeded clip, it does not,
    and the provenance says so."""
    (tmp_path / "deep.py").write_text(DEEP_NET)
    path = tmp_path / f"deep_{batchnorm}.yaml"
    path.write_text(f"name: deep\nsource: deep.py:build\nrandom_batchnorm: {batchnorm}\n"
                    "inputs: [{name: video, shape: [1, 3, 4, 16, 16]}]\noutputs: [{name: logits, shape: [1, 4]}]\n")
    ref = resolve_model(str(path))
    model = build_module(ref)
    a, b = (torch.rand(1, 3, 4, 16, 16, generator=torch.Generator().manual_seed(s)) for s in (1, 2))
    with torch.no_grad():
        spread = float((model(a) - model(b)).abs().max() / model(a).abs().max())
    if batchnorm == "init":
        assert ref.provenance == "random:seed=0" and spread < 1e-4
    else:
        assert ref.provenance == "random:seed=0,batchnorm=measured" and spread > 1e-2
