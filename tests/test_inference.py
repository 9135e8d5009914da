"""Standard errors against statsmodels: the cluster-robust covariance is statsmodels' OLS with
cov_type="cluster" on the same design (the fixed part and the selected columns)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

import hiermio as hm
from hiermio.design import random_design_matrix
from reference import simulate


def _support_design(fit):
    Z = random_design_matrix(fit.design).toarray()
    return np.hstack([fit.design.X, Z[:, np.flatnonzero(fit.gamma)]])


@pytest.mark.parametrize("formula, sim, budget", [
    ("y ~ x + (1 | g)", dict(K=12, n_per=9, n_nonzero=3), 3),
    ("y ~ x + z + (1 + z | g)", dict(K=10, n_per=8, slope=True), 4),
])
def test_robust_covariance_is_statsmodels_cluster(formula, sim, budget):
    df = simulate(seed=3, **sim)
    fit = hm.fit(formula, df, budget)
    ols = sm.OLS(fit.design.y, _support_design(fit)).fit(cov_type="cluster",
                                                           cov_kwds={"groups": fit.design.terms[0].codes})
    p = fit.design.p
    np.testing.assert_allclose(fit.fixef().to_numpy(), ols.params[:p], rtol=1e-6)
    np.testing.assert_allclose(fit.vcov().to_numpy(), ols.cov_params()[:p, :p], rtol=1e-5)
    table = fit.summary().coefficients()
    np.testing.assert_allclose(table["Std. Error"], ols.bse[:p], rtol=1e-5)
    assert "cluster-robust (CR1) by g, " in str(fit.summary())


def test_robust_covariance_with_weights_is_statsmodels_wls_cluster():
    df = simulate(K=10, n_per=8, seed=4)
    w = np.random.default_rng(1).uniform(0.5, 2, len(df))
    fit = hm.fit("y ~ x + (1 | g)", df.assign(w=w), 3, weights="w")
    wls = sm.WLS(fit.design.y, _support_design(fit), weights=w).fit(cov_type="cluster",
                                                                      cov_kwds={"groups": fit.design.terms[0].codes})
    np.testing.assert_allclose(fit.vcov().to_numpy(), wls.cov_params()[:2, :2], rtol=1e-5)


def test_conditional_covariance_is_ols_on_the_support_design():
    df = simulate(K=10, n_per=8, seed=5)
    fit = hm.fit("y ~ x + (1 | g)", df, 3)
    ols = sm.OLS(fit.design.y, _support_design(fit)).fit()
    np.testing.assert_allclose(fit.vcov("conditional").to_numpy(), ols.cov_params()[:2, :2], rtol=1e-5)


def test_confint_is_wald_on_clusters_minus_one_df():
    from scipy import stats

    df = simulate(K=10, n_per=8, seed=6)
    fit = hm.fit("y ~ x + (1 | g)", df, 3)
    ci = fit.confint(0.9)
    se = np.sqrt(np.diag(fit.vcov().to_numpy()))
    q = stats.t.ppf(0.95, 9)
    np.testing.assert_allclose(ci.iloc[:, 0], fit.fixef() - q * se)
    np.testing.assert_allclose(ci.iloc[:, 1], fit.fixef() + q * se)
    with pytest.raises(hm.HierMIOError, match="kind must be 'robust' or 'conditional'"):
        fit.vcov("sandwich")
    with pytest.raises(hm.HierMIOError, match="cluster must name a grouping factor"):
        fit.vcov(cluster="school")


def test_cluster_level_covariate_gets_a_larger_standard_error_than_the_conditional_one():
    """Exam's schavg: the conditional SE treats unselected schools as exactly the population and was
    about a third of lme4's; the robust one clusters the residuals by school."""
    exam = hm.load_dataset("Exam")
    fit = hm.fit("normexam ~ standLRT + schavg + (1 | school)", exam, 10, ridge=1.0)
    robust = fit.summary().coefficients().loc["schavg", "Std. Error"]
    conditional = np.sqrt(fit.vcov("conditional").loc["schavg", "schavg"])
    assert robust > 1.5 * conditional
    assert isinstance(fit.vcov(), pd.DataFrame)
