"""Independent truths for the tests: simulated clustered data, and a dense reference solver
(lstsq on the stacked ridge system) that shares no code with hiermio's statistics or search."""

from __future__ import annotations

import itertools

import numpy as np

from hiermio.design import random_design_matrix
from hiermio.simulate import simulate_sparse as simulate  # noqa: F401 - the tests' data


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
