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
import warnings

import numpy as np

from ..core.exceptions import DataError, HierMIOWarning
from .rsyntax import format_number

__all__ = ["bspline_basis", "natural_spline_basis"]

_ROWS = 1 << 16  # rows per block of the recurrence


def _interval(knots: np.ndarray, x: np.ndarray, order: int) -> np.ndarray:
    """Index j of the knot interval [t_j, t_j+1) holding each x (the last non-empty one at the right
    boundary knot: R takes the limit from the left there)."""
    last = len(knots) - order - 1
    j = np.clip(np.searchsorted(knots, x, side="right") - 1, order - 1, last)
    while True:  # the right boundary, or a knot repeated there: step left to a non-empty interval
        empty = (knots[j] == knots[j + 1]) & (j > order - 1)
        if not empty.any():
            return j
        j = np.where(empty, j - 1, j)


def _design(knots: np.ndarray, x: np.ndarray, order: int, deriv: int = 0) -> np.ndarray:
    """R's ``splineDesign(knots, x, ord, derivs)``: every B-spline of the knot sequence (or its
    ``deriv``-th derivative) at ``x``, by the Cox-de Boor recurrence (a term over a zero-length
    knot span is 0)."""
    knots = np.asarray(knots, dtype=float)
    x = np.asarray(x, dtype=float)
    if len(x) > _ROWS:  # in blocks: the recurrence holds a few (rows x knots) arrays at a time
        return np.vstack([_design(knots, x[i:i + _ROWS], order, deriv) for i in range(0, len(x), _ROWS)])
    j = _interval(knots, x, order)
    m = len(knots) - 1
    B = (np.arange(m)[None, :] == j[:, None]).astype(float)  # order 1: the interval's indicator
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(2, order - deriv + 1):  # values of order k from order k - 1
            width = m - k + 1
            left_den = knots[k - 1:k - 1 + width] - knots[:width]
            right_den = knots[k:k + width] - knots[1:1 + width]
            left = np.where(left_den > 0, (x[:, None] - knots[:width]) / left_den, 0.0)
            right = np.where(right_den > 0, (knots[k:k + width] - x[:, None]) / right_den, 0.0)
            B = left * B[:, :width] + right * B[:, 1:width + 1]
        for k in range(order - deriv + 1, order + 1):  # derivatives: D B_{i,k} = (k-1) (B_{i,k-1}/.. - B_{i+1,k-1}/..)
            width = m - k + 1
            left_den = knots[k - 1:k - 1 + width] - knots[:width]
            right_den = knots[k:k + width] - knots[1:1 + width]
            left = np.where(left_den > 0, (k - 1) / left_den, 0.0)
            right = np.where(right_den > 0, (k - 1) / right_den, 0.0)
            B = left * B[:, :width] - right * B[:, 1:width + 1]
    return B


def _r_derivative_undefined(knots: np.ndarray, x: float, order: int) -> bool:
    """R's splineDesign gives NaN for derivatives at x when the knot span it picks there is empty:
    at the right boundary knot, when another knot coincides with it (``bs(x, knots = max(x))``)."""
    after = np.flatnonzero(knots > x)
    curs = int(after[0]) if len(after) else int(np.flatnonzero(knots >= x)[-1])
    if curs > len(knots) - order and x == knots[len(knots) - order]:
        curs = len(knots) - order
    return bool(knots[curs - 1] == knots[curs])


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
    if (left | right).any():  # R's words
        warnings.warn("bs(): some 'x' values beyond boundary knots may cause ill-conditioned bases", HierMIOWarning,
                      stacklevel=2)
    e = 0.25
    scale = np.array([math.gamma(d + 1) for d in range(order)])
    for mask, pivot in ((left, (1 - e) * boundary[0] + e * aknots[order]),
                        (right, (1 - e) * boundary[1] + e * aknots[len(aknots) - order - 1])):
        if mask.any():
            if order > 2 and _r_derivative_undefined(aknots, pivot, order):
                side = "below" if mask is left else "above"
                knots_text = ", ".join(format_number(float(b)) for b in boundary)
                raise DataError(f"bs(): x = {format_number(float(x[mask][0]))} lies {side} the boundary knots "
                                f"[{knots_text}], where the basis cannot be extended: a knot coincides with the "
                                f"boundary knot {format_number(float(pivot))} (R's bs gives NaN there); give "
                                "Boundary.knots= that cover these values, or knots inside them")
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
