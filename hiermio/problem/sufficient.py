"""The inner ridge problem c(s) and its gradient, from sufficient statistics.

For a support indicator s in [0, 1]^m over the random-effect columns,

    c(s) = min_{beta, gamma}  ||y - X beta - Z gamma||^2 + sum_j mu_j gamma_j^2 / s_j

(columns with s_j = 0 are left out). c is convex on [0, 1]^m, equals the ridge fit value on
{0, 1}^m, and dc/ds_j = -(z_j' r)^2 / mu_j with r the fitted residual: the outer approximation
cuts. Substituting gamma_j = sqrt(s_j / mu_j) delta_j turns the problem into a plain ridge with
scaled columns, which stays well conditioned as s_j -> 0.

Everything here is computed once, in one pass over the rows, so one evaluation costs nothing that
grows with n. With a single grouping factor Z'Z is block diagonal (one q x q block per level) and
an evaluation is O(K q^3 + K q p^2 + p^3); with crossed factors a sparse solve is used.

The statistics are not the raw normal equations, which lose every digit to a covariate such as a
timestamp (x + 1e8: X'X has condition 1e16). The fixed columns are shifted by their means (when the
model has an intercept) and replaced by an orthonormal basis Q = X_s R^{-1}, R from Householder QRs
of blocks of rows merged by QR (TSQR: data in partitions merge the same way); y is
split into its projection a = Q'y and the residual r0 = y - Q a. What is kept is

    C = Q'Z,   v = Z'r0,   Z'Z,   r0'r0,   a,   and the map from Q's coefficients back to X's,

so c(s) = r0'r0 - gamma'v is a small difference only when the cluster effects explain nearly all of
what the fixed part leaves, and the estimates are as accurate as a QR least-squares solve.

>>> import numpy as np, pandas as pd
>>> from hiermio.formula.design import build_design
>>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "x": [0., 1, 0, 1, 0, 1], "g": list("aabbcc")})
>>> stats = SufficientStats.from_design(build_design("y ~ x + (1 | g)", df), mu=np.ones(3))
>>> ev = stats.evaluate(np.zeros(3))        # no cluster effects: OLS on X
>>> X = np.column_stack([np.ones(6), df.x])
>>> r = df.y - X @ np.linalg.lstsq(X, df.y, rcond=None)[0]
>>> bool(np.isclose(ev.value, r @ r))
True
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from ..formula.design import _BLOCK_ROWS, Design, RowBlock
from .inner import Evaluation, InnerProblem, blas_threads
from ..core.exceptions import NumericalError

__all__ = ["SufficientStats", "CrossProducts", "cross_products", "split_cross_products"]

_DENSE_LIMIT = 400  # supports up to this size are solved densely in the crossed-factor path
_DENSE_G_LIMIT = 1000  # with at most this many columns, Z'Z is kept dense too: small problems evaluate in
# microseconds, where sparse matrices cost a millisecond in overhead per evaluation


class SufficientStats(InnerProblem):
    """The Gaussian ridge inner problem: its data in a well-conditioned basis, and the evaluator of c(s) built on it.

    In the basis Q of the fixed columns, profiling the fixed effects out leaves a ridge problem in
    gamma alone with "response" r0: the evaluators below solve it with Q'Q = I and Q'r0 = 0.
    """

    def __init__(
        self,
        G: sp.csr_matrix,
        C: np.ndarray,
        v: np.ndarray,
        r0_norm2: float,
        a: np.ndarray,
        beta_map: np.ndarray,
        beta_shift: np.ndarray,
        mu: np.ndarray,
        response_norm2: float,
        blocks: np.ndarray | None = None,
        y_scale: float = 1.0,
    ) -> None:
        self.G, self.ZtX, self.Zty = G.tocsr(), C.T, v  # Z'Z, Z'Q and Z'r0
        self.yty = float(r0_norm2)
        self.a, self.beta_map, self.beta_shift = a, beta_map, beta_shift
        self.response_norm2 = float(response_norm2)
        self.y_scale = float(y_scale)  # everything above is in units of y_scale; results are not
        self.mu = np.asarray(mu, dtype=float)
        if self.mu.shape != (G.shape[0],) or not np.all(self.mu > 0) or not np.all(np.isfinite(self.mu)):
            raise ValueError("mu must hold one positive, finite ridge weight per random-effect column")
        self.m, self.p = G.shape[0], len(a)
        self.XtX = np.eye(self.p)
        # blocks[k, a] = column of level k, position a, when Z'Z is block diagonal
        self.blocks = blocks
        if blocks is not None:
            K, q = blocks.shape
            self._Gb = np.empty((K, q, q))
            for i in range(q):
                for j in range(q):
                    self._Gb[:, i, j] = np.asarray(self.G[blocks[:, i], blocks[:, j]]).ravel()
            self._ZtXb = self.ZtX[blocks]  # (K, q, p)
            self._Ztyb = self.Zty[blocks]  # (K, q)
            self._mub = self.mu[blocks]
        self._G_dense = self.G.toarray() if blocks is None and self.m <= _DENSE_G_LIMIT else None

    @classmethod
    def from_design(cls, design: Design, mu: np.ndarray) -> "SufficientStats":
        """One pass over the rows (:func:`cross_products`); afterwards nothing depends on n."""
        return cls.from_cross_products(cross_products(design), design, mu)

    @classmethod
    def from_cross_products(cls, cp: "CrossProducts", design: Design, mu: np.ndarray) -> "SufficientStats":
        """The statistics in the orthonormal basis of the fixed columns, from the pass's sums.

        The R factor of sw [X_s : y_s] (X_s, y_s: shifted by constants when the model has an
        intercept, which leaves the fit unchanged) is [[R, a], [0, rho]]: Q = sw X_s R^-1 is the
        basis, a = Q'y and rho^2 the residual sum of squares r0'r0, both as accurate as a QR solve.
        Prior weights w scale every row by sqrt(w); an offset is taken off the response first.
        """
        p = design.p
        if cp.P != p:
            raise ValueError("the cross products do not match the design's fixed columns")
        with blas_threads(_pass_threads(design)):  # small dense algebra, as the pass that made the sums
            return cls._from_cross_products(cp, design, mu)

    @classmethod
    def _from_cross_products(cls, cp: "CrossProducts", design: Design, mu: np.ndarray) -> "SufficientStats":
        p = design.p
        # a QR of R: triangular again (a block with fewer rows than columns is stored as it came)
        R_full = np.linalg.qr(cp.R, mode="r")
        R, a, rho = R_full[:p, :p], R_full[:p, p], float(R_full[p, p])
        norms = np.linalg.norm(cp.R[:, :p], axis=0)
        if p and np.any(np.abs(np.diag(R)) <= 1e-12 * norms):
            raise NumericalError("the fixed-effect columns are numerically collinear")
        ZtX = cp.ZtX
        C = scipy.linalg.solve_triangular(R, ZtX.T, trans="T") if p else np.zeros((0, cp.m))
        beta_hat = scipy.linalg.solve_triangular(R, a) if p else np.zeros(0)
        v = cp.Zty - ZtX @ beta_hat  # Z'W r0
        response_norm2 = float(a @ a) + rho * rho - (cp.wy / cp.w_sum * cp.wy if cp.intercept is not None else 0.0)
        # the response in units of its largest (centred) value: the solver's tolerances are then the
        # same for y in millimetres and in kilometres
        k = cp.y_max if cp.y_max > 0 else 1.0
        beta_inv_R = scipy.linalg.solve_triangular(R, np.eye(p)) if p else np.zeros((0, 0))
        T = np.eye(p)
        shift = np.zeros(p)
        if cp.intercept is not None:
            i = cp.intercept
            c0 = cp.const[i]
            T[i, :] -= cp.shift / c0
            shift[i] = cp.y_shift / c0 / k
        return cls(
            G=cp.ZtZ.tocsr(),
            C=C,
            v=v / k,
            r0_norm2=rho * rho / (k * k),
            a=a / k,
            beta_map=T @ beta_inv_R,
            beta_shift=shift,
            mu=mu,
            response_norm2=max(response_norm2, 0.0) / (k * k),
            blocks=_level_blocks(design),
            y_scale=k,
        )

    def with_mu(self, mu: np.ndarray) -> "SufficientStats":
        """The same statistics under other ridge weights (the refit's tiny ones), without a pass over the rows.

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> df = pd.DataFrame({"y": [1., 2, 3, 4, 5, 7], "g": list("aabbcc")})
        >>> stats = SufficientStats.from_design(build_design("y ~ 1 + (1 | g)", df), mu=np.ones(3))
        >>> stats.with_mu(np.full(3, 2.0)).mu.tolist(), stats.mu.tolist()
        ([2.0, 2.0, 2.0], [1.0, 1.0, 1.0])
        """
        out = copy.copy(self)
        out.mu = np.asarray(mu, dtype=float)
        if out.mu.shape != self.mu.shape or not np.all(out.mu > 0):
            raise ValueError("mu must hold one positive ridge weight per random-effect column")
        if self.blocks is not None:
            out._mub = out.mu[self.blocks]
        return out

    @property
    def exact_fit(self) -> bool:
        """The fixed part fits the response exactly (to 1e-10 of its norm): nothing is left for
        cluster effects to explain."""
        return self.yty <= 1e-20 * self.response_norm2

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, s: np.ndarray) -> Evaluation:
        """c(s), gradient and estimates for s in [0, 1]^m (fractional s: perspective relaxation)."""
        s = np.clip(np.asarray(s, dtype=float), 0.0, 1.0)
        if self.blocks is not None:
            return self._evaluate_blocks(s)
        return self._evaluate_sparse(s)

    def _finish(self, delta: np.ndarray, gamma: np.ndarray, Ggamma: np.ndarray, H: np.ndarray) -> Evaluation:
        # Q'r0 = 0, so c = r0'r0 - gamma'v; it cannot be negative, whatever rounding says
        value = max(0.0, self.yty - gamma @ self.Zty)
        ztr = self.Zty - self.ZtX @ delta - Ggamma
        k = self.y_scale
        gamma = gamma + 0.0  # no -0.0 for columns off the support
        beta = (self.beta_map @ (self.a + delta) + self.beta_shift) * k
        return Evaluation(float(value) * k * k, -(ztr**2) / self.mu * (k * k), beta, gamma * k, ztr * k, H,
                          self.beta_map)

    def _solve_beta(self, H: np.ndarray, h: np.ndarray) -> np.ndarray:
        if self.p == 0:
            return np.zeros(0)
        try:
            return np.linalg.solve(H, h)  # H = Q'(I + Z_S Z_S'/mu)^{-1} Q is positive definite
        except np.linalg.LinAlgError as exc:
            raise NumericalError(
                "the fixed effects cannot be separated from the cluster effects at this ridge weight "
                "(the profiled information on the fixed effects is singular); use a larger ridge") from exc

    def _evaluate_blocks(self, s: np.ndarray) -> Evaluation:
        blocks, Gb, ZtXb, Ztyb = self.blocks, self._Gb, self._ZtXb, self._Ztyb
        W = np.sqrt(s[blocks] / self._mub)  # (K, q)
        K, q = W.shape
        if q == 1:  # random intercepts (or one slope): every block is a scalar
            w, g = W[:, 0], Gb[:, 0, 0]
            B, b = ZtXb[:, 0, :], Ztyb[:, 0]
            f = w * w / (w * w * g + 1.0)  # (K,) weight of each level in the Schur complement
            H = self.XtX - B.T @ (f[:, None] * B)
            delta = self._solve_beta(H, -(B.T @ (f * b)))
            gamma_b = (f * (b - B @ delta))[:, None]
            Gg = g[:, None] * gamma_b
        else:
            Bw = W[:, :, None] * ZtXb  # (K, q, p)
            bw = W * Ztyb  # (K, q)
            A = W[:, :, None] * Gb * W[:, None, :] + np.eye(q)
            sol = np.linalg.solve(A, np.concatenate([Bw, bw[:, :, None]], axis=2))
            U, u = sol[:, :, :-1], sol[:, :, -1]
            H = self.XtX - np.einsum("kap,kaq->pq", Bw, U)
            delta = self._solve_beta(H, -np.einsum("kap,ka->p", Bw, u))
            gamma_b = W * (u - U @ delta if self.p else u)
            Gg = np.einsum("kab,kb->ka", Gb, gamma_b)
        gamma = np.zeros(self.m)
        gamma[blocks] = gamma_b
        Ggamma = np.zeros(self.m)
        Ggamma[blocks] = Gg
        return self._finish(delta, gamma, Ggamma, H)

    def _evaluate_sparse(self, s: np.ndarray) -> Evaluation:
        S = np.flatnonzero(s > 0)
        gamma = np.zeros(self.m)
        if S.size == 0:
            return self._finish(np.zeros(self.p), gamma, np.zeros(self.m), self.XtX)
        w = np.sqrt(s[S] / self.mu[S])
        rhs = np.column_stack([w[:, None] * self.ZtX[S], w * self.Zty[S]])
        if self._G_dense is not None:
            A = w[:, None] * self._G_dense[np.ix_(S, S)] * w[None, :]
            A.flat[:: S.size + 1] += 1.0  # eigenvalues >= 1: LU is as safe as Cholesky, with less overhead
            sol = np.linalg.solve(A, rhs)
        else:
            A = sp.diags(w) @ self.G[S][:, S] @ sp.diags(w) + sp.identity(S.size)
            sol = scipy.linalg.solve(A.toarray(), rhs, assume_a="pos") if S.size <= _DENSE_LIMIT \
                else _solve_spd(A.tocsr(), rhs)
        U, u = sol[:, :-1], sol[:, -1]
        Bw = rhs[:, :-1]
        H = self.XtX - Bw.T @ U
        delta = self._solve_beta(H, -(Bw.T @ u))
        gamma[S] = w * (u - U @ delta if self.p else u)
        Ggamma = self._G_dense[:, S] @ gamma[S] if self._G_dense is not None else self.G @ gamma
        return self._finish(delta, gamma, Ggamma, H)


@dataclass
class CrossProducts:
    """Sums over rows that the statistics need, from one block of rows or many merged.

    With weights w (sw = sqrt(w)) and the fixed columns X_s = X - 1 shift' and response
    y_s = y - y_shift (shifts only with an intercept, so the fit is unchanged; shifting by values
    near the means keeps a covariate such as x + 1e8 from losing its digits):

    * ``R``: the R factor of sw [X_s : y_s] (blocks merge by a QR of their stacked factors: TSQR),
    * ``ZtX`` = Z'W X_s, ``Zty`` = Z'W y_s, ``ZtZ`` = Z'W Z (sparse),
    * counts, sum of w and of w y_s, the largest |sw y_s|, each column's constant value (or NaN),
    * ``sizes``: rows per level of every random term.

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> d = build_design("y ~ x + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 5], "x": [0., 1, 0, 2], "g": list("aabb")}))
    >>> whole = cross_products(d)
    >>> halves = [CrossProducts.of_block(b, whole.shift, whole.y_shift, d) for b in d.row_blocks(rows=2)]
    >>> merged = halves[0].merge(halves[1])
    >>> bool(np.allclose(merged.R.T @ merged.R, whole.R.T @ whole.R)), merged.n
    (True, 4)
    """

    n: int
    w_sum: float
    wy: float
    R: np.ndarray  # (P + 1, P + 1)
    ZtX: np.ndarray  # (m, P)
    Zty: np.ndarray  # (m,)
    ZtZ: sp.csr_matrix
    const: np.ndarray  # (P,) each column's value if constant so far, else NaN
    y_max: float
    sizes: list[np.ndarray]
    shift: np.ndarray
    y_shift: float
    intercept: int | None = None  # set when finished: the constant column the shifts are relative to

    @property
    def P(self) -> int:
        return len(self.shift)

    @property
    def m(self) -> int:
        return len(self.Zty)

    @classmethod
    def of_block(cls, block, shift: np.ndarray, y_shift: float, design: Design) -> "CrossProducts":
        P, m = len(shift), design.n_columns
        sw = None if block.weights is None else np.sqrt(block.weights)
        Xs = block.X - shift
        ys = block.y - y_shift
        A = np.column_stack([Xs, ys])
        if sw is not None:
            A = A * sw[:, None]
        R = np.linalg.qr(A, mode="r") if len(A) > P else np.vstack([A, np.zeros((P + 1 - len(A), P + 1))])
        Z = block.random_matrix(design.term_offsets(), m)
        if sw is not None:
            Z = sp.diags(sw) @ Z
        const = np.full(P, np.nan)
        if len(block):
            same = np.all(block.X == block.X[0], axis=0)
            const[same] = block.X[0, same]
        w = block.weights if block.weights is not None else np.ones(len(block))
        sizes = [np.bincount(c, minlength=t.n_levels) for c, t in zip(block.codes, design.terms)]
        return cls(len(block), float(w.sum()), float(w @ ys), R, np.asarray(Z.T @ A[:, :P]), np.asarray(Z.T @ A[:, P]),
                   (Z.T @ Z).tocsr(), const, float(np.max(np.abs(A[:, P]))) if len(A) else 0.0, sizes,
                   np.asarray(shift, dtype=float), float(y_shift))

    def merge(self, other: "CrossProducts") -> "CrossProducts":
        if other.n == 0 or self.n == 0:  # an empty block says nothing, not even which columns are constant
            return self if other.n == 0 else other
        const = np.where(self.const == other.const, self.const, np.nan)
        return CrossProducts(self.n + other.n, self.w_sum + other.w_sum, self.wy + other.wy,
                             np.linalg.qr(np.vstack([self.R, other.R]), mode="r"), self.ZtX + other.ZtX,
                             self.Zty + other.Zty, (self.ZtZ + other.ZtZ).tocsr(), const, max(self.y_max, other.y_max),
                             [a + b for a, b in zip(self.sizes, other.sizes)], self.shift, self.y_shift,
                             self.intercept if self.intercept is not None else other.intercept)

    def fixed_columns(self, keep: np.ndarray) -> "CrossProducts":
        """The sums of the fixed columns ``keep`` only (the response's column of R stays last).

        >>> import pandas as pd
        >>> from hiermio.formula.design import build_design
        >>> d = build_design("y ~ x + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 5], "x": [0., 1, 0, 2], "g": list("aabb")}))
        >>> cp = cross_products(d).fixed_columns(np.array([0]))
        >>> cp.P, cp.ZtX.shape, cp.intercept
        (1, (2, 1), 0)
        """
        keep = np.asarray(keep, dtype=int)
        if len(keep) == self.P:
            return self
        R = np.linalg.qr(self.R[:, np.append(keep, self.P)], mode="r")
        intercept = None if self.intercept is None else int(np.flatnonzero(keep == self.intercept)[0])
        return replace(self, R=R, ZtX=self.ZtX[:, keep], const=self.const[keep], shift=self.shift[keep],
                       intercept=intercept)

    def restricted(self, columns: np.ndarray, sizes: list[np.ndarray]) -> "CrossProducts":
        """The sums of the random-effect ``columns`` only, with their terms' rows per level
        (for :meth:`hiermio.formula.design.Design.restricted`, which drops levels without rows)."""
        columns = np.asarray(columns, dtype=int)
        return replace(self, ZtX=self.ZtX[columns], Zty=self.Zty[columns],
                       ZtZ=self.ZtZ[columns][:, columns].tocsr(), sizes=list(sizes))


def cross_products(design: Design, progress: bool | None = None) -> CrossProducts:
    """One pass over the design's rows (in memory, or its source's partitions) for :class:`CrossProducts`.

    The shifts are the first block's (or partition's) weighted means, which are as good for the
    digits as the whole data's and need no extra pass.
    """
    shift, y_shift, intercept = _shifts(design)
    with blas_threads(_pass_threads(design)):
        cp = design.map_blocks(lambda block: CrossProducts.of_block(block, shift, y_shift, design),
                               CrossProducts.merge, "sufficient statistics", progress)
    return _finished(cp, intercept)


def _pass_threads(design: Design) -> int | None:
    """BLAS threads for a pass over the rows: one when the rows are one block in memory (a QR of a
    few hundred rows takes 2 ms with one OpenBLAS thread and 89 ms with two on a loaded 2-core
    machine: benchmarks/bench_blas.py), the BLAS's own choice for more."""
    return 1 if design.in_memory and design.n <= _BLOCK_ROWS else None


def split_cross_products(design: Design, labels: Callable[[RowBlock], np.ndarray], n_parts: int, desc: str,
                         progress: bool | None = None, unweighted: bool = False) -> list[list[CrossProducts]]:
    """One pass that sums the rows of every part of several splits of the rows.

    ``labels(block)`` gives, for each of L splits, every row's part (an (L, rows) array of
    0..n_parts-1). Returns ``out[l][k]``: the :class:`CrossProducts` of the rows in part k of
    split l, on the shifts of the whole data, so any parts merge. With ``unweighted=True``,
    ``out[l][n_parts + k]`` holds the same rows' sums without prior weights (validation errors
    are unweighted).

    >>> import pandas as pd
    >>> from hiermio.formula.design import build_design
    >>> d = build_design("y ~ x + (1 | g)", pd.DataFrame({"y": [1., 2, 3, 5], "x": [0., 1, 0, 2], "g": list("aabb")}))
    >>> halves = split_cross_products(d, lambda b: np.array([[0, 1, 0, 1]]), 2, "halves")[0]
    >>> [h.n for h in halves], bool(np.allclose(halves[0].merge(halves[1]).ZtX, cross_products(d).ZtX))
    ([2, 2], True)
    """
    shift, y_shift, intercept = _shifts(design)
    weighted = design.weights_column is not None or design.weights is not None

    def of_block(block: RowBlock) -> list[list[CrossProducts]]:
        out = []
        for row in np.atleast_2d(labels(block)):
            parts = [block.take(np.flatnonzero(row == k)) for k in range(n_parts)]
            if unweighted:
                parts += [replace(b, weights=None) if weighted else b for b in parts]
            out.append([CrossProducts.of_block(b, shift, y_shift, design) for b in parts])
        return out

    def merge(a: list[list[CrossProducts]], b: list[list[CrossProducts]]) -> list[list[CrossProducts]]:
        return [[x.merge(y) for x, y in zip(ra, rb)] for ra, rb in zip(a, b)]

    with blas_threads(_pass_threads(design)):
        out = design.map_blocks(of_block, merge, desc, progress)
    return [[_finished(cp, intercept) for cp in row] for row in out]


def _shifts(design: Design) -> tuple[np.ndarray, float, int | None]:
    """Constants taken off the fixed columns and the response (with an intercept), and the intercept's column."""
    # the shift needs only values near the means: the first block's
    if design.in_memory:
        first = next(design.row_blocks())
    else:
        head = design.source.first(design.source_columns())
        first = design.block_of(head.iloc[:65536])
        first = first if len(first) else design.block_of(head)
    X, y, w = first.X, first.y, first.weights
    intercept = list(design.fixed_names).index("(Intercept)") if design._fixed_layout.intercept else None
    shift, y_shift = np.zeros(design.p), 0.0
    if intercept is not None and len(y):
        wts = None if w is None or not np.any(w > 0) else w
        shift = np.average(X, axis=0, weights=wts)
        shift[intercept] = 0.0
        y_shift = float(np.average(y, weights=wts))
    return shift, y_shift, intercept


def _finished(cp: CrossProducts, intercept: int | None) -> CrossProducts:
    if cp.n and intercept is not None and not (np.isfinite(cp.const[intercept]) and cp.const[intercept] != 0):
        raise NumericalError("the intercept column is not constant over the partitions")
    cp.intercept = intercept
    return cp


def _solve_spd(A: sp.csr_matrix, rhs: np.ndarray) -> np.ndarray:
    """A^{-1} rhs for A = I + W G W (eigenvalues >= 1) by Jacobi-preconditioned conjugate gradients.

    A direct factorization of a large crossed-factor system fills in (seconds for InstEval's 4,100
    levels); CG needs only products with the sparse A. The tolerance is far below SCIP's
    feasibility tolerance, so values and cuts are as exact as the direct solve's; a system CG does
    not settle falls back to the sparse LU.
    """
    inv_diag = 1.0 / A.diagonal()
    M = scipy.sparse.linalg.LinearOperator(A.shape, matvec=lambda v: inv_diag * v, dtype=float)
    out = np.empty_like(rhs)
    for j in range(rhs.shape[1]):
        x, info = scipy.sparse.linalg.cg(A, rhs[:, j], rtol=1e-13, atol=0.0, maxiter=5000, M=M)
        if info != 0:
            return scipy.sparse.linalg.splu(A.tocsc()).solve(rhs)
        out[:, j] = x
    return out


def _level_blocks(design: Design) -> np.ndarray | None:
    """(K, q) column indices per level when all terms share one grouping factor, else None."""
    groups = {t.term.group for t in design.terms}
    if len(groups) != 1:
        return None
    K = design.terms[0].n_levels
    parts = []
    for off, t in zip(design.term_offsets(), design.terms):
        parts.append(off + np.arange(K)[:, None] * t.q + np.arange(t.q)[None, :])
    return np.concatenate(parts, axis=1)
