"""Prior weights and offsets against closed forms: weighted least squares and the weighted ridge."""

from __future__ import annotations

import numpy as np
import pytest

import hiermio as hm
from reference import simulate
from hiermio.formula.design import random_design_matrix


@pytest.fixture(scope="module")
def weighted():
    df = simulate(K=6, n_per=10, seed=3)
    rng = np.random.default_rng(1)
    return df.assign(w=rng.uniform(0.2, 3.0, len(df)), off=rng.normal(size=len(df)))


def test_budget_zero_is_weighted_least_squares(weighted):
    df = weighted
    f = hm.fit("y ~ x + (1 | g)", df, budget=0, weights="w", offset="off")
    X = np.column_stack([np.ones(len(df)), df.x])
    sw = np.sqrt(df.w.to_numpy())
    beta = np.linalg.lstsq(X * sw[:, None], (df.y - df.off).to_numpy() * sw, rcond=None)[0]
    np.testing.assert_allclose(f.fixef().to_numpy(), beta, rtol=1e-9)
    np.testing.assert_allclose(f.fitted().to_numpy(), X @ beta + df.off.to_numpy(), rtol=1e-9)


def test_full_budget_is_the_weighted_ridge_closed_form(weighted):
    df = weighted
    f = hm.fit("y ~ x + (1 | g)", df, budget=6, weights=df.w.to_numpy(), ridge=0.3, gap=0.0, refit=False)
    X = np.column_stack([np.ones(len(df)), df.x])
    Z = random_design_matrix(f.design).toarray()
    A = np.column_stack([X, Z])
    W = np.diag(df.w.to_numpy())
    P = np.diag(np.concatenate([np.zeros(2), f.mu]))
    coef = np.linalg.solve(A.T @ W @ A + P, A.T @ W @ df.y.to_numpy())
    np.testing.assert_allclose(f.fixef().to_numpy(), coef[:2], rtol=1e-8)
    np.testing.assert_allclose(f.gamma, coef[2:], rtol=1e-8, atol=1e-10)
    # mu is the ridge times the median per-level weighted z'z
    zz = np.bincount(f.design.terms[0].codes, weights=df.w.to_numpy())
    np.testing.assert_allclose(f.mu, 0.3 * np.median(zz))


def test_weights_travel_into_folds_and_bad_weights_are_named(weighted):
    df = weighted
    res = hm.cv("y ~ x + (1 | g)", df, budgets=[0, 2], folds=3, weights=df.w.to_numpy(), progress=False)
    assert res.best_fit_.design.weights is not None
    np.testing.assert_allclose(res.best_fit_.design.weights, df.w.to_numpy())
    with pytest.raises(hm.DataError, match="weights must be finite and non-negative"):
        hm.fit("y ~ x + (1 | g)", df.assign(w=-1.0), budget=1, weights="w")
    with pytest.raises(hm.DataError, match="weights='ww' is not a column of the data \\(did you mean 'w'\\?\\)"):
        hm.fit("y ~ x + (1 | g)", df, budget=1, weights="ww")
    with pytest.raises(hm.DataError, match="weights has 3 values but the data has 60 rows"):
        hm.fit("y ~ x + (1 | g)", df, budget=1, weights=[1.0, 2.0, 3.0])


def test_formula_offset_is_used_in_prediction(weighted):
    df = weighted.assign(n=lambda d: np.exp(d.off))
    f = hm.fit("y ~ x + offset(log(n)) + (1 | g)", df, budget=2)
    g = hm.fit("y ~ x + (1 | g)", df, budget=2, offset="off")
    np.testing.assert_allclose(f.fixef().to_numpy(), g.fixef().to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(f.predict(df.head(5)).to_numpy(), g.predict(df.head(5)).to_numpy(), rtol=1e-9)
