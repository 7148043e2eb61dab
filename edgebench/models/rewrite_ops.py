"""The replacement functions of models/rewrites.py: the same values as the op they stand for, other ops."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.video import mvit, swin_transformer


def split_as_slices(x: torch.Tensor, indices_or_sections=None, dim: int = 0, *, indices=None,
                    sections=None) -> tuple[torch.Tensor, ...]:
    """torch.tensor_split at constant indices (any of its spellings) as plain slices."""
    at = indices if indices is not None else indices_or_sections
    if at is None or isinstance(at, int) or sections is not None:
        raise NotImplementedError("tensor_split into sections: only constant indices are rewritten")
    bounds = [0, *at, x.shape[dim]]
    return tuple(x.narrow(dim, start, stop - start) for start, stop in zip(bounds, bounds[1:]))


def to_windows(x: torch.Tensor, window: tuple[int, int, int]) -> torch.Tensor:
    """(B, T, H, W, C) -> (B * windows, wt * wh * ww, C), windows in (B, T, H, W) order, in two 5-D steps."""
    b, t, h, w, c = x.shape
    wt, wh, ww = window
    x = x.reshape(b * t // wt, wt, h // wh, wh, w * c).transpose(1, 2)  # (B T', H', wt, wh, W C)
    x = x.reshape(b * t // wt * h // wh, wt * wh, w // ww, ww, c).transpose(1, 2)  # (B T' H', W', wt wh, ww, C)
    return x.reshape(-1, wt * wh * ww, c)


def from_windows(x: torch.Tensor, window: tuple[int, int, int], size: tuple[int, int, int, int]) -> torch.Tensor:
    """to_windows undone: (B * windows, wt * wh * ww, C) -> (B, T, H, W, C) for size (B, T, H, W)."""
    b, t, h, w = size
    wt, wh, ww = window
    c = x.shape[-1]
    x = x.reshape(b * t // wt * h // wh, w // ww, wt * wh, ww, c).transpose(1, 2)  # (B T' H', wt wh, W', ww, C)
    x = x.reshape(b * t // wt, h // wh, wt, wh, w * c).transpose(1, 2)  # (B T', wt, H', wh, W C)
    return x.reshape(b, t, h, w, c)


def window_attention_5d(x, qkv_weight, proj_weight, relative_position_bias, window_size, num_heads, shift_size,
                        attention_dropout=0.0, dropout=0.0, qkv_bias=None, proj_bias=None, training=True):
    """torchvision's shifted_window_attention_3d (same arguments, same values) with no tensor above 5 dims:
    the windows are cut and put back in two 5-D steps each, where torchvision uses one 8-D permute."""
    b, t, h, w, c = x.shape
    window = tuple(window_size)
    pad = swin_transformer._compute_pad_size_3d((t, h, w), window)  # noqa: SLF001 - the same helper as the original
    x = F.pad(x, (0, 0, 0, pad[2], 0, pad[1], 0, pad[0]))
    padded = tuple(x.shape[1:4])
    shifted = sum(shift_size) > 0
    if shifted:
        x = torch.roll(x, shifts=tuple(-s for s in shift_size), dims=(1, 2, 3))
    windows = to_windows(x, window)
    n, length = windows.shape[:2]
    qkv = F.linear(windows, qkv_weight, qkv_bias).reshape(n, length, 3, num_heads, c // num_heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (c // num_heads) ** -0.5, qkv[1], qkv[2]
    attn = q.matmul(k.transpose(-2, -1)) + relative_position_bias
    if shifted:
        mask = swin_transformer._compute_attention_mask_3d(windows, padded, window, tuple(shift_size))  # noqa: SLF001
        per_clip = mask.shape[0]
        attn = (attn.view(n // per_clip, per_clip, num_heads, length, length) + mask.unsqueeze(1).unsqueeze(0))
        attn = attn.view(-1, num_heads, length, length)
    attn = F.dropout(F.softmax(attn, dim=-1), p=attention_dropout, training=training)
    out = attn.matmul(v).transpose(1, 2).reshape(n, length, c)
    out = F.dropout(F.linear(out, proj_weight, proj_bias), p=dropout, training=training)
    out = from_windows(out, window, (b, *padded))
    if shifted:
        out = torch.roll(out, shifts=tuple(shift_size), dims=(1, 2, 3))
    return out[:, :t, :h, :w, :].contiguous()


def _rel_index(q: int, k: int) -> torch.Tensor:
    """MViT's relative distance index of q query and k key positions (scaled when they differ), computed
    in float32 with numpy as torch computes it, but as a constant: no int64 arithmetic in the graph."""
    q_ratio, k_ratio = np.float32(max(k / q, 1.0)), np.float32(max(q / k, 1.0))
    dist = (np.arange(q, dtype=np.float32)[:, None] * q_ratio
            - (np.arange(k, dtype=np.float32)[None, :] + np.float32(1.0 - k)) * k_ratio)
    return torch.from_numpy(dist.astype(np.int64))


def add_rel_pos_5d(attn, q, q_thw, k_thw, rel_pos_h, rel_pos_w, rel_pos_t):
    """torchvision's MViT `_add_rel_pos` (same arguments, same values) with no tensor above 6 dims and no
    integer arithmetic: the three relative position terms are summed as (B*heads, Q, kt, kh, kw) where
    torchvision broadcasts 8-D tensors, and the distance indices are constants."""
    (q_t, q_h, q_w), (k_t, k_h, k_w) = q_thw, k_thw
    tables = [mvit._interpolate(table, 2 * max(qs, ks) - 1)  # noqa: SLF001 - the same helper as the original
              for table, qs, ks in ((rel_pos_h, q_h, k_h), (rel_pos_w, q_w, k_w), (rel_pos_t, q_t, k_t))]
    r_h, r_w, r_t = (table[_rel_index(qs, ks)] for table, qs, ks in zip(tables, (q_h, q_w, q_t), (k_h, k_w, k_t)))
    b, heads, _, dim = q.shape
    r_q = q[:, :, 1:].reshape(b, heads, q_t, q_h, q_w, dim)
    rel_h = torch.einsum("bythwc,hkc->bythwk", r_q, r_h)
    rel_w = torch.einsum("bythwc,wkc->bythwk", r_q, r_w)
    rel_t = torch.matmul(r_q.permute(2, 0, 1, 3, 4, 5).reshape(q_t, -1, dim), r_t.transpose(1, 2)).transpose(0, 1)
    rel_t = rel_t.reshape(b, heads, q_h, q_w, q_t, k_t).permute(0, 1, 4, 2, 3, 5)
    queries = q_t * q_h * q_w
    rel_pos = (rel_h.reshape(b * heads, queries, 1, k_h, 1) + rel_w.reshape(b * heads, queries, 1, 1, k_w)
               + rel_t.reshape(b * heads, queries, k_t, 1, 1))
    attn[:, :, 1:, 1:] += rel_pos.reshape(b, heads, queries, k_t * k_h * k_w)
    return attn
