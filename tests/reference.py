"""Independent truths for the tests: simulated clustered data, and a dense reference solver
(lstsq on the stacked ridge system) that shares no code with hiermio's statistics or search."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from hiermio.design import random_design_matrix


def simulate(K=8, n_per=12, n_nonzero=3, slope=False, seed=0, effect=1.0, crossed=False):
    """Clustered data with a few clusters that differ (intercepts, and slopes if asked)."""
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(K), n_per)
    n = len(g)
    df = pd.DataFrame({"g": g, "x": rng.normal(size=n), "z": rng.normal(size=n)})
    eff = np.zeros(K)
    eff[rng.choice(K, n_nonzero, replace=False)] = rng.choice([-1.0, 1.0], n_nonzero) * effect
    y = 1.0 + 0.5 * df.x + eff[g] + rng.normal(size=n)
    if slope:
        y = y + 0.7 * eff[g] * df.z
    if crossed:
        df["h"] = rng.integers(0, 4, n)
        y = y + np.array([0.0, 0.8, 0.0, -0.5])[df.h]
    df["y"] = y
    return df


def dense_ridge(design, mu, cols):
    """Objective and estimates of the ridge fit with random-effect columns ``cols``, by lstsq."""
    Z = random_design_matrix(design).toarray()[:, cols]
    p, k = design.p, len(cols)
    A = np.vstack([np.hstack([design.X, Z]), np.hstack([np.zeros((k, p)), np.diag(np.sqrt(mu[cols]))])])
    b = np.concatenate([design.y, np.zeros(k)])
    theta = np.linalg.lstsq(A, b, rcond=None)[0]
    r = b - A @ theta
    return float(r @ r), theta[:p], theta[p:]


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
