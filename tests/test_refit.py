"""Select, then refit: the support is the certified L0-ridge one; the estimates are an unpenalised
least-squares fit on it (the truth: numpy's lstsq on [X : Z_selected])."""

import numpy as np
import pytest

import hiermio as hm
from reference import dense_least_squares, dense_ridge, simulate


@pytest.mark.parametrize("formula, sim, budget", [
    ("y ~ x + (1 | g)", dict(K=10, n_nonzero=3), 3),
    ("y ~ x + (1 + z | g)", dict(K=8, slope=True), 5),
    ("y ~ x + (1 | g) + (1 | h)", dict(K=7, crossed=True), {"g": 2, "h": 2}),
    ("y ~ 0 + (1 | g)", dict(K=9), 4),
])
def test_refit_is_unpenalised_least_squares_on_the_selected_support(formula, sim, budget):
    df = simulate(seed=11, **sim)
    res = hm.fit(formula, df, budget, ridge=0.5, gap=0.0)
    ridge = hm.fit(formula, df, budget, ridge=0.5, gap=0.0, refit=False)
    # the selection and its certificate do not depend on the refit
    assert np.array_equal(res.support, ridge.support)
    assert res.certificate.primal == ridge.certificate.primal
    cols = np.flatnonzero(np.isin(res.problem.unit_of_col, np.flatnonzero(res.support)))
    rss, beta, gamma = dense_least_squares(res.design, cols)
    np.testing.assert_allclose(res.beta, beta, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(res.gamma[cols], gamma, rtol=1e-6, atol=1e-8)
    assert res.rss == pytest.approx(rss, rel=1e-9)
    # the ridge estimates are what refit=False reports
    _, rbeta, rgamma = dense_ridge(ridge.design, ridge.mu, cols)
    np.testing.assert_allclose(ridge.beta, rbeta, rtol=1e-7, atol=1e-9)
    # the refit undoes the shrinkage: the selected effects are larger in magnitude
    assert np.abs(res.gamma[cols]).sum() > np.abs(ridge.gamma[cols]).sum()


def test_refit_with_prior_weights_is_weighted_least_squares():
    df = simulate(K=8, n_per=10, seed=5)
    df["w"] = np.random.default_rng(0).uniform(0.5, 2.0, len(df))
    res = hm.fit("y ~ x + (1 | g)", df, 3, weights="w")
    cols = np.flatnonzero(res.support)
    rss, beta, gamma = dense_least_squares(res.design, cols)
    np.testing.assert_allclose(res.beta, beta, rtol=1e-6)
    np.testing.assert_allclose(res.gamma[cols], gamma, rtol=1e-6)


def test_full_budget_beside_the_intercept_stays_identified():
    """Every level free plus an intercept: lstsq's fitted values are unique even if the split is not."""
    df = simulate(K=6, n_per=8, seed=2)
    res = hm.fit("y ~ x + (1 | g)", df, 6)
    rss, _, _ = dense_least_squares(res.design, np.arange(6))
    assert np.all(np.isfinite(res.beta)) and np.all(np.isfinite(res.gamma))
    assert res.rss == pytest.approx(rss, rel=1e-6)
