"""Primal heuristics for the support: greedy forward selection, then swap local search.

They give the branch-and-cut a strong starting solution and a first set of cuts. Both work on
unit-level binary supports and call the exact evaluator, so they never trade accuracy for speed,
only coverage (how many candidates are tried). Both stop at a ``deadline`` (a
``time.perf_counter()`` value): greedy then fills the budgets by the gradient at hand, and the
swap search returns the best support so far.

>>> import numpy as np, pandas as pd
>>> from hiermio.formula.design import build_design
>>> from hiermio.problem.selection import SelectionProblem
>>> rng = np.random.default_rng(1)
>>> df = pd.DataFrame({"g": np.repeat(np.arange(8), 20), "x": rng.normal(size=160)})
>>> df["y"] = df.x + np.where(df.g < 2, 3.0, 0.0) + rng.normal(size=160)
>>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), budget=2, mu=np.ones(8))
>>> np.flatnonzero(local_search(sel, greedy(sel))).tolist()
[0, 1]
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np

from ..problem.selection import SelectionProblem

__all__ = ["greedy", "local_search"]

_BATCH_ABOVE = 16  # units left in a group above which greedy adds a batch by the gradient


def _late(deadline: float | None) -> bool:
    return deadline is not None and time.perf_counter() > deadline


def greedy(problem: SelectionProblem, n_candidates: int = 5, start: np.ndarray | None = None,
           deadline: float | None = None) -> np.ndarray:
    """Forward selection: add, one at a time, the unit that lowers c(s) most.

    Candidates are the ``n_candidates`` units with the steepest gradient (the first-order gain);
    each is evaluated exactly and the best one is taken, until every budget is used up. ``start``
    (a support of a smaller budget, as along a path) is kept as far as the budgets allow.

    While a group has more than ``_BATCH_ABOVE`` units left to choose, a quarter of them are taken
    at once by the gradient (one evaluation instead of 1 + ``n_candidates`` per unit), so large
    budgets (InstEval: 100 per factor) get a first support in a few evaluations; the last units
    are chosen one at a time, exactly. The swap search that follows refines the batch choices.
    """
    s = np.zeros(problem.n_units)
    if start is not None:
        # keep the start's units, group by group, up to each budget
        keep = problem.top_within_budget(np.asarray(start, float) + 1e-12 * np.arange(problem.n_units)[::-1])
        s = keep * (np.asarray(start) > 0)
    remaining = problem.budgets - np.bincount(problem.group_of_unit, weights=s,
                                              minlength=len(problem.budgets)).astype(int)
    while True:
        open_groups = np.flatnonzero(remaining > 0)
        eligible = (s == 0) & np.isin(problem.group_of_unit, open_groups)
        if not eligible.any():
            return s
        _, grad = problem.evaluate(s)
        idx = np.flatnonzero(eligible)
        if _late(deadline):  # out of time: the steepest units fill what is left of each budget
            for g in open_groups:
                members = idx[problem.group_of_unit[idx] == g]
                s[members[np.argsort(grad[members], kind="stable")[: remaining[g]]]] = 1.0
            return s
        batched = False
        for g in open_groups:
            if remaining[g] > _BATCH_ABOVE:
                members = idx[problem.group_of_unit[idx] == g]
                take = members[np.argsort(grad[members], kind="stable")[: remaining[g] // 4]]
                s[take] = 1.0
                remaining[g] -= len(take)
                batched = True
        if batched:
            continue
        cand = idx[np.argsort(grad[idx], kind="stable")[:n_candidates]]
        values = []
        for u in cand:
            s[u] = 1.0
            values.append(problem.value(s))
            s[u] = 0.0
        u = cand[int(np.argmin(values))]
        s[u] = 1.0
        remaining[problem.group_of_unit[u]] -= 1


def local_search(
    problem: SelectionProblem,
    s: np.ndarray,
    n_candidates: int | None = 20,
    max_passes: int = 100,
    on_pass: Callable[[int, float], None] | None = None,
    deadline: float | None = None,
) -> np.ndarray:
    """Best-improvement 1-swap search within each budget group.

    Every selected unit is tried against the ``n_candidates`` unselected units of its group with
    the steepest gradient (``None``: against all of them, an exhaustive 1-swap neighbourhood).
    Stops when no swap lowers c(s) by more than a relative 1e-12, or after ``max_passes``.
    """
    s = np.asarray(s, dtype=float).copy()
    current, grad = problem.evaluate(s)
    value = current.value
    for pass_no in range(max_passes):
        best = (value, None, None)
        for g in range(len(problem.group_names)):
            members = np.flatnonzero(problem.group_of_unit == g)
            inside, outside = members[s[members] == 1], members[s[members] == 0]
            if inside.size == 0 or outside.size == 0:
                continue
            if n_candidates is not None:
                outside = outside[np.argsort(grad[outside], kind="stable")[:n_candidates]]
            for u in inside:
                if _late(deadline):
                    break
                s[u] = 0.0
                for v in outside:
                    s[v] = 1.0
                    val = problem.value(s)
                    if val < best[0]:
                        best = (val, u, v)
                    s[v] = 0.0
                s[u] = 1.0
        if best[1] is None or best[0] >= value - 1e-12 * abs(value):
            break
        # a pass cut short by the deadline still takes the best swap it found
        s[best[1]], s[best[2]] = 0.0, 1.0
        current, grad = problem.evaluate(s)
        value = current.value
        if on_pass is not None:
            on_pass(pass_no, value)
        if _late(deadline):
            break
    return s
