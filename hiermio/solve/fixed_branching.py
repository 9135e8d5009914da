"""Branch-and-bound on the fixed effects: certificates where the perspective relaxation is weak.

With one grouping factor, the fit for a support S and fixed effects delta (in the orthonormal basis
of ``sufficient.py``) is separable over levels (with nested factors, over the blocks of an outer
level and its inner levels: :func:`separable_blocks`; read "level" as "block" below):

    c(S; delta) = c(all; delta) + sum_k l_k(T_k; delta),

where T_k is the part of level k's units in S, c(all; .) is the convex quadratic fit with every unit
free, and l_k(T; delta) = u_k' (A_k^{-1} - E_T A_TT^{-1} E_T') u_k >= 0 is what level k loses by
keeping only T (u_k = Z_k'(r0 - Q delta) is affine in delta, A_k = Z_k'Z_k + diag(mu)). The
optimum is min over delta of c(all; delta) + min_S sum_k l_k(T_k; delta): least trimmed squares at
the level of clusters. With delta fixed the inner minimum is a sort; the difficulty is all in
delta, and only in the few directions along which the levels' residual sums move together.

So the search branches on delta, in the eigen-coordinates theta of c(all; .) (where that
quadratic is c_min + sum_i lambda_i theta_i^2), over boxes. On a box,

    c(S; delta) >= c_min + sum_i lambda_i dist(0, [lo_i, hi_i])^2 + min_S sum_k l_k^min(T_k),

with l_k^min a lower bound on l_k over the box: l_k(T) = ||F_T u_k||^2 with F_T of rank
q - |T|, and each row of F_T u_k is affine in theta, so its square is bounded below by interval
arithmetic (exact for a random intercept). The minimum over S is a sort for one budget on
one-unit levels, and a Lagrangian bound (valid for every multiplier) otherwise. The same
inequality, read coordinate by coordinate against the incumbent, shrinks the box before the
bound is taken (bound tightening), and a level whose cheapest loss exceeds what the incumbent
allows is fixed in by the sort. Every bound is valid on its box, so the minimum over the open
boxes is a proven lower bound whenever the search stops.

Each node costs a few vectorised passes over the K levels, and evaluates c exactly (through the
selection problem) only at supports it has not seen.

>>> import numpy as np, pandas as pd
>>> from hiermio.formula.design import build_design
>>> from hiermio.problem.selection import SelectionProblem
>>> rng = np.random.default_rng(1)
>>> df = pd.DataFrame({"g": np.repeat(np.arange(12), 8), "x": rng.normal(size=96)})
>>> df["y"] = df.x + np.where(df.g < 3, 1.5, 0.0) + rng.normal(size=96)
>>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), budget=3, mu=np.full(12, 0.1))
>>> support, cert = branch_on_fixed(sel, starts=[], gap=1e-9)
>>> brute = min(sel.value(np.isin(np.arange(12), c).astype(float))
...             for c in __import__("itertools").combinations(range(12), 3))
>>> cert.status, bool(abs(cert.primal - brute) <= 1e-9 * brute), bool(cert.dual <= brute * (1 + 1e-12))
('optimal', True, True)
"""

from __future__ import annotations

import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .certificate import Certificate, SolverProgress
from ..problem.selection import SelectionProblem
from ..problem.sufficient import SufficientStats

__all__ = ["SeparableForm", "branch_on_fixed", "separable_blocks"]

_ROUNDING = 1e-9  # relative gap that counts as closed
_MAX_SLOTS = 8  # units per block: 2^8 options per block at most
# a search that stops improving: from this many boxes on, each time the boxes double the gap must
# fall at least _STALL_FACTOR-fold. Healthy searches close in a burst (Exam: 1.2e-2 at 25 boxes,
# 5e-4 at 100, closed by 200; 1,000 clusters: 1.3e-3 at 200, closed by 400); a stalled one halves
# its gap per doubling (6 clusters with nearly collinear covariates: 5.2e-2 at 200, 2.6e-2 at 400,
# 1.6e-2 at 800, 3.2e-3 at 3,200 boxes, where SCIP's outer approximation proves it in 0.03 s). Large
# problems can also close slowly and still faster than SCIP: hiermio.solve.oa stops a stalled search only
# when it has few units
_STALL_BOXES = 400
_STALL_FACTOR = 3.0


def _box_quadratic_min(H: np.ndarray, b: np.ndarray, c: float, lo: np.ndarray, hi: np.ndarray,
                       sweeps: int = 8) -> tuple[float, np.ndarray, np.ndarray]:
    """A proven lower bound on min of theta'H theta + 2 b'theta + c over the box (H positive
    definite), the point it was taken at, and what each coordinate's width cost the bound:
    coordinate descent, then the tangent plane there minimised over the box (valid at any point,
    exact at the minimiser)."""
    p = len(b)
    if p == 0:
        return c, np.zeros(0), np.zeros(0)
    theta = np.clip(np.linalg.solve(H, -b), lo, hi)
    diag = np.diag(H)
    for _ in range(sweeps):
        for i in range(p):
            theta[i] = min(max(theta[i] - (H[i] @ theta + b[i]) / diag[i], lo[i]), hi[i])
    grad = 2.0 * (H @ theta + b)
    value = float(theta @ H @ theta + 2.0 * b @ theta + c)
    slack = np.minimum(grad * (lo - theta), grad * (hi - theta))  # <= 0 per coordinate
    return value + float(slack.sum()), theta, -slack


@dataclass
class SeparableForm:
    """The problem in the coordinates of the search: everything a node's bound needs, per level and option.

    Values are in the statistics' units (y divided by ``y_scale``); ``value_scale`` converts them.
    """

    c_min: float  # c with every unit free
    lam: np.ndarray  # (p,) eigenvalues of c(all; .)'s Hessian / 2
    D: np.ndarray  # (O, K, q, p) rows of F_T C_k V: how each loss row moves with theta
    e: np.ndarray  # (O, K, q) rows of F_T u_k at theta = 0
    c_none: float  # c(no unit; theta) = c_none + ||theta + w||^2
    w: np.ndarray  # (p,)
    Dg: np.ndarray  # (O, K, q, p) rows of the gains' factors, as D for the losses
    eg: np.ndarray  # (O, K, q)
    cost: np.ndarray  # (O, G) units each option uses, per budget group
    budgets: np.ndarray  # (G,)
    slot_units: np.ndarray  # (K, n_slots) unit id of each slot of each level
    option_slots: np.ndarray  # (O, n_slots) bool: which slots an option switches on
    value_scale: float
    n_units: int
    sensitivity: np.ndarray  # (p,) how strongly the losses move per unit of theta_i, for branching
    basis: np.ndarray  # (p, p) V: delta = centre + V theta
    centre: np.ndarray  # (p,) delta with every unit free
    stats: SufficientStats

    @classmethod
    def build(cls, problem: SelectionProblem) -> "SeparableForm | None":
        """The form of ``problem``, or None when it is not separable by level (crossed or nested
        factors, tail budgets, another inner problem)."""
        stats = problem.stats
        if type(stats) is not SufficientStats or problem.n_units == 0:
            return None
        if stats.blocks is not None:  # one grouping factor: a block per level
            blocks = stats.blocks
            Gb, Cb, vb, mub = stats._Gb, stats._ZtXb, stats._Ztyb, stats._mub
        else:  # nested factors: a block per outer level, with its inner levels
            blocks = separable_blocks(stats, problem.design)
            if blocks is None:
                return None
            Gb, Cb, vb, mub = _block_arrays(stats, blocks)
        K, q = blocks.shape
        real = blocks >= 0
        units = np.where(real, problem.unit_of_col[np.where(real, blocks, 0)], -1)  # (K, q); -1: padding
        # slots: the distinct units of a block, in the same pattern for every block (a complete one sets it)
        complete = np.flatnonzero(real.all(axis=1))
        if not len(complete):
            return None
        slot_of_pos = np.unique(units[complete[0]], return_inverse=True)[1].ravel()
        n_slots = int(slot_of_pos.max()) + 1
        if n_slots > _MAX_SLOTS:
            return None
        slot_units = np.full((K, n_slots), -1)
        slot_units[:, slot_of_pos] = units
        if not np.array_equal(units, slot_units[:, slot_of_pos]):
            return None  # blocks of different patterns
        used = slot_units[slot_units >= 0]
        if len(np.unique(used)) != used.size:
            return None  # a unit spans blocks: not separable
        group_of_slot = np.where(slot_units >= 0, problem.group_of_unit[np.maximum(slot_units, 0)], -1)
        pattern = group_of_slot[complete[0]]
        if np.any((group_of_slot != pattern) & (group_of_slot >= 0)):
            return None
        group_of_slot = pattern
        G = len(problem.budgets)
        p = stats.p
        A = Gb + mub[:, :, None] * np.eye(q)
        Ainv = np.linalg.inv(A)
        # c(all; delta) = const + 2 delta'b + delta'H delta
        H = np.eye(p) - np.einsum("kap,kab,kbr->pr", Cb, Ainv, Cb)
        b = np.einsum("kap,kab,kb->p", Cb, Ainv, vb)
        lam, V = np.linalg.eigh(H) if p else (np.zeros(0), np.zeros((0, 0)))
        if p and lam.min() <= 1e-12 * max(1.0, lam.max()):
            return None  # the fixed effects are not identified with every unit free
        delta_bar = -V @ ((V.T @ b) / lam) if p else np.zeros(0)
        const = stats.yty - float(np.einsum("ka,kab,kb->", vb, Ainv, vb))
        c_min = const + float(b @ delta_bar)
        u0 = vb - np.einsum("kap,p->ka", Cb, delta_bar)
        Ct = np.einsum("kap,pr->kar", Cb, V)
        options = np.array(list(itertools.product([False, True], repeat=n_slots)), dtype=bool)  # (O, n_slots)
        n_options = len(options)
        D, Dg = np.zeros((2, n_options, K, q, p))
        e, eg = np.zeros((2, n_options, K, q))
        cost = np.zeros((n_options, G), dtype=int)

        def rows(P):  # F with F'F = P, row by row
            ev, U = np.linalg.eigh(0.5 * (P + np.swapaxes(P, 1, 2)))
            return np.sqrt(np.clip(ev, 0.0, None))[:, :, None] * np.swapaxes(U, 1, 2)

        for o, on in enumerate(options):
            pos = on[slot_of_pos]  # (q,) positions switched on
            gain = np.zeros_like(Ainv)  # E_T A_TT^{-1} E_T'
            if pos.any():
                idx = np.flatnonzero(pos)
                gain[:, idx[:, None], idx[None, :]] = np.linalg.inv(A[:, idx][:, :, idx])
            for F, Dx, ex in ((rows(Ainv - gain), D, e), (rows(gain), Dg, eg)):
                Dx[o] = np.einsum("kij,kjp->kip", F, Ct)
                ex[o] = np.einsum("kij,kj->ki", F, u0)
            np.add.at(cost[o], group_of_slot[on], 1)
        sensitivity = np.sqrt(np.einsum("kip->p", D[0] ** 2)) if p else np.zeros(0)
        c_none = stats.yty
        w = V.T @ delta_bar if p else np.zeros(0)
        return cls(c_min, lam, D, e, c_none, w, Dg, eg, cost, problem.budgets.astype(int), slot_units, options,
                   stats.y_scale ** 2, problem.n_units, sensitivity, V, delta_bar, stats)

    def fixed_effects(self, theta: np.ndarray) -> np.ndarray:
        """The fixed effects (on the data's scale) at the point theta of the search.

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "x": [0., 1, 0, 1, 0, 2], "g": list("aabbcc")})
        >>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), 1, np.ones(3))
        >>> form = SeparableForm.build(sel)
        >>> bool(np.allclose(form.fixed_effects(np.zeros(2)), sel.evaluate(np.ones(3))[0].beta))
        True
        """
        st = self.stats
        delta = self.centre + self.basis @ theta
        return (st.beta_map @ (st.a + delta) + st.beta_shift) * st.y_scale

    def first_order_bound(self, lo: np.ndarray, hi: np.ndarray):
        """The interval bounds of a box (exact as the box shrinks, to first order in its width):
        the bound, and the parts that bound tightening reads."""
        ell, gain = self.losses(lo, hi)
        L, _ = self.cheapest(ell)
        M, _ = self.cheapest(-gain)  # minus the most the levels can gain together
        quad, quad0 = self.quadratic(lo, hi), self.none_quadratic(lo, hi)
        return max(self.c_min + quad.sum() + L, self.c_none + quad0.sum() + M), (ell, gain, L, M, quad, quad0)

    def bound(self, lo: np.ndarray, hi: np.ndarray) -> float:
        """A lower bound on c(S; delta) over every feasible support S and every theta in the box
        (statistics' units).

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "x": [0., 1, 0, 1, 0, 2], "g": list("aabbcc")})
        >>> sel = SelectionProblem.build(build_design("y ~ x + (1 | g)", df), 1, np.ones(3))
        >>> form = SeparableForm.build(sel)
        >>> best = min(sel.value(np.eye(3)[k]) for k in range(3)) / form.value_scale
        >>> bool(form.bound(np.full(2, -10.0), np.full(2, 10.0)) <= best)
        True
        """
        first, parts = self.first_order_bound(lo, hi)
        if not self.sortable:
            return max(first, self.dominance_bound(lo, hi)[0])
        return max(first, self.screened_bound(lo, hi, parts[0], parts[1])[0])

    # ------------------------------------------------------------------ pieces of a node
    def losses(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(O, K) lower bounds on every level's loss, and upper bounds on its gain, under every
        option over the box."""
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        out = []
        for D, e, sign in ((self.D, self.e, -1.0), (self.Dg, self.eg, 1.0)):
            centre = e - D @ mid
            radius = np.abs(D) @ half
            dist = np.maximum(np.abs(centre) + sign * radius, 0.0)
            out.append(np.einsum("okq,okq->ok", dist, dist))
        return out[0], out[1]

    def none_quadratic(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """min over [lo_i, hi_i] of (theta_i + w_i)^2, per coordinate: c with no unit is c_none + their sum."""
        d = np.maximum(np.maximum(lo + self.w, -hi - self.w), 0.0)
        return d * d

    def quadratic(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """lambda_i * min over [lo_i, hi_i] of theta_i^2, per coordinate."""
        d = np.maximum(np.maximum(lo, -hi), 0.0)
        return self.lam * d * d

    def cheapest(self, ell: np.ndarray) -> tuple[float, np.ndarray]:
        """A lower bound on min_S sum_k ell[T_k, k] within the budgets, and the options that attain it
        (possibly over budget when the bound is a Lagrangian one)."""
        n_options, K = ell.shape
        G = len(self.budgets)
        if n_options == 2 and G == 1:  # one unit per level: free the levels that lose most, exactly
            c = int(self.cost[1, 0])
            n_free = min(K, int(self.budgets[0]) // c) if c else K
            saving = ell[0] - ell[1]
            order = np.argsort(-saving, kind="stable")
            choice = np.zeros(K, dtype=int)
            choice[order[:n_free]] = 1
            return float(ell[0].sum() - saving[order[:n_free]].sum()), choice
        return self._lagrangian(ell)[:2]

    def _lagrangian(self, ell: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """max over multipliers tau >= 0 of sum_k min_o (ell[o, k] + tau'cost_o) - tau'budgets: the
        value, the options at the best tau, and tau (exact for one budget; coordinate ascent, each
        coordinate exact, for several). Any tau gives a valid bound; the search only makes it tight.
        """
        G = len(self.budgets)
        tau = np.zeros(G)
        best = float(ell.min(axis=0).sum())
        for _ in range(3 if G > 1 else 1):  # coordinate ascent over the groups' multipliers
            before = best
            for g in range(G):
                rest = self.cost @ tau - self.cost[:, g] * tau[g]  # the other groups' prices
                t, val = _coordinate_max(ell + rest[:, None], self.cost[:, g], float(self.budgets[g]))
                val -= float(tau @ self.budgets - tau[g] * self.budgets[g])
                if val > best:
                    best, tau[g] = val, t
            if best <= before + 1e-12 * abs(best):
                break
        return best, np.argmin(ell + (self.cost @ tau)[:, None], axis=0), tau

    @property
    def sortable(self) -> bool:
        """One unit per level under one budget: the best support at fixed theta is a sort."""
        return len(self.cost) == 2 and len(self.budgets) == 1

    def screened_bound(self, lo: np.ndarray, hi: np.ndarray, ell: np.ndarray, gain: np.ndarray
                       ) -> tuple[float, np.ndarray, np.ndarray]:
        """A bound exact to second order in the box's width (when ``sortable``): the bound, a point
        for the incumbent, and per coordinate how much the bound loses to its width.

        Levels whose gain is surely among the m largest over the box (I) or surely not (O) are
        kept exact, as convex quadratics in theta; only the undecided ones (U) are bounded by
        intervals. With S the m best levels at theta,

            F(theta) = c(no unit) - sum_I gain - sum_{S & U} gain >= min_box g_I - top_{m'}(gain_U^max)
            F(theta) = c(all) + sum_O loss + sum_{U - S} loss  >= min_box h_O + bottom(loss_U^min).
        """
        K = ell.shape[1]
        m = min(K, int(self.budgets[0]) // int(self.cost[1, 0]))
        gmin, gmax = ell[0], gain[1]
        t_lo = np.partition(gmin, K - m)[K - m] if m else np.inf  # m-th largest lower bound
        t_hi = np.partition(gmax, K - m - 1)[K - m - 1] if m < K else -np.inf  # (m+1)-th largest upper bound
        out = gmax < t_lo
        into = (gmin > t_hi) & ~out
        und = ~(out | into)
        m_left = m - int(into.sum())
        Dg, eg = self.Dg[1][into], self.eg[1][into]
        p = len(self.lam)
        Hg = np.eye(p) - np.einsum("kip,kir->pr", Dg, Dg)
        bg = self.w + np.einsum("kip,ki->p", Dg, eg)
        cg = self.c_none + self.w @ self.w - float(np.einsum("ki,ki->", eg, eg))
        g_und = np.sort(gmax[und])[::-1]
        b3, th3, slack3 = _box_quadratic_min(Hg, bg, cg, lo, hi)
        b3 -= g_und[:m_left].sum()
        Dl, el = self.D[0][out], self.e[0][out]
        Hl = np.diag(self.lam) + np.einsum("kip,kir->pr", Dl, Dl)
        bl = -np.einsum("kip,ki->p", Dl, el)
        cl = self.c_min + float(np.einsum("ki,ki->", el, el))
        l_und = np.sort(gmin[und])
        b4, th4, slack4 = _box_quadratic_min(Hl, bl, cl, lo, hi)
        b4 += l_und[:int(und.sum()) - m_left].sum()
        spread = (np.abs(self.Dg[1][und]).sum(axis=(0, 1)) if und.any() else np.zeros(p)) * (hi - lo)
        return max(b3, b4), (th3 if b3 >= b4 else th4), spread + (slack3 if b3 >= b4 else slack4)

    def dominance_bound(self, lo: np.ndarray, hi: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """The second-order bound for several units per level (or several budgets), through the
        Lagrangian: the bound, a point for the incumbent, and per coordinate how much the bound
        loses to its width.

        For any multipliers tau >= 0, F(theta) >= c(all; theta) + sum_k min_o (l_ko(theta) + tau'cost_o)
        - tau'budgets. A level whose best option o* stays best over the whole box (its largest
        priced loss below every other option's smallest) contributes the convex quadratic l_ko*
        exactly; the others contribute their smallest priced loss over the box.
        """
        mid, half = 0.5 * (lo + hi), 0.5 * (hi - lo)
        centre = np.abs(self.e - self.D @ mid)
        radius = np.abs(self.D) @ half
        lmin = np.einsum("okq->ok", np.maximum(centre - radius, 0.0) ** 2)
        lmax = np.einsum("okq->ok", (centre + radius) ** 2)
        _, _, tau = self._lagrangian(lmin)
        price = (self.cost @ tau)[:, None]
        tmin, tmax = lmin + price, lmax + price
        K = tmin.shape[1]
        levels = np.arange(K)
        best_o = np.argmin(tmin, axis=0)
        runner_up = np.partition(tmin, 1, axis=0)[1]
        fixed = tmax[best_o, levels] <= runner_up
        Dd, ed = self.D[best_o[fixed], levels[fixed]], self.e[best_o[fixed], levels[fixed]]
        H = np.diag(self.lam) + np.einsum("kip,kir->pr", Dd, Dd)
        b = -np.einsum("kip,ki->p", Dd, ed)
        c = self.c_min + float(np.einsum("ki,ki->", ed, ed)) + float(price[best_o[fixed], 0].sum())
        value, theta, slack = _box_quadratic_min(H, b, c, lo, hi)
        value += float(tmin[:, ~fixed].min(axis=0).sum() - tau @ self.budgets)
        spread = np.abs(self.D[:, ~fixed]).sum(axis=(0, 1, 2)) * (hi - lo) + slack
        return value, theta, spread

    def first_support(self) -> np.ndarray:
        """The best support at the fixed effects of the fit with every unit free: one sort (or one
        Lagrangian pass) over the levels, a first solution in milliseconds.

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 9, 9], "g": list("aabbcc")})
        >>> sel = SelectionProblem.build(build_design("y ~ 1 + (1 | g)", df), 1, np.ones(3))
        >>> SeparableForm.build(sel).first_support().tolist()
        [0.0, 0.0, 1.0]
        """
        return self.support(self.exact_losses(np.zeros(len(self.lam))))

    def exact_losses(self, theta: np.ndarray) -> np.ndarray:
        r = self.e - self.D @ theta
        return np.einsum("okq,okq->ok", r, r)

    def support(self, ell: np.ndarray) -> np.ndarray:
        """A feasible unit support that nearly minimises sum_k ell[T_k, k] (exact for one unit per level)."""
        _, choice = self.cheapest(ell)
        K = ell.shape[1]
        used = self.cost[choice].sum(axis=0)
        while np.any(used > self.budgets):  # repair a Lagrangian choice: the cheapest downgrades first
            g = int(np.argmax(used - self.budgets))
            # (O, K): options using less of g and no more of any budget
            cand = (self.cost[:, g][:, None] < self.cost[choice, g][None, :]) & np.all(
                self.cost[:, None, :] <= self.cost[choice][None, :, :], axis=2)
            delta = np.where(cand, ell - ell[choice, np.arange(K)], np.inf)
            o, k = np.unravel_index(np.argmin(delta), delta.shape)
            used += self.cost[o] - self.cost[choice[k]]
            choice[k] = o
        s = np.zeros(self.n_units)
        on = self.option_slots[choice] & (self.slot_units >= 0)  # (K, n_slots); padding switches nothing on
        s[self.slot_units[on]] = 1.0
        return s


def _coordinate_max(a: np.ndarray, c: np.ndarray, budget: float) -> tuple[float, float]:
    """max over t >= 0 of phi(t) = sum_k min_o (a[o, k] + t c[o]) - t budget, and where.

    phi is concave and piecewise linear, so its maximum is at t = 0 or at a breakpoint, where some
    level's cheapest option changes. Only the cheapest option of each cost matters, so the
    breakpoints are those between the cost levels' lower envelopes; phi over them (sorted) is
    unimodal, and is evaluated at all of them at once, or searched by bisection when they are many.

    >>> a = np.array([[4.0, 3.0], [1.0, 2.0]])  # two levels; option 1 costs 1 unit, option 0 none
    >>> _coordinate_max(a, np.array([0, 1]), 1.0)  # one unit: level 0 takes it (1 + 3); phi is flat on [1, 3]
    (2.0, 4.0)
    """
    levels = np.unique(c)
    A = np.stack([a[c == v].min(axis=0) for v in levels])  # (L, K)
    i, j = np.triu_indices(len(levels), 1)
    cuts = ((A[i] - A[j]) / (levels[j] - levels[i])[:, None]).ravel()
    ts = np.unique(np.concatenate([[0.0], cuts[cuts > 0]]))

    def phi(t: np.ndarray) -> np.ndarray:
        return (A[None] + t[:, None, None] * levels[None, :, None]).min(axis=1).sum(axis=1) - t * budget

    if len(ts) * A.size <= 1_000_000:
        m = int(np.argmax(phi(ts)))
    else:
        m, hi = 0, len(ts) - 1
        while m < hi:
            mid = (m + hi) // 2
            v = phi(ts[mid: mid + 2])
            m, hi = (mid + 1, hi) if v[1] > v[0] else (m, mid)
    # a flat top: its midpoint, where no level's options tie (ties weaken the dominance bound)
    pair = phi(ts[m: m + 2])
    if len(pair) == 2 and pair[1] >= pair[0] - 1e-12 * abs(pair[0]):
        mid = 0.5 * (ts[m] + ts[m + 1])
        return float(mid), float(phi(np.array([mid]))[0])  # the dual at the multiplier returned
    return float(ts[m]), float(pair[0])


def separable_blocks(stats: SufficientStats, design) -> np.ndarray | None:
    """Columns of each block of Z'Z when there are several (nested factors: an outer level with its
    inner levels), as a (blocks, positions) array with -1 where a block has fewer columns of a kind
    than the largest; None when Z'Z is one block (crossed factors) or a block is too wide.

    The blocks are the connected components of Z'Z's nonzero pattern: the fit is separable over
    them given the fixed effects, which is all the search needs. Positions are by term,
    coefficient and level within the block, so every block has the same layout.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "b": list("aaabbb"), "c": list("xyxxxz")})
    >>> d = build_design("y ~ 1 + (1 | b/c)", df)   # a: casks x, y; b: casks x, z
    >>> SufficientStats.from_design(d, np.ones(d.n_columns)).blocks is None
    True
    >>> blocks = separable_blocks(SufficientStats.from_design(d, np.ones(d.n_columns)), d)
    >>> names = [*d.terms[0].level_strings, *d.terms[1].level_strings]
    >>> [[names[j] for j in row] for row in blocks]
    [['a', 'x:a', 'y:a'], ['b', 'x:b', 'z:b']]
    """
    from scipy.sparse.csgraph import connected_components

    if design is None or not design.terms:
        return None
    K, label = connected_components(abs(stats.G) > 0, directed=False)
    if K < 2:
        return None
    # the kind of every column: its term and coefficient, numbered 0.. in term order
    first_kind = np.cumsum([0] + [t.q for t in design.terms])
    kind = np.concatenate([first_kind[i] + np.tile(np.arange(t.q), t.n_levels) for i, t in enumerate(design.terms)])
    count = np.zeros((first_kind[-1], K), dtype=int)  # columns of each kind in each block
    np.add.at(count, (kind, label), 1)
    width = count.max(axis=1)  # positions per kind: the most any block has
    if width.sum() > 2 * _MAX_SLOTS:
        return None
    start = np.concatenate([[0], np.cumsum(width)[:-1]])
    blocks = np.full((K, int(width.sum())), -1)
    filled = np.zeros_like(count)
    for j, (k, b) in enumerate(zip(kind, label)):  # columns in order: by term, then level, then coefficient
        blocks[b, start[k] + filled[k, b]] = j
        filled[k, b] += 1
    return blocks


def _block_arrays(stats: SufficientStats, blocks: np.ndarray) -> tuple[np.ndarray, ...]:
    """Z'Z, Z'Q, Z'r0 and mu per block and position; padding positions are columns of nothing
    (no data, unit ridge), whose loss and gain are zero whatever the fixed effects."""
    K, q = blocks.shape
    real = blocks >= 0
    idx = np.where(real, blocks, 0)
    Gb = np.zeros((K, q, q))
    for i in range(q):
        for j in range(q):
            Gb[:, i, j] = np.asarray(stats.G[idx[:, i], idx[:, j]]).ravel()
    Gb *= real[:, :, None] & real[:, None, :]
    Cb = stats.ZtX[idx] * real[:, :, None]
    vb = stats.Zty[idx] * real
    mub = np.where(real, stats.mu[idx], 1.0)
    return Gb, Cb, vb, mub


def branch_on_fixed(
    problem: SelectionProblem,
    starts: list[np.ndarray],
    time_limit: float = 60.0,
    gap: float = 1e-4,
    form: SeparableForm | None = None,
    node_limit: int = 10**7,
    callback: Callable[[SolverProgress], None] | None = None,
    stop_when_stalled: bool = False,
) -> tuple[np.ndarray, Certificate]:
    """Best-first branch-and-bound over boxes of the fixed effects (see the module docstring).

    ``starts`` are supports from heuristics (the best is the first incumbent). A time or node limit
    returns the incumbent with the smallest bound over the open boxes; so does, with
    ``stop_when_stalled``, a search whose gap stops falling (status ``"stalled"``: from 400 boxes
    on, each doubling of the boxes must cut the gap three-fold), for another search to take over.
    """
    t0 = time.perf_counter()
    # below this relative gap the bounds' rounding decides: closing it further would split boxes
    # to nothing (SCIP's optimality has the same kind of tolerance)
    gap = max(gap, _ROUNDING)
    form = form if form is not None else SeparableForm.build(problem)
    if form is None:
        raise ValueError("branch_on_fixed needs a problem separable by level (one grouping factor or nested ones, no tails)")
    n0 = problem.n_evaluations
    k2 = form.value_scale
    cache: dict[bytes, float] = {}

    def value(s):
        key = s.astype(np.int8).tobytes()
        if key not in cache:
            cache[key] = problem.value(s) / k2
        return cache[key]

    best_s, best = None, np.inf
    for s in starts:
        if not problem.is_feasible(s):  # a warm start from another budget
            continue
        v = value(np.asarray(s, float))
        if v < best:
            best_s, best = np.asarray(s, float), v
    p = len(form.lam)
    # the root box: c(all; theta) alone may not exceed the incumbent
    s = form.first_support()
    if value(s) < best:
        best_s, best = s, value(s)
    r = np.sqrt(np.maximum(best - form.c_min, 0.0) / form.lam)
    heap: list[tuple] = []
    counter = itertools.count()
    nodes = 0

    floor = np.inf  # the smallest bound of a box closed short of the incumbent

    def process(lo, hi):
        """Tighten the box against the incumbent; its bound (inf when pruned) and the box."""
        nonlocal best, best_s, floor
        for _ in range(3):
            bound, (ell, gain, L, M, quad, quad0) = form.first_order_bound(lo, hi)
            if bound >= best - gap * best:
                floor = min(floor, bound)
                return np.inf, lo, hi, None
            room = best - form.c_min - L - (quad.sum() - quad)
            r = np.sqrt(np.maximum(room, 0.0) / form.lam)
            room0 = np.sqrt(np.maximum(best - form.c_none - M - (quad0.sum() - quad0), 0.0))
            new_lo = np.maximum(np.maximum(lo, -r), -form.w - room0)
            new_hi = np.minimum(np.minimum(hi, r), -form.w + room0)
            if np.any(new_lo > new_hi):  # nothing in the box beats the incumbent
                return np.inf, lo, hi, None
            shrunk = np.any((new_hi - new_lo) < 0.9 * (hi - lo))
            lo, hi = new_lo, new_hi
            if not shrunk:
                break
        if form.sortable:
            ell, gain = form.losses(lo, hi)
            second, theta, spread = form.screened_bound(lo, hi, ell, gain)
        else:
            second, theta, spread = form.dominance_bound(lo, hi)
        bound = max(bound, second)
        # the best support at the box's point is a candidate incumbent
        s = form.support(form.exact_losses(theta))
        v = value(s)
        if v < best:
            best, best_s = v, s
        if bound >= best - gap * best:
            floor = min(floor, bound)
            return np.inf, lo, hi, spread
        return bound, lo, hi, spread

    bound, lo, hi, spread = process(-r, r)
    if np.isfinite(bound):
        heapq.heappush(heap, (bound, next(counter), lo, hi, spread))
    deadline = t0 + time_limit
    status = "optimal"
    last_report = 0.0
    checkpoint, checkpoint_gap = _STALL_BOXES // 2, np.inf  # the gap at half the next check's boxes
    while heap:
        bound, _, lo, hi, spread = heap[0]
        now = time.perf_counter()
        if callback is not None and now - last_report > 0.5:
            last_report = now
            callback(SolverProgress(now - t0, best * k2, bound * k2, max(0.0, (best - bound) / best) if best else 0.0,
                                    nodes, 0))
        if bound >= best - gap * best:
            floor = min(floor, bound)
            heap.clear()
            break
        if time.perf_counter() > deadline:
            status = "time_limit"
            break
        if nodes >= node_limit:
            status = "node_limit"
            break
        if nodes == checkpoint:
            gap_now = (best - bound) / best if best > 0 else 0.0
            if stop_when_stalled and nodes >= _STALL_BOXES and gap_now * _STALL_FACTOR > checkpoint_gap:
                status = "stalled"
                break
            checkpoint, checkpoint_gap = 2 * checkpoint, gap_now
        heapq.heappop(heap)
        nodes += 1
        if p and not np.any(spread > 0):  # nothing left to blame but rounding: split the widest side
            spread = (hi - lo) * form.sensitivity
        i = int(np.argmax(spread)) if p else 0
        if p == 0 or (spread[i] <= 1e-14 * max(1.0, best) and np.all(hi - lo <= 1e-12 * (1 + np.abs(lo)))):
            # a point box whose bound is still short of the incumbent cannot happen when the sort is
            # exact; with a Lagrangian bound it can, and the box stays open at its bound
            status = "bound_limit"
            heapq.heappush(heap, (bound, next(counter), lo, hi, spread))
            break
        mid = 0.5 * (lo[i] + hi[i])
        children = []
        try:
            for a, b in ((lo[i], mid), (mid, hi[i])):
                clo, chi = lo.copy(), hi.copy()
                clo[i], chi[i] = a, b
                children.append(process(clo, chi))
        except KeyboardInterrupt:  # Ctrl-C: the incumbent, and the bound with this box still open
            heapq.heappush(heap, (bound, next(counter), lo, hi, spread))
            status = "interrupted"
            break
        for cb, clo, chi, cs in children:
            if np.isfinite(cb):
                heapq.heappush(heap, (max(cb, bound), next(counter), clo, chi, cs))
    dual = min(best, floor, heap[0][0] if heap else np.inf)
    if status == "optimal" and dual < best * (1 - _ROUNDING):
        status = "gap_limit"
    value_best = problem.value(best_s)
    cert = Certificate(status, value_best, min(dual * k2, value_best), nodes=nodes,
                       evaluations=problem.n_evaluations - n0, time=time.perf_counter() - t0,
                       solver="branch-and-bound on the fixed effects")
    return best_s, cert
