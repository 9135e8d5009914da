"""The continuous (perspective) relaxation of the support problem, by Frank-Wolfe.

Over the box l <= s <= u with the budget rows, c is convex, and for any feasible s

    c(s) + min_v grad c(s)'(v - s)          (v over the same polytope)

is a lower bound on the relaxation, hence on every integral support in the box. The gradient cut
taken at the point with the best such bound closes the LP to that bound in one step, which
Kelley's cutting planes at LP points approach only slowly. The linear minimisation over the
polytope is a sort per budget group, so an iteration costs one evaluation of c.

>>> import numpy as np, pandas as pd
>>> from hiermio.formula.design import build_design
>>> from hiermio.problem.selection import SelectionProblem
>>> rng = np.random.default_rng(0)
>>> df = pd.DataFrame({"g": np.repeat(np.arange(6), 10), "x": rng.normal(size=60)})
>>> df["y"] = df.x + np.where(df.g == 0, 2.0, 0.0) + rng.normal(size=60)
>>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), budget=1, mu=np.ones(6))
>>> point, bound = frank_wolfe(sel, np.full(6, 1 / 6), np.zeros(6), np.ones(6), iterations=200)
>>> best_integral = min(sel.value(np.eye(6)[k]) for k in range(6))
>>> bool(bound <= best_integral)
True
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod

import numpy as np

from ..problem.selection import SelectionProblem

__all__ = ["LowerBound", "FrankWolfeBound", "linear_minimizer", "frank_wolfe"]


def linear_minimizer(problem: SelectionProblem, grad: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """argmin_v grad'v over {lower <= v <= upper, per-group sums <= budget} (lower is feasible)."""
    v = lower.astype(float).copy()
    free = (upper > lower) & (grad < 0)
    for g, lam in enumerate(problem.budgets):
        idx = np.flatnonzero(free & (problem.group_of_unit == g))
        room = int(round(lam - lower[problem.group_of_unit == g].sum()))
        if room > 0 and idx.size:
            v[idx[np.argsort(grad[idx], kind="stable")[:room]]] = 1.0
    return v


def frank_wolfe(
    problem: SelectionProblem,
    start: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    iterations: int = 100,
    tol: float = 1e-6,
    cutoff: float = np.inf,
    deadline: float | None = None,
) -> tuple[np.ndarray, float]:
    """Point with the best Frank-Wolfe lower bound on the box-restricted relaxation, and that bound.

    Stops early once the duality gap is below ``tol`` relative to c, or once the bound reaches
    ``cutoff`` (a known solution's value: the box can then hold nothing better), or at
    ``deadline`` (a ``time.perf_counter()`` value). Every iterate's bound is valid.
    """
    s = np.clip(np.asarray(start, dtype=float), lower, upper)
    best_point, best_bound = s.copy(), -np.inf
    for t in range(iterations):
        ev, grad = problem.evaluate(s)
        v = linear_minimizer(problem, grad, lower, upper)
        gap = float(grad @ (s - v))
        if ev.value - gap > best_bound:
            best_point, best_bound = s.copy(), ev.value - gap
        if gap <= tol * abs(ev.value) or best_bound >= cutoff:
            break
        if deadline is not None and time.perf_counter() > deadline:
            break
        s = s + 2.0 / (t + 3.0) * (v - s)
    return best_point, best_bound


class LowerBound(ABC):
    """A lower-bound backend: the branch-and-cut (at the root and at every node) and the screening
    path (``certify=False``) ask it for a bound on every integral support in a box, and for the
    point whose gradient cut lifts the LP to that bound. Backends are interchangeable, as L0BnB's
    relaxation solvers are."""

    @abstractmethod
    def bound(self, problem: SelectionProblem, start: np.ndarray, lower: np.ndarray, upper: np.ndarray, *,
              iterations: int, cutoff: float = np.inf, deadline: float | None = None) -> tuple[np.ndarray, float]:
        """(point, bound): ``bound`` <= c(s) for every feasible binary s with lower <= s <= upper."""


class FrankWolfeBound(LowerBound):
    """The perspective relaxation solved by Frank-Wolfe (:func:`frank_wolfe`).

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 9, 9], "g": list("aabbcc")})
    >>> sel = SelectionProblem.build(build_design("y ~ 1 + (1 | g)", df), 1, np.ones(3))
    >>> _, bound = FrankWolfeBound().bound(sel, np.full(3, 1 / 3), np.zeros(3), np.ones(3), iterations=50)
    >>> bool(bound <= min(sel.value(np.eye(3)[k]) for k in range(3)))
    True
    """

    def bound(self, problem, start, lower, upper, *, iterations, cutoff=np.inf, deadline=None):
        return frank_wolfe(problem, start, lower, upper, iterations=iterations, cutoff=cutoff, deadline=deadline)
