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
timestamp (x + 1e8: X'X has condition 1e16). The fixed columns are centred (when the model has an
intercept) and replaced by an orthonormal basis Q = X_c R^{-1} from a Householder QR; y is
split into its projection a = Q'y and the residual r0 = y - Q a. What is kept is

    C = Q'Z,   v = Z'r0,   Z'Z,   r0'r0,   a,   and the map from Q's coefficients back to X's,

so c(s) = r0'r0 - gamma'v is a small difference only when the cluster effects explain nearly all of
what the fixed part leaves, and the estimates are as accurate as a QR least-squares solve.

>>> import numpy as np, pandas as pd
>>> from hiermio.design import build_design
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
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from .design import Design, constant_columns, random_design_matrix
from .inner import Evaluation, InnerProblem
from .exceptions import NumericalError

__all__ = ["FixedBasis", "SufficientStats"]

_DENSE_LIMIT = 400  # supports up to this size are solved densely in the crossed-factor path


@dataclass(frozen=True)
class FixedBasis:
    """An orthonormal basis Q of the (weighted, centred) fixed columns, and the way back to X.

    With an intercept column (constant, value c0 at index ``intercept``) the other columns are
    centred first: X_c = X T^{-1} with T = I - e0 m'/c0, so that beta = T beta_c; then
    X_c = Q R and beta_c = R^{-1} beta_Q. ``beta_map`` is T R^{-1}.

    >>> X = np.column_stack([np.ones(4), 1e8 + np.arange(4.0)])
    >>> b = FixedBasis.build(X, None)
    >>> bool(np.allclose(b.Q.T @ b.Q, np.eye(2))), b.intercept
    (True, 0)
    >>> bool(np.allclose(X @ b.beta_map, b.Q, atol=1e-6))
    True
    """

    Q: np.ndarray  # (n, p)
    beta_map: np.ndarray  # (p, p)
    intercept: int | None
    means: np.ndarray  # (p,) the centres taken off (0 for the intercept)

    @classmethod
    def build(cls, X: np.ndarray, sw: np.ndarray | None) -> "FixedBasis":
        n, p = X.shape
        const = constant_columns(X)
        intercept = const[0] if const else None
        means = np.zeros(p)
        T = np.eye(p)
        Xc = X
        if intercept is not None:
            means = np.average(X, axis=0, weights=None if sw is None else sw**2)
            means[intercept] = 0.0
            Xc = X - means
            T[intercept, :] -= means / X[0, intercept]
        if sw is not None:
            Xc = Xc * sw[:, None]
        if p == 0:
            return cls(np.zeros((n, 0)), np.zeros((0, 0)), None, means)
        Q, R = np.linalg.qr(Xc)
        # relative to each column's own norm: columns in units 1e16 apart are not collinear
        if np.any(np.abs(np.diag(R)) <= 1e-12 * np.linalg.norm(Xc, axis=0)):
            raise NumericalError("the fixed-effect columns are numerically collinear")
        return cls(Q, T @ scipy.linalg.solve_triangular(R, np.eye(p)), intercept, means)

    def y_centre(self, y: np.ndarray, sw: np.ndarray | None) -> float:
        return float(np.average(y, weights=None if sw is None else sw**2))


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

    @classmethod
    def from_design(cls, design: Design, mu: np.ndarray) -> "SufficientStats":
        """One pass over the rows; afterwards nothing depends on n.

        Prior weights w scale every row by sqrt(w) (weighted least squares); an offset is taken
        off the response before anything else.
        """
        Z = random_design_matrix(design)
        X, y = design.X, design.y_adjusted
        sw = np.sqrt(design.weights) if design.weights is not None else None
        basis = FixedBasis.build(X, sw)
        y_c = (y - basis.y_centre(y, sw)) if basis.intercept is not None else y
        if sw is not None:
            Z, y_c = sp.diags(sw) @ Z, y_c * sw
        # the response in units of its largest value: the solver's tolerances are then the same
        # for y in millimetres and in kilometres
        y_scale = float(np.max(np.abs(y_c))) if len(y_c) else 0.0
        y_scale = y_scale if y_scale > 0 else 1.0
        y_c = y_c / y_scale
        a = basis.Q.T @ y_c
        r0 = y_c - basis.Q @ a
        r0 -= basis.Q @ (basis.Q.T @ r0)  # a second projection: r0 orthogonal to Q to rounding
        shift = np.zeros(design.p)
        if basis.intercept is not None:
            shift[basis.intercept] = basis.y_centre(y, sw) / X[0, basis.intercept] / y_scale
        return cls(
            G=(Z.T @ Z).tocsr(),
            C=np.asarray((Z.T @ basis.Q)).T if design.p else np.zeros((0, design.n_columns)),
            v=np.asarray(Z.T @ r0).ravel(),
            r0_norm2=float(r0 @ r0),
            a=a,
            beta_map=basis.beta_map,
            beta_shift=shift,
            mu=mu,
            response_norm2=float(y_c @ y_c),
            blocks=_level_blocks(design),
            y_scale=y_scale,
        )

    def with_mu(self, mu: np.ndarray) -> "SufficientStats":
        """The same statistics under other ridge weights (the refit's tiny ones), without a pass over the rows.

        >>> import pandas as pd
        >>> from hiermio.design import build_design
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
        GSS = self.G[S][:, S]
        A = sp.diags(w) @ GSS @ sp.diags(w) + sp.identity(S.size)
        rhs = np.column_stack([w[:, None] * self.ZtX[S], w * self.Zty[S]])
        if S.size <= _DENSE_LIMIT:
            sol = scipy.linalg.solve(A.toarray(), rhs, assume_a="pos")
        else:
            sol = _solve_spd(A.tocsr(), rhs)
        U, u = sol[:, :-1], sol[:, -1]
        Bw = rhs[:, :-1]
        H = self.XtX - Bw.T @ U
        delta = self._solve_beta(H, -(Bw.T @ u))
        gamma[S] = w * (u - U @ delta if self.p else u)
        return self._finish(delta, gamma, self.G @ gamma, H)


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
