"""Pair reference module outputs with artifact tensors: by the module path the exporter kept ("scope"),
else by layer kind, shape and order ("order")."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import permutations

import numpy as np

from edgebench.parity.taps.base import ArtifactTap

ORDERED_KINDS = ("conv", "linear", "relu", "pool")  # layers the order mapping pairs (blocks and adds it cannot)
MAX_GROUP = 4  # interchangeable layers tried in every order (4! = 24 assignments at most)
SCOPE_SHARE = 0.5  # the scope mapping is used when it pairs at least this share of those layers

FUSED_ACTIVATIONS = {  # TFLite's fused activation functions, as the reference would apply them
    "relu": lambda v: np.maximum(v, 0.0),
    "relu6": lambda v: np.clip(v, 0.0, 6.0),
    "relu_n1_to_1": lambda v: np.clip(v, -1.0, 1.0),
    "tanh": np.tanh,
}


@dataclass
class RefTap:
    """One module's output in the reference forward: module path, kind, value, other paths returning it."""

    name: str
    kind: str
    value: np.ndarray
    aliases: list[str] = field(default_factory=list)
    summed: int = 1  # a layer exported as this many convs added up (a lowered Conv3d with summed taps: kt)


@dataclass
class Pair:
    """A reference layer, its artifact tensor, and the values to compare (in the reference's layout)."""

    ref: RefTap
    art: ArtifactTap
    method: str  # scope | order
    value: np.ndarray
    target: np.ndarray  # the reference values compared with: ref.value, or the fused activation's output
    note: str = ""


def in_ref_layout(value: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """`value` as `shape`: equal, channels-last (TFLite's NDHWC / NHWC) moved back, or equal once squeezed."""
    if value.shape == shape:
        return value
    if value.ndim == len(shape) >= 3 and value.shape == (shape[0], *shape[2:], shape[1]):
        return np.moveaxis(value, -1, 1)
    if value.size == int(np.prod(shape)) and tuple(s for s in value.shape if s != 1) == tuple(s for s in shape if s != 1):
        return value.reshape(shape)
    return None


def _pair(ref_taps: list[RefTap], i: int, art: ArtifactTap, method: str) -> Pair | None:
    """Pair ref_taps[i] with `art` if the shapes agree; an activation fused into `art` is compared with the
    reference activation that follows the layer."""
    ref = ref_taps[i]
    value = in_ref_layout(art.value, ref.value.shape)
    if value is None:
        return None
    target, note = ref.value, ""
    if art.fused and art.fused != ref.kind:
        nxt = ref_taps[i + 1] if i + 1 < len(ref_taps) else None
        if nxt is not None and nxt.kind == art.fused and nxt.value.shape == ref.value.shape:
            target, note = nxt.value, f"fused {art.fused}: compared with {nxt.name}"
        elif art.fused in FUSED_ACTIVATIONS:  # a functional activation (F.relu in forward) has no module to tap
            target, note = FUSED_ACTIVATIONS[art.fused](ref.value), f"fused {art.fused}: applied to {ref.name}"
        else:
            return None
    if value is art.value and value.ndim >= 3 and value.shape[1] == value.shape[-1] and len(set(value.shape[1:])) == 1:
        # N x C x C x ... x C: channels-first and channels-last read alike; a layout mix-up costs ~100 % error,
        # any defect far less, so the reading closer to the reference is the tensor's layout
        value = min((value, np.moveaxis(value, -1, 1)), key=lambda v: _distance(v, target))
    return Pair(ref, art, method, value, target, note)


def _resolve(scope: str, index: dict[str, int]) -> int | None:
    """The reference index of a module path, dropping leading parts a wrapper added (litert-torch records
    `model.model.layer1...` for the NamedIO wrapper's `model` attribute): the longest known suffix."""
    parts = scope.split(".") if scope else []
    for k in range(len(parts)):
        i = index.get(".".join(parts[k:]))
        if i is not None:
            return i
    return None


def by_scope(ref_taps: list[RefTap], art_taps: list[ArtifactTap]) -> dict[int, Pair]:
    """Reference index -> the last artifact tensor (topologically) recorded under its module path or an alias
    whose shape agrees: a module's output is the last op inside it. An add after a fitting tensor of the same
    module counts too: a lowered Conv3d with summed taps (models/lowering.py) ends in the adds of its convs."""
    index = {n: i for i, t in enumerate(ref_taps) for n in (t.name, *t.aliases)}
    pairs: dict[int, Pair] = {}
    for art in art_taps:
        i = _resolve(art.scope, index)
        if i is None or not (_fits(ref_taps[i], art) or (i in pairs and art.kind == "add")):
            continue
        if (p := _pair(ref_taps, i, art, "scope")) is not None:
            pairs[i] = p
    return pairs


def _fits(ref: RefTap, art: ArtifactTap) -> bool:
    """Kinds agree (a block's alias takes anything: its output is whatever op ends it)."""
    return ref.kind not in ORDERED_KINDS or ref.kind in art.kinds


def _next_kinded(ref_taps: list[RefTap], i: int, step: int) -> int | None:
    j = i + step
    while 0 <= j < len(ref_taps) and ref_taps[j].kind not in ORDERED_KINDS:
        j += step
    return j if 0 <= j < len(ref_taps) else None


def share_fused(ref_taps: list[RefTap], pairs: dict[int, Pair]) -> None:
    """A conv with a fused relu stands for both layers: the one of the two left unpaired takes the same tensor
    (the conv compared with the relu's values, so a wrong conv weight is still named after the conv)."""
    for i, p in list(pairs.items()):
        if not p.art.fused or p.art.fused == p.art.kind:
            continue
        j = _next_kinded(ref_taps, i, -1 if p.ref.kind == p.art.fused else 1)
        if j is None or j in pairs or ref_taps[j].value.shape != p.ref.value.shape:
            continue
        other = ref_taps[j]
        if other.kind == p.art.kind and p.ref.kind == p.art.fused:  # the relu was paired: the conv before it too
            pairs[j] = Pair(other, p.art, p.method, p.value, p.ref.value, f"fused {p.art.fused}: compared with {p.ref.name}")
        elif other.kind == p.art.fused and p.ref.kind != p.art.fused:  # the conv (or its last add) was paired: the relu too
            pairs[j] = Pair(other, p.art, p.method, p.value, other.value)


def share_summed_relu(ref_taps: list[RefTap], pairs: dict[int, Pair]) -> None:
    """When the converter ends a conv in an add with the ReLU after it fused, recorded under the ReLU's path,
    the conv's own path ends before its output exists: in a partial sum (a lowered Conv3d with summed taps) or
    in the CONV_3D before the bias ADD (litert-torch). The conv then takes the ReLU's tensor, compared with the
    ReLU's values, as a conv with a fused ReLU does."""
    for j, q in list(pairs.items()):
        i = _next_kinded(ref_taps, j, -1)
        if i is None or q.ref.kind != "relu" or q.art.kind != "add" or q.art.fused != "relu":
            continue
        conv = ref_taps[i]
        if conv.kind == "conv" and conv.value.shape == q.ref.value.shape \
                and np.array_equal(np.maximum(conv.value, 0), q.ref.value):  # the ReLU takes this conv's output
            pairs[i] = Pair(conv, q.art, q.method, q.value, q.ref.value, f"fused relu: compared with {q.ref.name}")


def _group(ref_taps: list[RefTap], i: int) -> list[int]:
    """ref_taps[i] and the kinded taps right after it with the same kind and shape (a block's conv2 and its
    downsample): order alone cannot tell them apart."""
    group = [i]
    for j in range(i + 1, len(ref_taps)):
        t = ref_taps[j]
        if t.kind not in ORDERED_KINDS:
            continue
        if t.kind != ref_taps[i].kind or t.value.shape != ref_taps[i].value.shape or t.summed > 1 \
                or len(group) == MAX_GROUP:
            break
        group.append(j)
    return group


def _sum_end(ref: RefTap, art_taps: list[ArtifactTap], pos: int) -> int | None:
    """Where a summed conv's output is: the (summed - 1)-th add after `pos` whose shape fits (its partial convs
    come first and fit only in part: a tap that reads fewer frames has fewer rows)."""
    adds = [j for j in range(pos, len(art_taps))
            if "add" in art_taps[j].kinds and in_ref_layout(art_taps[j].value, ref.value.shape) is not None]
    return adds[ref.summed - 2] if len(adds) >= ref.summed - 1 else None


def _candidates(ref_taps: list[RefTap], i: int, group: list[int], art_taps: list[ArtifactTap],
                pos: int) -> list[tuple[int, ArtifactTap]]:
    """The next artifact tensors after `pos` that layers `group` (starting at i) may take, in order."""
    if ref_taps[i].summed > 1:
        j = _sum_end(ref_taps[i], art_taps, pos)
        return [] if j is None else [(j, art_taps[j])]
    found: list[tuple[int, ArtifactTap]] = []
    for j in range(pos, len(art_taps)):
        art = art_taps[j]
        if ref_taps[i].kind in art.kinds and in_ref_layout(art.value, ref_taps[i].value.shape) is not None:
            found.append((j, art))
            if len(found) == len(group):
                break
    return found


def by_order(ref_taps: list[RefTap], art_taps: list[ArtifactTap]) -> dict[int, Pair]:
    """Walk both in order: each reference layer takes the next artifact tensor of its kind whose shape agrees
    (a summed conv: the add that completes its sum). Inside a group of interchangeable layers the assignment
    with the smallest total error wins (a frozen TorchScript graph computes a downsample before the conv2
    beside it)."""
    pairs: dict[int, Pair] = {}
    pos, i = 0, 0
    while i < len(ref_taps):
        if ref_taps[i].kind not in ORDERED_KINDS:
            i += 1
            continue
        group = [i] if ref_taps[i].summed > 1 else _group(ref_taps, i)
        found = _candidates(ref_taps, i, group, art_taps, pos)
        if not found:
            i += 1
            continue
        group = group[: len(found)]
        best = min(permutations(range(len(found))), key=lambda perm: sum(
            _cost(_pair(ref_taps, g, found[k][1], "order")) for g, k in zip(group, perm)))
        for g, k in zip(group, best):
            if (p := _pair(ref_taps, g, found[k][1], "order")) is not None:
                pairs[g] = p
        pos = found[-1][0] + 1
        i = group[-1] + 1
        nxt = _next_kinded(ref_taps, group[-1], 1)
        if group[-1] in pairs and nxt is not None and ref_taps[nxt].kind == pairs[group[-1]].art.fused:
            i = nxt + 1  # the relu fused into the conv just paired: share_fused pairs it with the same tensor
    return pairs


def _distance(value: np.ndarray, target: np.ndarray) -> float:
    d = np.linalg.norm((value.astype(np.float64) - target).ravel())
    return float(d / (np.linalg.norm(target.ravel()) + 1e-12))


def _cost(p: Pair | None) -> float:
    return math.inf if p is None else _distance(p.value, p.target)


def fill_by_order(ref_taps: list[RefTap], art_taps: list[ArtifactTap], pairs: dict[int, Pair], wanted: list[int]) -> None:
    """A kinded layer the scopes missed (TFLite names the last op after the signature output) takes the first
    unused artifact tensor of its kind and shape between its paired neighbours' tensors."""
    at = {id(a): j for j, a in enumerate(art_taps)}
    used = {id(p.art) for p in pairs.values()}
    for i in wanted:
        if i in pairs:
            continue
        lo = max((at[id(pairs[k].art)] for k in pairs if k < i), default=-1)
        hi = min((at[id(pairs[k].art)] for k in pairs if k > i), default=len(art_taps))
        for art in art_taps[lo + 1: hi]:
            if id(art) not in used and ref_taps[i].kind in art.kinds \
                    and (p := _pair(ref_taps, i, art, "order")) is not None:
                pairs[i] = p
                used.add(id(art))
                break


def map_taps(ref_taps: list[RefTap], art_taps: list[ArtifactTap]) -> tuple[list[Pair], list[str]]:
    """The pairs in reference order and the names of the kinded reference layers left unpaired."""
    wanted = [i for i, t in enumerate(ref_taps) if t.kind in ORDERED_KINDS]
    pairs = by_scope(ref_taps, art_taps)
    share_fused(ref_taps, pairs)
    share_summed_relu(ref_taps, pairs)
    if sum(i in pairs for i in wanted) < SCOPE_SHARE * len(wanted):
        pairs = by_order(ref_taps, art_taps)
        share_fused(ref_taps, pairs)
    else:
        fill_by_order(ref_taps, art_taps, pairs, wanted)
    unmatched = [ref_taps[i].name for i in wanted if i not in pairs]
    return [pairs[i] for i in sorted(pairs)], unmatched
