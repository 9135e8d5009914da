"""Sign-constrained cluster effects: the inner problem behind tail budgets.

A tail budget ``{"(1 | school)": (3, 5)}`` flags at most 3 schools *below* the population and at
most 5 *above* it: ``(below, above)``. clusterMIO's ``lambda = c(worst, best)`` lists the positive
tail first, so its ``c(3, 5)`` is ``(5, 3)`` here; and clusterMIO caps the signs of an
unconstrained fit of the support, where the effects here are sign-constrained (a level selected
above is fitted at 0 or more). Where the unconstrained signs respect the caps, both choose the same
support. Each constrained column j becomes
two selection coordinates, (j, below) and (j, above), with effects gamma_j <= 0 and >= 0; the
two budgets count them separately. For s in [0, 1] per coordinate,

    c(s) = min over beta, gamma of ||y - X beta - Z gamma||^2 + sum_j mu_j gamma_j^2 / s_j^{side(gamma_j)},

where side(g) is "above" for g > 0 and "below" for g < 0 (a side with s = 0 forbids that sign).
It is the perspective relaxation of the split gamma_j = gamma_j+ - gamma_j- with both parts
nonnegative, so it is convex in s and equals the fitted objective at binary s; the outer
approximation's cuts and the relaxation bound stay valid. By the envelope theorem its gradient is
-(z_j'r)_+^2 / mu_j for the above-coordinate and -(z_j'r)_-^2 / mu_j for the below one.

The minimisation over gamma is a bound-constrained ridge, solved exactly by an active-set method
(Lawson and Hanson's, on the side of each constrained column: below, zero or above) whose every
step is one evaluation of the unconstrained problem on the sufficient statistics: its cost is
free of n. Selecting a level on both sides never helps (the optimum has one of the two parts zero),
so no constraint couples the two coordinates of a column.

>>> import numpy as np, pandas as pd
>>> from hiermio.formula.design import build_design
>>> from hiermio.problem.sufficient import SufficientStats
>>> df = pd.DataFrame({"y": [0., 1, 5, 6, -3, -2], "g": list("aabbcc")})
>>> base = SufficientStats.from_design(build_design("y ~ 1 + (1 | g)", df), mu=np.full(3, 0.1))
>>> signed = SignConstrainedStats(base, np.arange(3))
>>> signed.m, signed.sign.tolist()
(6, [-1, 1, -1, 1, -1, 1])
>>> only_above_b = np.array([0, 0, 0, 1, 0, 0.])   # b may rise above the population, nothing else
>>> ev = signed.evaluate(only_above_b)
>>> bool(ev.gamma[1] > 0), ev.gamma[[0, 2]].tolist()
(True, [0.0, 0.0])
"""

from __future__ import annotations

import numpy as np

from ..core.exceptions import NumericalError
from .inner import Evaluation, InnerProblem
from .sufficient import SufficientStats

__all__ = ["SignConstrainedStats"]

_MAX_PIVOTS_PER_COLUMN = 20  # Lawson-Hanson terminates in finitely many steps; this only guards rounding


class SignConstrainedStats(InnerProblem):
    """The Gaussian ridge with the effects of ``signed`` design columns split by sign."""

    def __init__(self, base: SufficientStats, signed: np.ndarray) -> None:
        self.base = base
        self.signed = np.unique(np.asarray(signed, dtype=int))
        self._source, self.sign = self.layout(base.m, self.signed)
        self.m, self.p = len(self._source), base.p
        self.mu = base.mu[self._source]
        first = np.searchsorted(self._source, np.arange(base.m))  # each column's first coordinate
        self._free = np.setdiff1d(np.arange(base.m), self.signed)
        self._free_coord = first[self._free]
        self._below, self._above = first[self.signed], first[self.signed] + 1
        # a column's correlation with the residual below this is rounding (cosine 1e-10)
        gjj = np.asarray(base.G.diagonal())[self.signed]
        self._tol = 1e-10 * np.sqrt(np.maximum(gjj, 0) * base.response_norm2) * base.y_scale
        self._side = np.zeros(len(self.signed), dtype=int)  # warm start: the last solution's sides

    @staticmethod
    def layout(m: int, signed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Selection coordinates in design-column order, a signed column giving (below, above):
        the design column and the sign (-1, +1, or 0 for an unconstrained column) of each.

        >>> src, sign = SignConstrainedStats.layout(3, np.array([1]))
        >>> src.tolist(), sign.tolist()
        ([0, 1, 1, 2], [0, -1, 1, 0])
        """
        is_signed = np.isin(np.arange(m), signed)
        source = np.repeat(np.arange(m), np.where(is_signed, 2, 1))
        sign = np.zeros(len(source), dtype=int)
        first = np.cumsum(np.r_[0, np.where(is_signed, 2, 1)])[:-1][is_signed]
        sign[first], sign[first + 1] = -1, 1
        return source, sign

    @property
    def source(self) -> np.ndarray:
        return self._source

    @property
    def column_mu(self) -> np.ndarray:
        return self.base.mu

    @property
    def exact_fit(self) -> bool:
        return self.base.exact_fit

    def with_mu(self, mu: np.ndarray) -> "SignConstrainedStats":
        mu = np.asarray(mu, dtype=float)
        if mu.shape != (self.m,):
            raise ValueError("mu must hold one positive ridge weight per selection coordinate")
        column_mu = np.empty(self.base.m)
        column_mu[self._source] = mu  # both coordinates of a column carry its weight
        return SignConstrainedStats(self.base.with_mu(column_mu), self.signed)

    # ------------------------------------------------------------------ evaluation
    def _solve(self, s_col: np.ndarray, side: np.ndarray, s_below: np.ndarray, s_above: np.ndarray) -> Evaluation:
        s = s_col.copy()
        s[self.signed] = np.where(side > 0, s_above, np.where(side < 0, s_below, 0.0))
        return self.base.evaluate(s)

    def evaluate(self, s: np.ndarray) -> Evaluation:
        """c(s), its gradient per coordinate and the estimates, for s in [0, 1]^m."""
        s = np.clip(np.asarray(s, dtype=float), 0.0, 1.0)
        s_col = np.zeros(self.base.m)
        s_col[self._free] = s[self._free_coord]
        s_below, s_above = s[self._below], s[self._above]
        J = self.signed
        # a feasible start: the last sides where still allowed, dropping any whose effect has the wrong sign
        side = np.where((self._side > 0) & (s_above > 0), 1, np.where((self._side < 0) & (s_below > 0), -1, 0))
        ev = self._solve(s_col, side, s_below, s_above)
        for _ in range(len(J) + 1):
            wrong = side * ev.gamma[J] < 0
            if not wrong.any():
                break
            side[wrong] = 0
            ev = self._solve(s_col, side, s_below, s_above)
        blocked = np.zeros(len(J), dtype=bool)  # entered with the wrong sign at once (rounding): skip until a change
        for _ in range(_MAX_PIVOTS_PER_COLUMN * max(len(J), 1)):
            ztr = ev.ztr[J]
            gain_above = np.where((side == 0) & (s_above > 0) & ~blocked, ztr - self._tol, 0.0)
            gain_below = np.where((side == 0) & (s_below > 0) & ~blocked, -ztr - self._tol, 0.0)
            best = np.maximum(gain_above, gain_below)
            if not len(J) or best.max() <= 0:
                break
            j = int(np.argmax(best))
            side[j] = 1 if gain_above[j] >= gain_below[j] else -1
            x = ev.gamma[J]
            while True:  # Lawson-Hanson's inner loop: step towards the new solution until feasible
                new = self._solve(s_col, side, s_below, s_above)
                g = new.gamma[J]
                wrong = (side != 0) & (side * g < 0)
                if not wrong.any():
                    ev, blocked[:] = new, False
                    break
                if wrong[j] and x[j] == 0 and side[j] != 0 and np.count_nonzero(wrong) == 1:
                    side[j], blocked[j] = 0, True  # the entering column cannot move: rounding, not descent
                    break
                alpha = float(np.min(x[wrong] / (x[wrong] - g[wrong])))
                x = x + alpha * (g - x)
                side[(side != 0) & (side * x <= 0)] = 0
                side[wrong & (np.abs(x) <= 1e-15 * np.max(np.abs(x), initial=1.0))] = 0
        else:
            raise NumericalError("the sign-constrained ridge did not settle (an active-set cycle from rounding); "
                                 "use a larger ridge")
        self._side = side
        grad = np.empty(self.m)
        grad[self._free_coord] = ev.grad[self._free]
        ztr, mu = ev.ztr[J], self.base.mu[J]
        grad[self._above] = -np.maximum(ztr, 0.0) ** 2 / mu
        grad[self._below] = -np.minimum(ztr, 0.0) ** 2 / mu
        return Evaluation(ev.value, grad, ev.beta, ev.gamma, ev.ztr, ev.information, ev.beta_map)
