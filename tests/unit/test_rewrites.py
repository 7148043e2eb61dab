"""Export-friendly rewrites: applied only for the formats that need them, equal to the op they replace,
listed, and undone when they differ (negative control)."""

from __future__ import annotations

import torch
from torch import nn

from edgebench.models import rewrites
from edgebench.models.lowering_graph import trace
from edgebench.models.rewrite_ops import split_as_slices
from edgebench.models.rewrites import Rewrite, apply_rewrites, swap


class Tokens(nn.Module):
    """MViT's pattern: a class token split off with torch.tensor_split, the rest pooled, then joined again."""

    def forward(self, x):
        token, rest = torch.tensor_split(x, (1,), dim=1)
        return torch.cat([token, rest.mean(dim=1, keepdim=True)], dim=1)


def _traced():
    x = torch.rand(2, 5, 3)
    module = trace(Tokens())
    return module, x, module(x)


def test_split_as_slices_equals_tensor_split():
    x = torch.rand(3, 7, 2)
    for indices, dim in (((1,), 1), ((2, 5), 1), ((0, 3), 0), ((1,), -1)):
        want = torch.tensor_split(x, indices, dim=dim)
        got = split_as_slices(x, indices, dim=dim)
        assert len(got) == len(want) and all(torch.equal(g, w) for g, w in zip(got, want))


def test_a_rewrite_applies_only_for_its_formats_and_is_listed():
    module, x, want = _traced()
    assert apply_rewrites(module, "onnx", x, want) == []  # ONNX converts tensor_split: left alone
    assert any(n.target is torch.tensor_split for n in module.graph.nodes)
    assert apply_rewrites(module, "coreml", x, want) == ["tensor_split->slices x1"]
    assert not any(n.target is torch.tensor_split for n in module.graph.nodes)
    assert torch.equal(module(x), want)


def test_negative_control_a_wrong_rewrite_is_undone(monkeypatch, caplog):
    def off_by_one(x, indices, dim=0):
        return split_as_slices(x, [i + 1 for i in indices], dim)

    monkeypatch.setattr(rewrites, "REWRITES", (Rewrite("bad", frozenset({"coreml"}), "test",
                                                       swap(torch.tensor_split, off_by_one)),))
    module, x, want = _traced()
    assert apply_rewrites(module, "coreml", x, want) == []
    assert any(n.target is torch.tensor_split for n in module.graph.nodes) and torch.equal(module(x), want)
    assert "rewrite bad undone for coreml" in caplog.text


class PatchPad(nn.Module):
    """swin3d's patch embedding: padding computed from the input's own size, then a strided conv."""

    def __init__(self):
        super().__init__()
        self.proj = nn.Conv3d(3, 4, (2, 4, 4), stride=(2, 4, 4))

    def forward(self, x):
        _, _, t, h, w = x.size()
        pad = [(p - s % p) % p for s, p in zip((t, h, w), (2, 4, 4))]
        return self.proj(torch.nn.functional.pad(x, (0, pad[2], 0, pad[1], 0, pad[0]))).flatten(1)


def test_shape_arithmetic_becomes_constants_for_core_ml():
    x = torch.rand(1, 3, 3, 10, 9)
    module = trace(PatchPad())
    want = module(x)
    assert apply_rewrites(module, "tflite", x, want) == []
    assert apply_rewrites(module, "coreml", x, want) == ["shapes->constants x3"]  # the three pads of F.pad
    assert not [n for n in module.graph.nodes if n.op == "call_method" and n.target == "size"]
    pad = next(n for n in module.graph.nodes if n.target is torch.nn.functional.pad)
    assert pad.args[1] == (0, 3, 0, 2, 0, 1) and torch.equal(module(x), want)


def _max_rank(module, x) -> int:
    """The largest tensor rank in the module's exported program."""
    exported = torch.export.export(module, (x,))
    return max(n.meta["val"].dim() for n in exported.graph.nodes if hasattr(n.meta.get("val"), "dim"))


def test_window_attention_5d_equals_torchvision_with_and_without_shift():
    """The 5-D window attention gives torchvision's values, padded and shifted windows included; the 8-D view
    and permute are gone (XNNPACK defines no tensor above 6 dims; the original has 8-D ones)."""
    from torchvision.models.video import swin_transformer

    from edgebench.models import rewrite_ops

    torch.manual_seed(0)
    attn = swin_transformer.ShiftedWindowAttention3d(16, [2, 3, 3], [1, 1, 1], num_heads=2).eval()
    x = torch.rand(2, 3, 5, 7, 16)  # padded to (4, 6, 9): every window size divides only after padding
    for shift in ([0, 0, 0], [1, 1, 1]):
        attn.shift_size = shift
        want = attn(x)
        module = trace(attn)
        assert _max_rank(module, x) == 8  # the original: what XNNPACK refuses
        with torch.no_grad():
            assert apply_rewrites(module, "executorch", x, want) == ["window-attention-5d x1"]
            assert torch.allclose(module(x), want, atol=1e-6)
        assert _max_rank(module, x) == (6 if shift[0] else 5)  # torchvision's mask helper views 6-D: XNNPACK's limit
    x = torch.rand(1, 4, 6, 6, 8)
    assert torch.equal(rewrite_ops.from_windows(rewrite_ops.to_windows(x, (2, 3, 3)), (2, 3, 3), (1, 4, 6, 6)), x)


class InPlace(nn.Module):
    """MViT's pattern: a call kept only for what it writes in place, its result unused."""

    def forward(self, x):
        y = x * 2
        y.add_(torch.ones(x.shape[-1]))
        return y.reshape(x.shape[0], -1)


def test_shape_constants_keep_a_call_made_for_its_side_effect():
    x = torch.rand(2, 3)
    module = trace(InPlace())
    want = module(x)
    assert apply_rewrites(module, "coreml", x, want) == ["shapes->constants x2"]
    assert any(n.target == "add_" for n in module.graph.nodes) and torch.equal(module(x), want)


class PooledAttention(nn.Module):
    """One MViT v2 attention block on a 4x8x8 token grid, its keys pooled more than its queries."""

    def __init__(self):
        super().__init__()
        from torchvision.models.video import mvit

        self.attn = mvit.MultiscaleAttention([4, 8, 8], 16, 16, num_heads=2, kernel_q=[3, 3, 3], kernel_kv=[3, 3, 3],
                                             stride_q=[1, 2, 2], stride_kv=[1, 4, 4], residual_pool=True,
                                             residual_with_cls_embed=False, rel_pos_embed=True)

    def forward(self, x):
        return self.attn(x, (4, 8, 8))[0]


def test_rel_pos_5d_equals_torchvision_with_pooled_keys():
    """MViT v2's relative positions, queries and keys of different sizes (the scaled distances): the same
    values, no tensor above 6 dims, no integer op (the original has 8-D adds and int64 aranges)."""
    torch.manual_seed(0)
    module = trace(PooledAttention().eval())
    x = torch.rand(2, 1 + 4 * 8 * 8, 16)
    with torch.no_grad():
        want = module(x)
    assert _max_rank(module, x) == 8
    assert apply_rewrites(module, "tflite", x, want) == ["rel-pos-5d x1"]
    with torch.no_grad():
        assert torch.allclose(module(x), want, atol=1e-6)
    assert _max_rank(module, x) == 6
    exported = torch.export.export(module, (x,))
    assert not [n for n in exported.graph.nodes if n.op == "call_function" and "arange" in str(n.target)]
