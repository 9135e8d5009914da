"""R's ``splines::bs`` and ``splines::ns`` bases, for the formula functions of the same names.

Both follow R's definitions exactly (knots at quantiles of type 7, linear or Taylor extrapolation
outside the boundary knots, and for ``ns`` the projection onto the natural-spline constraints with
LINPACK's Householder reflections, whose signs fix the basis R reports).

>>> import numpy as np
>>> x = np.linspace(0, 1, 5)
>>> bspline_basis(x, [0.5], (0.0, 1.0), 3, False).shape, natural_spline_basis(x, [], (0.0, 1.0), False).shape
((5, 4), (5, 1))
"""

from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import BSpline

__all__ = ["bspline_basis", "natural_spline_basis"]


def _design(knots: np.ndarray, x: np.ndarray, order: int, deriv: int = 0) -> np.ndarray:
    """R's ``splineDesign(knots, x, ord, derivs)``: every B-spline of the knot sequence at ``x``."""
    nb = len(knots) - order
    # at the right boundary knot R takes the limit from the left; scipy's half-open intervals give 0
    x = np.where(x == knots[-1], np.nextafter(knots[-1], -np.inf), x)
    out = np.empty((len(x), nb))
    for i in range(nb):
        spl = BSpline(knots, np.eye(nb)[i], order - 1, extrapolate=True)
        out[:, i] = (spl.derivative(deriv) if deriv else spl)(x)
    return out


def bspline_basis(x: np.ndarray, knots: list[float], boundary: tuple[float, float], degree: int,
                  intercept: bool) -> np.ndarray:
    """``bs(x, knots, degree, intercept, Boundary.knots)``."""
    order = degree + 1
    aknots = np.sort(np.concatenate([np.repeat(boundary, order), knots]))
    x = np.asarray(x, dtype=float)
    basis = np.full((len(x), len(aknots) - order), np.nan)
    ok = ~np.isnan(x)
    left, right = ok & (x < boundary[0]), ok & (x > boundary[1])
    inside = ok & ~left & ~right
    basis[inside] = _design(aknots, x[inside], order)
    e = 0.25
    scale = np.array([math.gamma(d + 1) for d in range(order)])
    for mask, pivot in ((left, (1 - e) * boundary[0] + e * aknots[order]),
                        (right, (1 - e) * boundary[1] + e * aknots[len(aknots) - order - 1])):
        if mask.any():
            powers = np.column_stack([np.ones(mask.sum())] + [(x[mask] - pivot) ** d for d in range(1, order)])
            derivs = np.vstack([_design(aknots, np.array([pivot]), order, d) for d in range(order)])
            basis[mask] = powers @ (derivs / scale[:, None])
    return basis if intercept else basis[:, 1:]


def _householder_qty(A: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Q'Y for A = QR by LINPACK's ``dqrdc``/``dqrsl`` reflections (R's ``qr.qty``), signs included."""
    A = A.astype(float).copy()
    Y = Y.astype(float).copy()
    n, p = A.shape
    for j in range(min(p, n - 1)):
        col = A[j:, j]
        norm = np.linalg.norm(col)
        if norm == 0:
            continue
        if col[0] != 0:
            norm = math.copysign(norm, col[0])
        v = col / norm
        v[0] += 1.0
        # the reflection applied to the remaining columns of A and to Y
        for M in (A[j:, j + 1:], Y[j:]):
            if M.size:
                t = -(v @ M) / v[0]
                M += np.outer(v, t)
        A[j:, j] = 0.0
        A[j, j] = -norm
    return Y


def natural_spline_basis(x: np.ndarray, knots: list[float], boundary: tuple[float, float],
                         intercept: bool) -> np.ndarray:
    """``ns(x, knots, intercept, Boundary.knots)``."""
    aknots = np.sort(np.concatenate([np.repeat(boundary, 4), knots]))
    x = np.asarray(x, dtype=float)
    basis = np.full((len(x), len(knots) + 4), np.nan)
    ok = ~np.isnan(x)
    left, right = ok & (x < boundary[0]), ok & (x > boundary[1])
    inside = ok & ~left & ~right
    basis[inside] = _design(aknots, x[inside], 4)
    for mask, pivot in ((left, boundary[0]), (right, boundary[1])):
        if mask.any():
            tt = np.vstack([_design(aknots, np.array([pivot]), 4, d) for d in (0, 1)])
            basis[mask] = np.column_stack([np.ones(mask.sum()), x[mask] - pivot]) @ tt
    const = _design(aknots, np.asarray(boundary, dtype=float), 4, deriv=2)
    if not intercept:
        const, basis = const[:, 1:], basis[:, 1:]
    qty = _householder_qty(const.T, np.nan_to_num(basis).T).T
    out = qty[:, 2:]
    out[~ok] = np.nan
    return out
