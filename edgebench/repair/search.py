"""The search for a small set of layers whose float versions make a failing file pass.

Layers come ranked, most sensitive first. The search assumes more float layers never hurt (a set that
passes still passes with a layer added; every layer in float, the float file, passes) and finds the
needed layers one at a time: the shortest prefix of the ranking that passes, tried at lengths 1 and
2 first (a good ranking puts the culprits there) and then bisected, ends with a layer the set cannot
do without; the next round searches the prefix before it. A last pass drops every layer the set passes without. With d needed layers among
n that is about d log2(n) + 2d trials, and 2 or 3 when the ranking is right (docs/repair.md).
Every trial is a real export judged like any artifact; this module only decides which set is next.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable


@dataclass
class Trial:
    """One layer set exported and judged: the verdict, its figures, and what it cost."""

    layers: tuple[str, ...]
    passed: bool
    verdict: str  # passed | parity_failed | accuracy_failed | export_failed | runtime_failed | skipped
    reason: str = ""
    seconds: float = 0.0
    figures: dict = field(default_factory=dict)  # psnr_db, cosine, top1_drop, ... of the judged rows
    artifact: str = ""  # the exported file
    cached: bool = False  # the export came from the artifact cache


@dataclass
class SearchResult:
    """The layer set found (None: no repair within the limits), why not, and every trial in order."""

    layers: tuple[str, ...] | None
    reason: str
    trials: list[Trial]


class OutOfBudget(Exception):
    """The trial budget or the time budget is spent."""


def default_max_trials(layers: int) -> int:
    """ceil(2 log2(layers) + 4): two needed layers found by bisection, plus the probes and the pruning."""
    return math.ceil(2 * math.log2(max(layers, 2)) + 4)


def default_max_float(layers: int) -> int:
    """A third of the layers, at most 4: "a few" layers, on a 6-layer net as on a 21-layer one."""
    return min(4, max(1, layers // 3))


class _Trials:
    """Runs the judge on layer sets, once per set, within the budgets."""

    def __init__(self, judge: Callable[[tuple[str, ...]], Trial], max_trials: int, budget_s: float):
        self.judge, self.max_trials, self.budget_s = judge, max_trials, budget_s
        self.done: list[Trial] = []
        self.seen: dict[frozenset, Trial] = {}
        self.start = time.monotonic()

    def passes(self, layers: list[str]) -> bool:
        key = frozenset(layers)
        if key in self.seen:
            return self.seen[key].passed
        if len(self.done) >= self.max_trials:
            raise OutOfBudget(f"the budget of {self.max_trials} trials is spent")
        if time.monotonic() - self.start > self.budget_s:
            raise OutOfBudget(f"the time budget of {self.budget_s:g} s is spent")
        trial = self.judge(tuple(layers))
        self.done.append(trial)
        self.seen[key] = trial
        return trial.passed


def _first_passing_prefix(trials: _Trials, found: list[str], rest: list[str], everything: int, greedy: bool) -> int:
    """The smallest k such that found + rest[:k] passes. A set of every layer is never tried (it would be the float
    file, no <precision> file): it is taken to pass, so when all shorter prefixes fail, the last layer is needed.
    `greedy`: try k = 1 and 2 before bisecting (while the ranking has been right)."""
    def passes(k: int) -> bool:
        return len(found) + k == everything or trials.passes(found + rest[:k])

    probes = (1, 2)[: len(rest)] if greedy else ()
    for k in probes:
        if passes(k):
            return k
    lo, hi = len(probes), len(rest)  # found + rest[:lo] fails; found + rest[:hi] passes (or is the last hope)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(mid):
            hi = mid
        else:
            lo = mid
    return hi


def find_float_layers(ranked: list[str], judge: Callable[[tuple[str, ...]], Trial], max_float: int,
                      max_trials: int, budget_s: float, tried: list[Trial] = ()) -> SearchResult:
    """A minimal set of at most `max_float` layers of `ranked` whose trial passes, or None and why.
    `tried`: trials judged before the search (they count, and are not repeated)."""
    trials = _Trials(judge, max_trials, budget_s)
    for t in tried:
        trials.done.append(t)
        trials.seen[frozenset(t.layers)] = t
    found: list[str] = []
    pool = list(ranked)
    greedy = True
    try:
        while True:
            rest = [layer for layer in pool if layer not in found]
            if not rest:
                return SearchResult(None, f"{', '.join(found)} kept in float, and no layer left to add", trials.done)
            k = _first_passing_prefix(trials, found, rest, len(ranked), greedy)
            greedy = k <= 2  # a culprit the ranking missed: bisect straight away from now on
            found.append(rest[k - 1])
            pool = rest[: k - 1]  # the layers still needed are before the one just found
            if k == len(rest) == len(ranked):  # only the float file passed: the ranking explains nothing, or no repair
                pool = _forced(trials, ranked, found, pool, max_float)
            if len(found) > max_float:
                return SearchResult(None, f"{', '.join(found)} must each stay in float (every other layer in float "
                                    f"fails without it): more than repair.max_float_layers ({max_float})", trials.done)
            if len(found) < len(ranked) and trials.passes(found):
                break
            if len(found) >= max_float:
                return SearchResult(None, f"{', '.join(found)} are needed and still fail: more than "
                                    f"repair.max_float_layers ({max_float}) layers in float", trials.done)
        for layer in list(found):  # prune: a layer found early may be redundant next to a later one
            if len(found) > 1 and trials.passes([x for x in found if x != layer]):
                found.remove(layer)
    except OutOfBudget as e:
        return SearchResult(None, str(e), trials.done)
    return SearchResult(tuple(found), "", trials.done)


def _forced(trials: _Trials, ranked: list[str], found: list[str], pool: list[str], max_float: int) -> list[str]:
    """Every other layer in float failed without the layer just found: every passing set holds it. So does each
    layer whose absence alone fails: tried from the least sensitive up, they move from `pool` to `found` until one
    is not needed or there are more than max_float (then no small set exists: the search stops, certain)."""
    for layer in reversed(list(pool)):
        if len(found) > max_float or trials.passes([x for x in ranked if x != layer]):
            break
        found.append(layer)
        pool.remove(layer)
    return pool
