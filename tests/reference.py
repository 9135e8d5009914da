"""Independent truths for the tests: simulated clustered data, and a dense reference solver
(lstsq on the stacked ridge system) that shares no code with hiermio's statistics or search."""

from __future__ import annotations

import itertools

import numpy as np

from hiermio.formula.design import random_design_matrix
from hiermio.paper.simulate import simulate_sparse as simulate  # noqa: F401 - the tests' data


def dense_ridge(design, mu, cols):
    """Objective and estimates of the ridge fit with random-effect columns ``cols``, by lstsq."""
    Z = random_design_matrix(design).toarray()[:, cols]
    p, k = design.p, len(cols)
    A = np.vstack([np.hstack([design.X, Z]), np.hstack([np.zeros((k, p)), np.diag(np.sqrt(mu[cols]))])])
    b = np.concatenate([design.y, np.zeros(k)])
    theta = np.linalg.lstsq(A, b, rcond=None)[0]
    r = b - A @ theta
    return float(r @ r), theta[:p], theta[p:]


def dense_least_squares(design, cols, weights=None):
    """Unpenalised least squares on [X : Z_cols] by lstsq (the minimum-norm solution when the
    columns are dependent): objective, fixed effects and the selected columns' effects."""
    Z = random_design_matrix(design).toarray()[:, cols]
    A = np.hstack([design.X, Z])
    b = design.y_adjusted
    w = design.weights if weights is None else weights
    if w is not None:
        A, b = A * np.sqrt(w)[:, None], b * np.sqrt(w)
    theta = np.linalg.lstsq(A, b, rcond=None)[0]
    r = b - A @ theta
    return float(r @ r), theta[: design.p], theta[design.p :]


def brute_force(problem, design, mu):
    """Best objective over every unit support within the budgets, each fitted densely."""
    groups = [np.flatnonzero(problem.group_of_unit == g) for g in range(len(problem.group_names))]
    choices = [list(itertools.combinations(idx, int(lam))) for idx, lam in zip(groups, problem.budgets)]
    best, best_units = np.inf, None
    for combo in itertools.product(*choices):
        units = np.array(sorted(u for part in combo for u in part), dtype=int)
        cols = np.flatnonzero(np.isin(problem.unit_of_col, units))
        val = dense_ridge(design, mu, cols)[0]
        if val < best:
            best, best_units = val, units
    return best, best_units


def dense_signed_ridge(design, mu, below, above, free=(), s=None):
    """Objective and effects of the ridge fit in which the columns ``below`` may only take
    negative effects, ``above`` only positive ones and ``free`` any, by scipy's bounded least
    squares on the stacked system (an independent solver). ``s`` scales each column's ridge
    weight to mu / s (the perspective relaxation at fractional s); columns as design columns."""
    from scipy.optimize import lsq_linear

    Zfull = random_design_matrix(design).toarray()
    cols = [*below, *above, *free]
    k, p = len(cols), design.p
    scale = np.ones(k) if s is None else np.asarray(s, float)
    Z = Zfull[:, cols]
    A = np.vstack([np.hstack([design.X, Z]), np.hstack([np.zeros((k, p)), np.diag(np.sqrt(mu[cols] / scale))])])
    b = np.concatenate([design.y, np.zeros(k)])
    lo = np.r_[np.full(p, -np.inf), np.full(len(below), -np.inf), np.zeros(len(above)), np.full(len(free), -np.inf)]
    hi = np.r_[np.full(p, np.inf), np.zeros(len(below)), np.full(len(above), np.inf), np.full(len(free), np.inf)]
    theta = lsq_linear(A, b, bounds=(lo, hi), method="bvls", tol=1e-14, lsmr_tol=None).x
    r = b - A @ theta
    gamma = np.zeros(Zfull.shape[1])
    np.add.at(gamma, cols, theta[p:])
    return float(r @ r), theta[:p], gamma


def brute_force_tails(design, mu, below: int, above: int):
    """The best sign-constrained support of a one-term design: at most ``below`` levels with a
    negative effect and ``above`` with a positive one, every choice fitted by bounded least squares."""
    K = design.n_columns
    best, best_sets = np.inf, None
    for B in itertools.combinations(range(K), below):
        for A in itertools.combinations(range(K), above):
            val = dense_signed_ridge(design, mu, list(B), list(A))[0]
            if val < best - 1e-12:
                best, best_sets = val, (B, A)
    return best, best_sets
